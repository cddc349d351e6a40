package routing

import (
	"io"
	"net/netip"
	"slices"
	"time"

	"github.com/dhtkit/dhtkit/id"
)

// BEP5 is the routing table of BEP 5: k-buckets that each cover a range of
// the id space, where only the bucket holding our own id splits. It is
// stored as buckets indexed by the length of the prefix their nodes share
// with our id: bucket i < last holds the nodes whose first differing bit is
// bit i, and the last bucket holds everything closer. Splitting the last
// bucket appends a new one; that is the same tree BEP 5 describes, without
// its ranges.
//
// A full bucket makes a newcomer wait in its replacement cache while the
// least recently seen questionable node is pinged (Observe returns it); a
// node that fails BadFails queries in a row is bad and gives its place to
// the freshest replacement.
type BEP5 struct {
	self    id.ID
	k       int
	fast    bool // a full bucket trades its slowest node for a faster newcomer
	repl    int  // replacement cache size per bucket
	n       int  // contacts, replacements excluded
	rand    io.Reader
	clock   clock
	probes  probes
	buckets []bucket

	div        Diversity // see diversity.go
	divRejects uint64
}

type bucket struct {
	contacts []entry
	repl     []entry // replacement cache, freshest kept; learned nodes never
	changed  int64   // BEP 5's "last changed"
	pingAt   int64   // when a contact was last handed out to ping
}

var _ Table = (*BEP5)(nil)

// NewBEP5 returns an empty BEP 5 table for the node self with buckets of k
// contacts (8 when k <= 0). Refresh draws its random targets from rnd, or
// from crypto/rand when rnd is nil; a seeded rnd makes runs repeatable.
func NewBEP5(self id.ID, k int, rnd io.Reader) *BEP5 {
	if k <= 0 {
		k = 8
	}
	return &BEP5{
		self:    self,
		k:       k,
		repl:    k,
		rand:    rnd,
		buckets: []bucket{{changed: never, pingAt: never}},
	}
}

// Self implements Table.
func (t *BEP5) Self() id.ID { return t.self }

// Len implements Table.
func (t *BEP5) Len() int { return t.n }

// K is the bucket size.
func (t *BEP5) K() int { return t.k }

// SetReplacements sets how many nodes each bucket's replacement cache
// holds (k by default; 0 turns the caches off, so that a newcomer to a full
// bucket can only take a bad node's place). A simulator that holds a
// million tables may want fewer: full caches double a table's size.
// Caches that are fuller than n shrink as their nodes are used or fail.
func (t *BEP5) SetReplacements(n int) { t.repl = max(n, 0) }

// index returns the bucket that covers x.
func (t *BEP5) index(x id.ID) int {
	return min(id.CommonPrefixLen(t.self, x), len(t.buckets)-1)
}

func find(es []entry, x id.ID) int {
	for i := range es {
		if es[i].id == x {
			return i
		}
	}
	return -1
}

