package routing

import (
	"io"
	"net/netip"
	"slices"
	"sort"
	"time"

	"github.com/dhtkit/dhtkit/id"
)

// KeepAll is LightDHT's research table: it keeps every node it has ever
// heard of and evicts nothing. States are tracked as in BEP5; bad nodes are
// kept but left out of Closest. Observe never asks for a ping.
//
// Contacts live in an append-only slice with a map from id to slot. For
// Closest, an index of slots sorted by id is kept: nodes that share a
// prefix with the target are a contiguous run of it, so the nearest nodes
// are found by descending the implicit binary trie of the sorted ids
// (binary search for each branch) in O(160·log N + n), whatever the size.
// New slots wait in a short unsorted list that Closest scans and merges
// into the index once it grows past about √N: a crawler adds nodes all the
// time, and scanning p pending slots per Closest while merging N every p
// insertions costs least, O(√N) per call, at that length. So neither
// Observe nor Closest ever pays a full re-sort.
type KeepAll struct {
	self    id.ID
	k       int
	rand    io.Reader
	clock   clock
	probes  probes
	entries []entry
	index   map[id.ID]int32
	sorted  []int32 // slots by id; may hold tombstones
	pending []int32 // slots not yet in sorted
	spare   []int32 // scratch for folding
	scratch []int32 // scratch for Closest
	removed int     // tombstones in entries
	deepest int     // the longest prefix any node has shared with self
	bad     bool    // ClosestAll is running: bad entries count as live
	changed [id.Bits]int64
}

// foldAt is the length past which Closest sorts the pending slots into
// the index: √N, and at least minFold.
func (t *KeepAll) foldAt() int {
	n := minFold
	for n*n < len(t.sorted) {
		n *= 2
	}
	return n
}

const minFold = 64

var _ Table = (*KeepAll)(nil)

// NewKeepAll returns an empty keep-all table for the node self. k is the
// bucket size used to describe it (Buckets, Refresh), 8 when k <= 0.
// Refresh draws its random targets from rnd, or from crypto/rand when rnd
// is nil.
func NewKeepAll(self id.ID, k int, rnd io.Reader) *KeepAll {
	if k <= 0 {
		k = 8
	}
	t := &KeepAll{self: self, k: k, rand: rnd, index: make(map[id.ID]int32), deepest: -1}
	for i := range t.changed {
		t.changed[i] = never
	}
	return t
}

// Self implements Table.
func (t *KeepAll) Self() id.ID { return t.self }

// K is the bucket size.
func (t *KeepAll) K() int { return t.k }

// Len implements Table.
func (t *KeepAll) Len() int { return len(t.index) }

// Observe implements Table. It never asks for a ping: nothing is evicted.
// Learned nodes are kept too (as questionable), since a crawler wants to
// know of every node; they become good only by answering.
func (t *KeepAll) Observe(now time.Time, x id.ID, addr netip.AddrPort, how Source, rtt time.Duration) (Contact, bool) {
	ts := t.clock.at(now)
	if x == t.self || !addr.IsValid() {
		return Contact{}, false
	}
	cpl := id.CommonPrefixLen(t.self, x)
	if s, ok := t.index[x]; ok {
		e := &t.entries[s]
		if !e.sameAddr(addr) {
			// As in BEP5: a claim to a known id from another address does
			// not move the entry unless the old address is dead.
			if !e.bad() || how == Learned {
				return Contact{}, false
			}
			*e = newEntry(x, addr)
		}
		wasBad := e.bad()
		e.seen(ts, how, rtt)
		if how == Responded {
			t.changed[cpl] = ts
		}
		if how == Queried && wasBad {
			// Refuted by its query (entry.seen): ask the engine to ping it,
			// so that its answer confirms the address both ways.
			return t.clock.contact(e), true
		}
		return Contact{}, false
	}
	e := newEntry(x, addr)
	e.seen(ts, how, rtt)
	s := int32(len(t.entries))
	t.entries = append(t.entries, e)
	t.index[x] = s
	t.pending = append(t.pending, s)
	t.changed[cpl] = ts
	t.deepest = max(t.deepest, cpl)
	return Contact{}, false
}

