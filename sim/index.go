package sim

import (
	"slices"
	"sort"

	"github.com/dhtkit/dhtkit/id"
)

// ref is a node id and the node's index in the simulator.
type ref struct {
	id id.ID
	n  int32
}

func byID(a, b ref) int { return id.Compare(a.id, b.id) }

// index is the simulator's global view of node ids, the oracle that
// lookups are judged against and that the fast build-up fills tables
// from. Ids sorted in order form the leaves of the binary trie Kademlia
// works on, so the nodes sharing a prefix are a contiguous run, found by
// binary search. Nodes that leave stay in it and are skipped (a filter
// says who counts); new ones wait in a short unsorted list that is merged
// in when it grows, so churn never costs a re-sort per join.
type index struct {
	sorted []ref
	recent []ref
	spare  []ref
}

// foldAt is the length of the unsorted list that triggers a merge.
const foldAt = 2048

func (x *index) add(r ref) {
	x.recent = append(x.recent, r)
	if len(x.recent) >= foldAt {
		x.fold()
	}
}

// fold merges the unsorted list into the sorted one.
func (x *index) fold() {
	if len(x.recent) == 0 {
		return
	}
	slices.SortFunc(x.recent, byID)
	out := slices.Grow(x.spare[:0], len(x.sorted)+len(x.recent))
	i, j := 0, 0
	for i < len(x.sorted) && j < len(x.recent) {
		if byID(x.sorted[i], x.recent[j]) <= 0 {
			out = append(out, x.sorted[i])
			i++
		} else {
			out = append(out, x.recent[j])
			j++
		}
	}
	out = append(out, x.sorted[i:]...)
	out = append(out, x.recent[j:]...)
	x.spare, x.sorted = x.sorted[:0], out
	x.recent = x.recent[:0]
}

// span returns the run [lo, hi) of sorted ids whose first n bits are
// those of p.
func (x *index) span(p id.ID, n int) (lo, hi int) {
	low, high := p, p
	for b := n; b < id.Bits; b++ {
		mask := byte(0x80) >> (b % 8)
		low[b/8] &^= mask
		high[b/8] |= mask
	}
	s := x.sorted
	lo = sort.Search(len(s), func(i int) bool { return id.Compare(s[i].id, low) >= 0 })
	hi = lo + sort.Search(len(s)-lo, func(i int) bool { return id.Compare(s[lo+i].id, high) > 0 })
	return lo, hi
}

// closest appends to dst the k ids nearest target by XOR distance among
// those ok accepts, nearest first.
func (x *index) closest(target id.ID, k int, ok func(int32) bool, dst []ref) []ref {
	base := len(dst)
	dst = x.descend(target, 0, len(x.sorted), 0, base, k, ok, dst)
	if len(x.recent) == 0 {
		return dst
	}
	for _, r := range x.recent {
		if ok(r.n) {
			dst = append(dst, r)
		}
	}
	slices.SortFunc(dst[base:], func(a, b ref) int { return id.CompareDistance(target, a.id, b.id) })
	if len(dst)-base > k {
		dst = dst[:base+k]
	}
	return dst
}

// descend walks the trie below the run s[lo:hi] of ids that share their
// first depth bits with target's side: the half on target's side of bit
// depth is entirely nearer than the other half, so it is visited first,
// and the walk stops when k have been found.
func (x *index) descend(target id.ID, lo, hi, depth, base, k int, ok func(int32) bool, dst []ref) []ref {
	if lo >= hi || len(dst)-base >= k {
		return dst
	}
	s := x.sorted
	if hi-lo <= 2*k || depth == id.Bits {
		start := len(dst)
		for _, r := range s[lo:hi] {
			if ok(r.n) {
				dst = append(dst, r)
			}
		}
		slices.SortFunc(dst[start:], func(a, b ref) int { return id.CompareDistance(target, a.id, b.id) })
		if len(dst)-base > k {
			dst = dst[:base+k]
		}
		return dst
	}
	m := lo + sort.Search(hi-lo, func(i int) bool { return s[lo+i].id.Bit(depth) == 1 })
	if target.Bit(depth) == 0 {
		dst = x.descend(target, lo, m, depth+1, base, k, ok, dst)
		return x.descend(target, m, hi, depth+1, base, k, ok, dst)
	}
	dst = x.descend(target, m, hi, depth+1, base, k, ok, dst)
	return x.descend(target, lo, m, depth+1, base, k, ok, dst)
}

// successors appends to dst the k ids that follow target clockwise on the
// ring, target itself first if it is an id, among those ok accepts: the
// truth a Chord lookup is judged against.
func (x *index) successors(target id.ID, k int, ok func(int32) bool, dst []ref) []ref {
	base := len(dst)
	s := x.sorted
	start := sort.Search(len(s), func(i int) bool { return id.Compare(s[i].id, target) >= 0 })
	for j := 0; j < len(s) && len(dst)-base < k; j++ {
		if r := s[(start+j)%len(s)]; ok(r.n) {
			dst = append(dst, r)
		}
	}
	if len(x.recent) == 0 {
		return dst
	}
	for _, r := range x.recent {
		if ok(r.n) {
			dst = append(dst, r)
		}
	}
	slices.SortFunc(dst[base:], func(a, b ref) int {
		return id.Compare(id.RingDistance(target, a.id), id.RingDistance(target, b.id))
	})
	if len(dst)-base > k {
		dst = dst[:base+k]
	}
	return dst
}

// predecessor returns the id that precedes target on the ring among those
// ok accepts, or a ref with n -1.
func (x *index) predecessor(target id.ID, ok func(int32) bool) ref {
	best := ref{n: -1}
	var bd id.ID
	consider := func(r ref) {
		if r.id == target || !ok(r.n) {
			return
		}
		if d := id.RingDistance(r.id, target); best.n < 0 || id.Compare(d, bd) < 0 {
			best, bd = r, d
		}
	}
	s := x.sorted
	if n := len(s); n > 0 {
		start := sort.Search(n, func(i int) bool { return id.Compare(s[i].id, target) >= 0 })
		for j := 1; j <= n; j++ {
			r := s[(start-j+n)%n]
			if r.id != target && ok(r.n) {
				consider(r)
				break
			}
		}
	}
	for _, r := range x.recent {
		consider(r)
	}
	return best
}