// Observe implements Table.
//
// Learned nodes (named in someone's reply, never heard from) fill free
// room, which is what lets lookups start from a fresh table, but they never
// evict, never trigger a ping and never enter a replacement cache: an
// attacker can name any node it likes, and only answers and queries
// compete for a place.
func (t *BEP5) Observe(now time.Time, x id.ID, addr netip.AddrPort, how Source, rtt time.Duration) (Contact, bool) {
	ts := t.clock.at(now)
	if x == t.self || !addr.IsValid() {
		return Contact{}, false
	}
	bi := t.index(x)
	b := &t.buckets[bi]
	if i := find(b.contacts, x); i >= 0 {
		e := &b.contacts[i]
		if !e.sameAddr(addr) {
			// A known id speaking from another address does not take over
			// the entry: anyone can claim any id, and letting the latest
			// claim win would let an attacker redirect a good node's
			// traffic to itself, or cut it out of lookups, with one packet.
			// The old address keeps the place until it has proved dead.
			if !e.bad() || how == Learned {
				return Contact{}, false
			}
			if e.flags&flagPinging != 0 {
				b.pingAt = never
			}
			*e = newEntry(x, addr)
		}
		wasPinging, wasBad := e.flags&flagPinging != 0, e.bad()
		e.seen(ts, how, rtt)
		if how == Queried && wasBad {
			// Refuted by its query (entry.seen): ask the engine to ping it,
			// so that its answer confirms the address both ways.
			return t.clock.contact(e), true
		}
		if how == Responded {
			b.changed = ts
			if wasPinging {
				// BEP 5: when the pinged node answers, the next least
				// recently seen questionable node is pinged, as long as
				// newcomers are waiting.
				b.pingAt = never
				if len(b.repl) > 0 {
					return t.nextPing(b, ts)
				}
			}
		}
		return Contact{}, false
	}
	if !t.claimAddr(addr) || !t.admits(b, x, addr) {
		return Contact{}, false
	}
	ne := newEntry(x, addr)
	if i := find(b.repl, x); i >= 0 {
		r := &b.repl[i]
		if how == Learned || !r.sameAddr(addr) && !r.bad() {
			return Contact{}, false // nothing new, or a hijack as above
		}
		if r.sameAddr(addr) {
			ne = *r
		}
		b.repl = slices.Delete(b.repl, i, i+1)
	}
	ne.seen(ts, how, rtt)
	return t.insert(ts, ne, how == Learned)
}

// claimAddr reports whether a new id may take addr. One UDP address is
// one node: otherwise a single socket could fill the table with made-up
// ids, each a contact that never answers, and steer lookups into them. An
// address held by a live entry stays with it; one held by a bad entry is
// freed for the newcomer.
func (t *BEP5) claimAddr(addr netip.AddrPort) bool {
	var probe entry
	probe.setAddr(addr)
	for bi := range t.buckets {
		b := &t.buckets[bi]
		for i := range b.contacts {
			if e := &b.contacts[i]; e.ip == probe.ip && e.port == probe.port && e.flags&flagIs4 == probe.flags&flagIs4 {
				if !e.bad() {
					return false
				}
				t.Remove(e.id)
				return true
			}
		}
		for i := range b.repl {
			if e := &b.repl[i]; e.ip == probe.ip && e.port == probe.port && e.flags&flagIs4 == probe.flags&flagIs4 {
				if !e.bad() {
					return false
				}
				b.repl = slices.Delete(b.repl, i, i+1)
				return true
			}
		}
	}
	return true
}

// insert places a node that is not in the table.
func (t *BEP5) insert(ts int64, ne entry, learned bool) (Contact, bool) {
	for {
		bi := t.index(ne.id)
		b := &t.buckets[bi]
		if len(b.contacts) < t.k {
			b.contacts = append(b.contacts, ne)
			b.changed = ts
			t.n++
			return Contact{}, false
		}
		if bi == len(t.buckets)-1 && bi < id.Bits-1 {
			t.split(ts)
			continue
		}
		if learned {
			return Contact{}, false
		}
		if i := worstBad(b.contacts); i >= 0 {
			b.contacts[i] = ne
			b.changed = ts
			return Contact{}, false
		}
		if i := t.slower(b.contacts, &ne); i >= 0 {
			old := b.contacts[i]
			b.contacts[i] = ne
			b.changed = ts
			old.flags &^= flagPinging
			t.addReplacement(b, old)
			return Contact{}, false
		}
		t.addReplacement(b, ne)
		return t.nextPing(b, ts)
	}
}

// worstBad returns the index of the bad contact with the most failures, or
// -1.
func worstBad(es []entry) int {
	w := -1
	for i := range es {
		if es[i].bad() && (w < 0 || es[i].fails > es[w].fails) {
			w = i
		}
	}
	return w
}