// Failed implements Table. Bad nodes stay, out of Closest but probed
// (Probe), until they answer again.
func (t *KeepAll) Failed(now time.Time, x id.ID) {
	ts := t.clock.at(now)
	if s, ok := t.index[x]; ok {
		e := &t.entries[s]
		if e.fail(ts, t.rand); e.bad() {
			t.probes.due(e.next())
		}
	}
}

// Probe implements Table.
func (t *KeepAll) Probe(now time.Time, n int, dst []Contact) []Contact {
	ts := t.clock.at(now)
	due := t.probes.scan(ts, n, t.rand, func(f func(*entry)) {
		for i := range t.entries {
			f(&t.entries[i])
		}
	})
	for _, e := range due {
		dst = append(dst, t.clock.contact(e))
	}
	return dst
}

// NextProbe implements Table.
func (t *KeepAll) NextProbe() (time.Time, bool) { return t.probes.at(&t.clock) }

// Remove implements Table.
func (t *KeepAll) Remove(x id.ID) {
	s, ok := t.index[x]
	if !ok {
		return
	}
	delete(t.index, x)
	t.entries[s].flags |= flagRemoved
	t.removed++
	if t.removed > 1024 && t.removed > len(t.index) {
		t.compact()
	}
}

// compact drops tombstones and rebuilds the index.
func (t *KeepAll) compact() {
	live := t.entries[:0]
	for _, e := range t.entries {
		if e.flags&flagRemoved == 0 {
			live = append(live, e)
		}
	}
	t.entries = slices.Clone(live) // let the larger array go
	t.removed = 0
	t.sorted = t.sorted[:0]
	t.pending = t.pending[:0]
	for i := range t.entries {
		t.index[t.entries[i].id] = int32(i)
		t.pending = append(t.pending, int32(i))
	}
	t.fold()
}

// Get implements Table.
func (t *KeepAll) Get(x id.ID) (Contact, bool) {
	if s, ok := t.index[x]; ok {
		return t.clock.contact(&t.entries[s]), true
	}
	return Contact{}, false
}

// fold sorts the pending slots and merges them into the index.
func (t *KeepAll) fold() {
	if len(t.pending) == 0 {
		return
	}
	slices.SortFunc(t.pending, func(a, b int32) int {
		return id.Compare(t.entries[a].id, t.entries[b].id)
	})
	out := slices.Grow(t.spare[:0], len(t.sorted)+len(t.pending))
	i, j := 0, 0
	for i < len(t.sorted) && j < len(t.pending) {
		if id.Compare(t.entries[t.sorted[i]].id, t.entries[t.pending[j]].id) <= 0 {
			out = append(out, t.sorted[i])
			i++
		} else {
			out = append(out, t.pending[j])
			j++
		}
	}
	out = append(out, t.sorted[i:]...)
	out = append(out, t.pending[j:]...)
	t.sorted, t.spare = out, t.sorted
	t.pending = t.pending[:0]
}

// live reports whether slot s may be returned by Closest (bad entries
// only when t.bad is set, during ClosestAll).
func (t *KeepAll) live(s int32) bool {
	e := &t.entries[s]
	return e.flags&flagRemoved == 0 && (t.bad || !e.bad())
}

// Closest implements Table.
func (t *KeepAll) Closest(target id.ID, n int, dst []Contact) []Contact {
	return t.closest(target, n, dst)
}

// ClosestAll implements AllCloser: Closest with the bad contacts, which
// KeepAll keeps until they are removed.
func (t *KeepAll) ClosestAll(target id.ID, n int, dst []Contact) []Contact {
	t.bad = true
	defer func() { t.bad = false }()
	return t.closest(target, n, dst)
}

