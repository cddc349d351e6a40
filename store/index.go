package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/dhtkit/dhtkit/id"
)

// item is one record in the index. The memory store keeps the value in it;
// the bolt store keeps only its size and reads the value from disk.
type item struct {
	target  id.ID
	deleted bool
	summed  bool   // sum holds the value's CRC32C (every write since format 2)
	inline  bool   // bolt: the value follows the header (flagInline)
	sum     uint32 // bolt: checked on every read of the value
	key     string
	value   []byte
	source  string
	version Version
	expires int64 // Unix nanoseconds; 0: never
	size    int   // value length
	hash    uint64
}

func (it *item) bytes() int64 { return int64(len(it.key)+it.size) + RecordOverhead }

func (it *item) record() Record {
	return Record{
		Key:     it.key,
		Value:   it.value,
		Version: it.version,
		Expires: fromNanos(it.expires),
		Deleted: it.deleted,
		Source:  it.source,
	}
}

func (it *item) entry() Entry {
	return Entry{Key: it.key, Version: it.version, Deleted: it.deleted}
}

// compareItem orders (t, k) against it: by target, then by key.
func compareItem(t id.ID, k string, it *item) int {
	if c := bytes.Compare(t[:], it.target[:]); c != 0 {
		return c
	}
	return strings.Compare(k, it.key)
}

// toNanos maps an expiry time to Unix nanoseconds: 0 for the zero time
// (never), clamped so that no real time collides with 0.
func toNanos(t time.Time) int64 {
	switch {
	case t.IsZero():
		return 0
	case t.Unix() <= 0:
		return 1
	case t.Unix() >= math.MaxInt64/int64(time.Second):
		return math.MaxInt64
	}
	return t.UnixNano()
}