// addReplacement puts e in b's replacement cache, dropping the stalest
// replacement when the cache is full.
func (t *BEP5) addReplacement(b *bucket, e entry) {
	if t.repl == 0 {
		return
	}
	if len(b.repl) < t.repl {
		b.repl = append(b.repl, e)
		return
	}
	s := 0
	for i := range b.repl {
		if fresher(&b.repl[s], &b.repl[i]) {
			s = i
		}
	}
	if !fresher(&b.repl[s], &e) {
		b.repl[s] = e
	}
}

// nextPing picks the least recently seen questionable contact of a full
// bucket for the engine to ping, unless a ping it asked for is still
// outstanding. A bucket of good nodes asks for nothing: the newcomer waits.
func (t *BEP5) nextPing(b *bucket, ts int64) (Contact, bool) {
	if b.pingAt != never && ts-b.pingAt < int64(PingWait) {
		for i := range b.contacts {
			if b.contacts[i].flags&flagPinging != 0 {
				return Contact{}, false
			}
		}
	}
	q := -1
	for i := range b.contacts {
		e := &b.contacts[i]
		e.flags &^= flagPinging
		if e.state(ts) != Questionable {
			continue
		}
		if q < 0 || fresher(&b.contacts[q], e) {
			q = i
		}
	}
	if q < 0 {
		return Contact{}, false
	}
	b.contacts[q].flags |= flagPinging
	b.pingAt = ts
	return t.clock.contact(&b.contacts[q]), true
}

// split divides the last bucket: its nodes that share one more bit with
// our id move to a new last bucket. Replacements follow their nodes, and
// either half with room takes the freshest of its replacements.
func (t *BEP5) split(ts int64) {
	last := len(t.buckets) - 1
	// Grow by exactly one bucket: a table lives long and there may be a
	// million of them, so capacity doubling would waste a third of them.
	bs := make([]bucket, last+2)
	copy(bs, t.buckets)
	t.buckets = bs
	old, nb := &bs[last], &bs[last+1]
	nb.pingAt = never
	keep := old.contacts[:0]
	for _, e := range old.contacts {
		if id.CommonPrefixLen(t.self, e.id) > last {
			nb.contacts = append(nb.contacts, e)
		} else {
			keep = append(keep, e)
		}
	}
	clear(old.contacts[len(keep):])
	old.contacts = keep
	keepR := old.repl[:0]
	for _, e := range old.repl {
		if id.CommonPrefixLen(t.self, e.id) > last {
			nb.repl = append(nb.repl, e)
		} else {
			keepR = append(keepR, e)
		}
	}
	old.repl = keepR
	if len(old.repl) == 0 {
		old.repl = nil
	}
	old.changed, nb.changed = ts, ts
	old.pingAt = never
	for i := range old.contacts {
		old.contacts[i].flags &^= flagPinging
	}
	for i := range nb.contacts {
		nb.contacts[i].flags &^= flagPinging
	}
	t.fill(old)
	t.fill(nb)
}

// fill moves the freshest replacements into free places.
func (t *BEP5) fill(b *bucket) {
	for len(b.contacts) < t.k && len(b.repl) > 0 {

		f := 0
		for i := range b.repl {
			if !fresher(&b.repl[f], &b.repl[i]) {
				f = i // the later one wins a tie: it arrived last
			}
		}
		b.contacts = append(b.contacts, b.repl[f])
		b.repl = slices.Delete(b.repl, f, f+1)
		t.n++
	}
	if len(b.repl) == 0 {
		b.repl = nil
	}
}

// Failed implements Table. A contact that turns bad gives its place to the
// freshest replacement at once; with no replacement it stays, left out of
// Closest but probed (Probe), until it answers or a newcomer takes its
// place.
func (t *BEP5) Failed(now time.Time, x id.ID) {
	ts := t.clock.at(now)
	b := &t.buckets[t.index(x)]
	if i := find(b.contacts, x); i >= 0 {
		e := &b.contacts[i]
		if e.flags&flagPinging != 0 {
			b.pingAt = never
		}
		e.fail(ts, t.rand)
		if !e.bad() {
			return
		}
		if len(b.repl) > 0 {
			b.contacts = slices.Delete(b.contacts, i, i+1)
			t.n--
			t.fill(b)
			b.changed = ts
			return
		}
		t.probes.due(e.next())
		return
	}
	if i := find(b.repl, x); i >= 0 {
		if b.repl[i].fail(ts, nil); b.repl[i].bad() {
			b.repl = slices.Delete(b.repl, i, i+1)
		}
	}
}