func (t *KeepAll) closest(target id.ID, n int, dst []Contact) []Contact {
	if n <= 0 {
		return dst
	}
	if len(t.pending) > t.foldAt() {
		t.fold()
	}
	base := len(dst)
	dst = t.descend(target, 0, len(t.sorted), 0, base, n, dst)
	if len(t.pending) == 0 {
		return dst
	}
	t.scratch = t.nearest(target, t.pending, n, t.scratch[:0])
	for _, s := range t.scratch {
		dst = append(dst, t.clock.contact(&t.entries[s]))
	}
	// Two sorted runs: a sort of the short tail into place is cheap.
	slices.SortFunc(dst[base:], byDistance(target))
	if len(dst)-base > n {
		dst = dst[:base+n]
	}
	return dst
}

// nearest appends to buf, nearest first, up to n of the live slots.
func (t *KeepAll) nearest(target id.ID, slots []int32, n int, buf []int32) []int32 {
	start := len(buf)
	for _, s := range slots {
		if !t.live(s) {
			continue
		}
		x := &t.entries[s].id
		p := len(buf)
		if p-start < n {
			buf = append(buf, s)
		} else if id.CompareDistance(target, *x, t.entries[buf[p-1]].id) < 0 {
			p--
		} else {
			continue
		}
		for p > start && id.CompareDistance(target, *x, t.entries[buf[p-1]].id) < 0 {
			buf[p] = buf[p-1]
			p--
		}
		buf[p] = s
	}
	return buf
}

// leafSize is the run length below which descend selects instead of
// splitting further.
const leafSize = 16

// descend appends, nearest first, the live nodes of sorted[lo:hi], all of
// which share their first depth bits, until dst[base:] holds n.
func (t *KeepAll) descend(target id.ID, lo, hi, depth, base, n int, dst []Contact) []Contact {
	need := n - (len(dst) - base)
	if lo >= hi || need <= 0 {
		return dst
	}
	if hi-lo <= leafSize || depth >= id.Bits {
		t.scratch = t.nearest(target, t.sorted[lo:hi], need, t.scratch[:0])
		for _, s := range t.scratch {
			dst = append(dst, t.clock.contact(&t.entries[s]))
		}
		return dst
	}
	// The run is sorted and shares depth bits, so bit depth is 0 then 1.
	m := lo + sort.Search(hi-lo, func(i int) bool {
		return t.entries[t.sorted[lo+i]].id.Bit(depth) == 1
	})
	if target.Bit(depth) == 0 {
		dst = t.descend(target, lo, m, depth+1, base, n, dst)
		return t.descend(target, m, hi, depth+1, base, n, dst)
	}
	dst = t.descend(target, m, hi, depth+1, base, n, dst)
	return t.descend(target, lo, m, depth+1, base, n, dst)
}

// levels is the number of buckets KeepAll describes itself as: one per
// prefix length shared with self, down to the deepest node seen (at least
// one, so that an empty table has something to refresh).
func (t *KeepAll) levels() int { return max(t.deepest+1, 1) }

// Refresh implements Table, with a bucket per shared prefix length down to
// the deepest node seen: a target of level i differs from our id first at
// bit i. Nodes nearer than the deepest are what a lookup of our own id
// finds.
func (t *KeepAll) Refresh(now time.Time, interval time.Duration, dst []id.ID) []id.ID {
	ts := t.clock.at(now)
	for i := range t.levels() {
		if t.changed[i] != never && ts-t.changed[i] < int64(interval) {
			continue
		}
		dst = append(dst, id.RandomWithPrefix(t.rand, t.self, i))
		t.changed[i] = ts
	}
	return dst
}

// Buckets implements Table: one bucket per shared prefix length, as
// Refresh sees them, each with all its nodes (bad ones included).
func (t *KeepAll) Buckets() []Bucket {
	out := make([]Bucket, t.levels())
	for i := range out {
		out[i].Prefix, out[i].PrefixLen = prefixID(flipBit(t.self, i), i+1), i+1
		out[i].LastChanged = t.clock.changed(t.changed[i])
	}
	for i := range t.entries {
		e := &t.entries[i]
		if e.flags&flagRemoved != 0 {
			continue
		}
		c := id.CommonPrefixLen(t.self, e.id)
		out[c].Contacts = append(out[c].Contacts, t.clock.contact(e))
	}
	return out
}