func fromNanos(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// Index shape: the leaves split the target space into 2^depth buckets by
// prefix, each a slice sorted by (target, key). The depth follows the
// number of records so that a leaf holds a few of them: it grows when the
// average passes growAt and shrinks below shrinkAt, rebuilding in O(n),
// which amortizes to O(1) per change.
const (
	growAt   = 8
	shrinkAt = 1
)

// index orders the records of a store by target and keeps their digest.
// tree is a binary tree of bucket hashes in heap layout: tree[1] is the
// root, the 2^k buckets of depth k are tree[1<<k : 2<<k], and the leaves
// are the deepest level. An empty index allocates nothing.
type index struct {
	leaves  [][]item
	tree    []uint64
	sources map[string]int // records per non-empty source
	n       int
	bytes   int64
	tombs   int   // tombstones among n
	tbytes  int64 // their bytes, among bytes
	now     int64 // the latest time passed to expire
	nextExp int64 // no item expires before this; 0: none expires
	depth   uint8
}

// leafOf returns the bucket of t among 2^depth (depth <= 32).
func leafOf(t id.ID, depth uint8) int {
	return int(uint64(binary.BigEndian.Uint32(t[:4])) >> (32 - depth))
}

// find returns the leaf and position of (t, k), or where it would go.
func (x *index) find(t id.ID, k string) (leaf, pos int, found bool) {
	if x.leaves == nil {
		return 0, 0, false
	}
	leaf = leafOf(t, x.depth)
	items := x.leaves[leaf]
	pos = sort.Search(len(items), func(i int) bool { return compareItem(t, k, &items[i]) <= 0 })
	return leaf, pos, pos < len(items) && compareItem(t, k, &items[pos]) == 0
}

func (x *index) get(key string) (*item, bool) {
	leaf, pos, ok := x.find(KeyTarget(key), key)
	if !ok {
		return nil, false
	}
	return &x.leaves[leaf][pos], true
}

// toggle adds or removes h in the hashes of leaf and its ancestors.
func (x *index) toggle(leaf int, h uint64) {
	for j := 1<<x.depth + leaf; j >= 1; j >>= 1 {
		x.tree[j] ^= h
	}
}

func (x *index) count(it *item, sign int) {
	x.n += sign
	x.bytes += int64(sign) * it.bytes()
	if it.deleted {
		x.tombs += sign
		x.tbytes += int64(sign) * it.bytes()
	}
	if it.source == "" {
		return
	}
	if x.sources == nil {
		x.sources = make(map[string]int)
	}
	if x.sources[it.source] += sign; x.sources[it.source] == 0 {
		delete(x.sources, it.source)
	}
	if len(x.sources) == 0 {
		x.sources = nil
	}
}

func (x *index) noteExpiry(ns int64) {
	if ns != 0 && (x.nextExp == 0 || ns < x.nextExp) {
		x.nextExp = ns
	}
}

// change is a Put the index accepted: the new item and where it goes.
type change struct {
	it        item
	leaf, pos int
	found     bool
}

// prepare checks r against cfg and the stored record. It returns apply
// false for a write that loses to the stored one or has already expired,
// and an error for one that breaks a limit. It does not change x. Its
// errors do not name r.Key: every caller that shows one to a person
// (dhtkit's `put "KEY": …`, a writer reading a replica's refusal) names
// the key itself, and a second mention only doubled it (issue 14).
func (x *index) prepare(cfg *Config, r *Record) (c change, apply bool, err error) {
	if base := BaseKey(r.Key); cfg.MaxKeySize > 0 && len(base) > cfg.MaxKeySize {
		return c, false, fmt.Errorf("store: key of %d bytes exceeds the limit of %d bytes: %w",
			len(base), cfg.MaxKeySize, ErrTooLarge)
	}
	if !r.Deleted && cfg.MaxValueSize > 0 && len(r.Value) > cfg.MaxValueSize {
		return c, false, fmt.Errorf("store: value of %d bytes exceeds the limit of %d bytes: %w",
			len(r.Value), cfg.MaxValueSize, ErrTooLarge)
	}
	if r.Version.IsZero() {
		return c, false, fmt.Errorf("store: a record without a version: %w", ErrInvalid)
	}
	it := item{
		target:  r.Target(),
		key:     r.Key,
		deleted: r.Deleted,
		source:  r.Source,
		version: r.Version,
		expires: toNanos(r.Expires),
	}
	if r.Deleted {
		// A tombstone lives at least TombstoneTTL past its version, on
		// every replica alike.
		it.expires = max(it.expires, toNanos(r.Version.Physical().Add(cfg.TombstoneTTL)))
	} else {
		it.size = len(r.Value)
		it.summed, it.sum = true, checksum(r.Value)
		// A value lives at most MaxTTL past its version, so that every
		// tombstone newer than it outlives it.
		if cfg.MaxTTL > 0 {
			limit := toNanos(r.Version.Physical().Add(cfg.MaxTTL))
			if it.expires == 0 || it.expires > limit {
				it.expires = limit
			}
		}
	}
	if it.expires != 0 && it.expires <= x.now {
		return c, false, nil
	}
	c.leaf, c.pos, c.found = x.find(it.target, it.key)
	var old *item
	if c.found {
		old = &x.leaves[c.leaf][c.pos]
		if !it.version.Newer(old.version) {
			return c, false, nil
		}
	} else if n := x.values(c.leaf, c.pos, it.target, it.key); n >= MaxValuesPerKey {
		return c, false, fmt.Errorf("store: key %q already holds %d values, the limit: %w",
			BaseKey(r.Key), n, ErrCapacity)
	}
	delta := it.bytes()
	if old != nil {
		delta -= old.bytes()
	}
	if limit := cfg.limit(it.deleted); delta > 0 && limit > 0 && x.bytes+delta > limit {
		return c, false, fmt.Errorf("store: the record needs %d more bytes, %d of %d in use: %w",
			delta, x.bytes, limit, ErrCapacity)
	}
	// The quota binds records new to their source; a tombstone replacing a
	// stored record never fails on it, or a delete could be lost.
	newToSource := old == nil || (old.source != it.source && !it.deleted)
	if it.source != "" && cfg.MaxPerSource > 0 && newToSource && x.sources[it.source] >= cfg.MaxPerSource {
		return c, false, fmt.Errorf("store: source %s already has %d records stored, the limit: %w",
			it.source, x.sources[it.source], ErrQuota)
	}
	it.hash = entryHash(entryID(it.target, it.key), it.version, it.deleted)
	c.it = it
	return c, true, nil
}

// values counts the records of the key rk belongs to around position pos
// of leaf, where rk would go: a key's records share its target, so they
// lie next to each other in one leaf.
func (x *index) values(leaf, pos int, t id.ID, rk string) int {
	if leaf < 0 || leaf >= len(x.leaves) {
		return 0
	}
	l, base, n := x.leaves[leaf], BaseKey(rk), 0
	for i := pos - 1; i >= 0 && l[i].target == t; i-- {
		if BaseKey(l[i].key) == base {
			n++
		}
	}
	for i := pos; i < len(l) && l[i].target == t; i++ {
		if BaseKey(l[i].key) == base {
			n++
		}
	}
	return n
}

// apply makes a prepared change; nothing may have changed x meanwhile.
func (x *index) apply(c *change) {
	if c.found {
		old := &x.leaves[c.leaf][c.pos]
		x.count(old, -1)
		x.toggle(c.leaf, old.hash)
		*old = c.it
	} else {
		x.insert(c.leaf, c.pos, c.it)
		return
	}
	x.count(&c.it, +1)
	x.toggle(c.leaf, c.it.hash)
	x.noteExpiry(c.it.expires)
}

// insert adds it at (leaf, pos), as found by find.
func (x *index) insert(leaf, pos int, it item) {
	if x.leaves == nil {
		x.leaves = make([][]item, 1)
		x.tree = make([]uint64, 2)
		x.depth = 0
		leaf, pos = 0, 0
	}
	x.leaves[leaf] = slices.Insert(x.leaves[leaf], pos, it)
	x.count(&it, +1)
	x.toggle(leaf, it.hash)
	x.noteExpiry(it.expires)
	if x.n > growAt<<x.depth && x.depth < MaxDigestDepth {
		x.resize(x.depth + 1)
	}
}

// remove drops the item at (leaf, pos).
func (x *index) remove(leaf, pos int) {
	it := &x.leaves[leaf][pos]
	x.count(it, -1)
	x.toggle(leaf, it.hash)
	x.leaves[leaf] = slices.Delete(x.leaves[leaf], pos, pos+1)
	x.shrink()
}

func (x *index) shrink() {
	if x.n == 0 {
		// Back to the zero index, keeping the clock.
		*x = index{now: x.now}
		return
	}
	for x.depth > 0 && x.n < shrinkAt<<x.depth {
		x.resize(x.depth - 1)
	}
}

// roomAt is the size from which resize gives every leaf room to spare.
// Smaller indexes grow their leaves by append, which takes the least
// heap: the simulator keeps one store per node, a million of them.
const roomAt = 1024

// resize rebuilds the leaves and the tree at depth d. From roomAt records
// on, each leaf is allocated once, with room for as many records again as
// it holds: the index doubles before it deepens again, so most inserts
// until then fit in place. Leaves grown by append from nil allocated and
// copied every record several times per resize and again on inserts, the
// most bytes a node allocated while it took puts. One array for all the
// leaves allocated fewer bytes still, but in a node it cost more: a large
// object is fresh pages, and their faults took more CPU than the copies
// saved.
func (x *index) resize(d uint8) {
	tree := make([]uint64, 2<<d)
	counts := tree[1<<d:] // the leaves' sizes first, their hashes after
	total := 0
	for _, leaf := range x.leaves {
		for i := range leaf {
			counts[leafOf(leaf[i].target, d)]++
		}
		total += len(leaf)
	}
	leaves := make([][]item, 1<<d)
	if total >= roomAt {
		for l, c := range counts {
			if c > 0 {
				leaves[l] = make([]item, 0, 2*c)
			}
		}
	}
	for _, leaf := range x.leaves {
		for i := range leaf {
			l := leafOf(leaf[i].target, d)
			leaves[l] = append(leaves[l], leaf[i])
		}
	}
	for l, leaf := range leaves {
		var h uint64
		for i := range leaf {
			h ^= leaf[i].hash
		}
		tree[1<<d+l] = h
	}
	for j := 1<<d - 1; j >= 1; j-- {
		tree[j] = tree[2*j] ^ tree[2*j+1]
	}
	x.leaves, x.tree, x.depth = leaves, tree, d
}

// due reports whether expire(now) would drop anything, and advances the
// clock when it would not.
func (x *index) due(now int64) bool {
	if now > x.now {
		x.now = now
	}
	return x.nextExp != 0 && x.nextExp <= x.now
}

// each calls fn for every item until it returns false.
func (x *index) each(fn func(*item) bool) {
	for _, leaf := range x.leaves {
		for i := range leaf {
			if !fn(&leaf[i]) {
				return
			}
		}
	}
}

// dropExpired removes the items expired at x.now and returns how many.
func (x *index) dropExpired() int {
	dropped := 0
	x.nextExp = 0
	for l, leaf := range x.leaves {
		kept := leaf[:0]
		for i := range leaf {
			it := &leaf[i]
			if it.expires != 0 && it.expires <= x.now {
				x.count(it, -1)
				x.toggle(l, it.hash)
				dropped++
				continue
			}
			x.noteExpiry(it.expires)
			kept = append(kept, *it)
		}
		clear(leaf[len(kept):])
		x.leaves[l] = kept
	}
	if dropped > 0 {
		x.shrink()
	}
	return dropped
}

func checkBucket(depth, i int) error {
	if depth < 0 || depth > MaxDigestDepth {
		return fmt.Errorf("store: digest depth %d outside [0, %d]", depth, MaxDigestDepth)
	}
	if i < 0 || i >= 1<<depth {
		return fmt.Errorf("store: bucket %d outside [0, %d)", i, 1<<depth)
	}
	return nil
}

// digest returns the 2^depth bucket hashes: a copy of one tree level when
// the tree is that deep, else a pass over the items, of which there are
// then fewer than growAt * 2^depth.
func (x *index) digest(depth int) ([]uint64, error) {
	if err := checkBucket(depth, 0); err != nil {
		return nil, err
	}
	out := make([]uint64, 1<<depth)
	switch {
	case x.n == 0:
	case depth <= int(x.depth):
		copy(out, x.tree[1<<depth:2<<depth])
	default:
		x.each(func(it *item) bool {
			out[leafOf(it.target, uint8(depth))] ^= it.hash
			return true
		})
	}
	return out, nil
}

// scanBatch is how many items a scanner copies out per call: iteration
// releases the store's lock between batches, so a callback may call the
// store.
const scanBatch = 64

// scanner walks the items of [lo, hi] in order in batches, resuming after
// the last item returned, so changes to the index between batches do not
// disturb it.
type scanner struct {
	t      id.ID
	k      string
	strict bool // resume strictly after (t, k)
	hi     id.ID
	buf    []item
}

func newScanner(lo, hi id.ID) *scanner {
	return &scanner{t: lo, hi: hi, buf: make([]item, 0, scanBatch)}
}

// next returns the next batch; empty at the end.
func (s *scanner) next(x *index) []item {
	clear(s.buf)
	s.buf = s.buf[:0]
	if x.n == 0 {
		return s.buf
	}
	leaf := leafOf(s.t, x.depth)
	items := x.leaves[leaf]
	pos := sort.Search(len(items), func(i int) bool {
		c := compareItem(s.t, s.k, &items[i])
		return c < 0 || (c == 0 && !s.strict)
	})
	for ; leaf < len(x.leaves); leaf, pos = leaf+1, 0 {
		items := x.leaves[leaf]
		for ; pos < len(items); pos++ {
			if len(s.buf) == cap(s.buf) || bytes.Compare(items[pos].target[:], s.hi[:]) > 0 {
				return s.done()
			}
			s.buf = append(s.buf, items[pos])
		}
	}
	return s.done()
}

func (s *scanner) done() []item {
	if n := len(s.buf); n > 0 {
		s.t, s.k, s.strict = s.buf[n-1].target, s.buf[n-1].key, true
	}
	return s.buf
}

var maxID = func() (x id.ID) {
	for i := range x {
		x[i] = 0xff
	}
	return x
}()

// load fills an empty index with items already sorted by (target, key).
func (x *index) load(items []item) {
	if len(items) == 0 {
		return
	}
	for i := range items {
		x.count(&items[i], +1)
		x.noteExpiry(items[i].expires)
	}
	x.leaves = [][]item{items}
	d := uint8(0)
	for x.n > growAt<<d && d < MaxDigestDepth {
		d++
	}
	x.resize(d)
}