// Probe implements Table.
func (t *BEP5) Probe(now time.Time, n int, dst []Contact) []Contact {
	ts := t.clock.at(now)
	due := t.probes.scan(ts, n, t.rand, func(f func(*entry)) {
		for bi := range t.buckets {
			for i := range t.buckets[bi].contacts {
				f(&t.buckets[bi].contacts[i])
			}
		}
	})
	for _, e := range due {
		dst = append(dst, t.clock.contact(e))
	}
	return dst
}

// NextProbe implements Table.
func (t *BEP5) NextProbe() (time.Time, bool) { return t.probes.at(&t.clock) }

// Remove implements Table. The freshest replacement takes the place.
func (t *BEP5) Remove(x id.ID) {
	b := &t.buckets[t.index(x)]
	if i := find(b.contacts, x); i >= 0 {
		if b.contacts[i].flags&flagPinging != 0 {
			b.pingAt = never
		}
		b.contacts = slices.Delete(b.contacts, i, i+1)
		t.n--
		t.fill(b)
		return
	}
	if i := find(b.repl, x); i >= 0 {
		b.repl = slices.Delete(b.repl, i, i+1)
	}
}

// Get implements Table. Replacements are not contacts: Get does not see
// them.
func (t *BEP5) Get(x id.ID) (Contact, bool) {
	b := &t.buckets[t.index(x)]
	if i := find(b.contacts, x); i >= 0 {
		return t.clock.contact(&b.contacts[i]), true
	}
	return Contact{}, false
}

// Closest implements Table. It never sorts more than one bucket: the
// buckets themselves come in order of distance. With c the bucket of
// target and d = self XOR target, bucket c is nearest (its nodes agree with
// target up to bit c). Every deeper bucket j holds nodes whose distance to
// target starts with d's bits c..j-1 and then the complement of d's bit j,
// so among them bucket j comes before all deeper ones when d's bit j is 1
// and after them when it is 0; the last bucket sits between the two runs.
// Then come buckets c-1, c-2, ... 0, each farther than the one before.
func (t *BEP5) Closest(target id.ID, n int, dst []Contact) []Contact {
	return t.closest(target, n, dst, false)
}

// ClosestAll implements AllCloser: Closest with the bad contacts that
// have not been evicted yet.
func (t *BEP5) ClosestAll(target id.ID, n int, dst []Contact) []Contact {
	return t.closest(target, n, dst, true)
}

func (t *BEP5) closest(target id.ID, n int, dst []Contact, bad bool) []Contact {
	if n <= 0 {
		return dst
	}
	base := len(dst)
	last := len(t.buckets) - 1
	c := t.index(target)
	dst = t.emit(target, c, base, n, dst, bad)
	if c < last {
		d := id.Xor(t.self, target)
		for j := c + 1; j < last && len(dst)-base < n; j++ {
			if d.Bit(j) == 1 {
				dst = t.emit(target, j, base, n, dst, bad)
			}
		}
		dst = t.emit(target, last, base, n, dst, bad)
		for j := last - 1; j > c && len(dst)-base < n; j-- {
			if d.Bit(j) == 0 {
				dst = t.emit(target, j, base, n, dst, bad)
			}
		}
	}
	for j := c - 1; j >= 0 && len(dst)-base < n; j-- {
		dst = t.emit(target, j, base, n, dst, bad)
	}
	return dst
}

