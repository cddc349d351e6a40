package replica

import (
	"cmp"
	"slices"
	"sort"

	"github.com/dhtkit/dhtkit/id"
)

// setDepth is the granularity of a shared set: 2^16 prefixes.
const setDepth = 16

// Set is a set of the prefixes of depth setDepth: the part of the id space
// a node and a peer should both hold, as sorted, disjoint, non-adjacent
// intervals [lo, hi] of prefix indexes. A round descends only into the
// prefixes a set meets.
type Set struct {
	iv     [][2]uint32
	sorted bool
}

// Add adds the prefix of target t.
func (s *Set) Add(t id.ID) { s.addInterval(prefixOf(t, setDepth).Bits, prefixOf(t, setDepth).Bits) }

// AddRing adds the prefixes of the targets in the ring interval (lo, hi];
// lo == hi is the whole ring.
func (s *Set) AddRing(lo, hi id.ID) {
	a, b := prefixOf(lo, setDepth).Bits, prefixOf(hi, setDepth).Bits
	if id.Compare(lo, hi) < 0 {
		s.addInterval(a, b)
		return
	}
	s.addInterval(a, 1<<setDepth-1)
	s.addInterval(0, b)
}

func (s *Set) addInterval(a, b uint32) {
	if n := len(s.iv); n > 0 {
		last := &s.iv[n-1]
		if a >= last[0] && a <= last[1]+1 {
			last[1] = max(last[1], b)
			return
		}
		if a < last[0] {
			s.sorted = false
		}
	} else {
		s.sorted = true
	}
	s.iv = append(s.iv, [2]uint32{a, b})
}

// normalize sorts and merges the intervals.
func (s *Set) normalize() {
	if s.sorted {
		return
	}
	slices.SortFunc(s.iv, func(x, y [2]uint32) int { return cmp.Compare(x[0], y[0]) })
	out := s.iv[:0]
	for _, v := range s.iv {
		if n := len(out); n > 0 && v[0] <= out[n-1][1]+1 {
			out[n-1][1] = max(out[n-1][1], v[1])
			continue
		}
		out = append(out, v)
	}
	s.iv, s.sorted = out, true
}

// Empty reports whether s holds nothing.
func (s *Set) Empty() bool { return s == nil || len(s.iv) == 0 }

// Meets reports whether s holds any prefix under p, or p's ancestor of
// depth setDepth when p is deeper.
func (s *Set) Meets(p Prefix) bool {
	if s.Empty() {
		return false
	}
	s.normalize()
	var a, b uint32
	if p.Len <= setDepth {
		a = p.Bits << uint(setDepth-p.Len)
		b = a + 1<<uint(setDepth-p.Len) - 1
	} else {
		a = p.Bits >> uint(p.Len-setDepth)
		b = a
	}
	i := sort.Search(len(s.iv), func(i int) bool { return s.iv[i][1] >= a })
	return i < len(s.iv) && s.iv[i][0] <= b
}