// emit appends the good and questionable contacts of bucket i (and the
// bad ones too when bad is set), sorted by
// distance to target, keeping dst[base:] at most n long. It sorts indices
// on the stack and converts only the contacts it returns: Closest answers
// every find_node and get_peers, so it should cost little and allocate
// nothing.
func (t *BEP5) emit(target id.ID, i, base, n int, dst []Contact, bad bool) []Contact {
	need := n - (len(dst) - base)
	if need <= 0 {
		return dst
	}
	cs := t.buckets[i].contacts
	if len(cs) > maxSortStack {
		start := len(dst)
		for j := range cs {
			if bad || !cs[j].bad() {
				dst = append(dst, t.clock.contact(&cs[j]))
			}
		}
		slices.SortFunc(dst[start:], byDistance(target))
		return dst[:min(len(dst), start+need)]
	}
	var order [maxSortStack]uint8
	m := 0
	for j := range cs {
		if !bad && cs[j].bad() {
			continue
		}
		// Insertion sort: buckets are small.
		p := m
		for p > 0 && id.CompareDistance(target, cs[j].id, cs[order[p-1]].id) < 0 {
			order[p] = order[p-1]
			p--
		}
		order[p] = uint8(j)
		m++
	}
	for _, j := range order[:min(m, need)] {
		dst = append(dst, t.clock.contact(&cs[j]))
	}
	return dst
}

// maxSortStack is the largest bucket emit sorts on the stack.
const maxSortStack = 64

// Refresh implements Table. A target of bucket i < last differs from our
// id first at bit i. The last bucket's target shares the bucket's prefix
// and differs from our id at the next bit, the half of the bucket a lookup
// of our own id does not already cover.
func (t *BEP5) Refresh(now time.Time, interval time.Duration, dst []id.ID) []id.ID {
	ts := t.clock.at(now)
	for i := range t.buckets {
		b := &t.buckets[i]
		if b.changed != never && ts-b.changed < int64(interval) {
			continue
		}
		dst = append(dst, id.RandomWithPrefix(t.rand, t.self, i))
		b.changed = ts
	}
	return dst
}

// Buckets implements Table.
func (t *BEP5) Buckets() []Bucket {
	out := make([]Bucket, len(t.buckets))
	last := len(t.buckets) - 1
	for i := range t.buckets {
		b := &t.buckets[i]
		o := &out[i]
		if i < last {
			o.Prefix, o.PrefixLen = prefixID(flipBit(t.self, i), i+1), i+1
		} else {
			o.Prefix, o.PrefixLen = prefixID(t.self, i), i
		}
		o.LastChanged = t.clock.changed(b.changed)
		for j := range b.contacts {
			o.Contacts = append(o.Contacts, t.clock.contact(&b.contacts[j]))
		}
		for j := range b.repl {
			o.Replacements = append(o.Replacements, t.clock.contact(&b.repl[j]))
		}
	}
	return out
}

// SetPreferFast makes a full bucket of good nodes trade its slowest
// contact for a newcomer that answered one of our queries in under 3/4 of
// that contact's smoothed round-trip time; the contact it displaces waits
// in the replacement cache. BEP 5 turns such a newcomer away; libtorrent
// trades too. Lookups gain: a bucket that covers much of the network
// (half of it for bucket 0) has many nodes to choose from, and keeping
// the fast ones makes a lookup's first hops short. Off in a new table.
func (t *BEP5) SetPreferFast(on bool) { t.fast = on }

// PreferFast reports whether the table prefers fast nodes.
func (t *BEP5) PreferFast() bool { return t.fast }

// slower returns the index of the contact ne should replace because ne
// answered clearly faster, or -1.
func (t *BEP5) slower(es []entry, ne *entry) int {
	if !t.fast || ne.rtt <= 0 || ne.flags&flagResponded == 0 {
		return -1
	}
	w := -1
	for i := range es {
		e := &es[i]
		if e.flags&flagResponded == 0 || e.rtt <= 0 {
			continue
		}
		if w < 0 || e.rtt > es[w].rtt {
			w = i
		}
	}
	if w < 0 || int64(ne.rtt)*4 > int64(es[w].rtt)*3 {
		return -1
	}
	return w
}
