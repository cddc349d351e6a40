package replica

import (
	"bytes"
	"errors"
	"fmt"
	"math/bits"
	"strings"
	"time"

	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/store"
)

// Tree is a node's cached hash tree over its store. The hashes of every
// prefix down to its depth sit in one array (heap layout: hash[1] is the
// root, the 2^k prefixes of depth k are hash[1<<k : 2<<k]), so a digest
// request is answered by reading 2^c words of it. Deeper prefixes are
// hashed from the store's index on demand, a bounded scan.
//
// The cache is rebuilt from store.Digest, never from the values: after
// Invalidate (a write) at most once per rebuildEvery, at least once per
// maxAge, and at the start of every round (Refresh). A stale tree only
// makes a round descend where nothing differs, or miss a change until the
// next round; versions, not the tree, decide what a replica keeps.
//
// The zero Tree is empty and allocates nothing until first used: an engine
// that stores nothing pays nothing.
type Tree struct {
	st    store.Store
	hash  []uint64
	depth int
	n     int // the store's records when built
	built time.Time
	dirty bool
	ok    bool
}

const (
	// leafRecords is how many records a leaf of the cache covers on
	// average: the cache's depth follows the store's size.
	leafRecords = 4
	// maxTreeDepth bounds the cache: 2^17 words, 1 MiB, past 256k records.
	maxTreeDepth = 16
	// maxScan bounds the entries one request makes a node read from its
	// index beyond its cache: a hostile request costs at most this.
	maxScan = 4096
	// rebuildEvery is the least time between two rebuilds after writes.
	rebuildEvery = time.Second
	// maxAge rebuilds a cache that saw no Invalidate, should the store
	// have changed behind the engine's back (an expiry, say).
	maxAge = 30 * time.Second
)

// errTooDeep: a request would scan more than maxScan entries.
var errTooDeep = errors.New("prefix holds too many records to hash on demand: ask for a shallower fan-out")

// NewTree returns the tree of st.
func NewTree(st store.Store) *Tree { return &Tree{st: st} }

// LazyTree returns *t, the tree of st, made on first use: a node that
// never syncs nor serves dk_sync builds none. Both engines keep theirs so.
func LazyTree(t **Tree, st store.Store) *Tree {
	if *t == nil {
		*t = NewTree(st)
	}
	return *t
}

// Prepare readies the tree for a node's anti-entropy walk at now: it
// drops what expired from the store (tombstones included), so that no
// round offers an expired record, then brings the cache up to date. An
// error means no walk this time.
func (t *Tree) Prepare(now time.Time) error {
	if _, err := t.st.Expire(now); err != nil {
		return err
	}
	return t.Refresh(now)
}

// Invalidate notes that the store changed.
func (t *Tree) Invalidate() { t.dirty = true }

// Refresh rebuilds the cache now if it is stale at all.
func (t *Tree) Refresh(now time.Time) error {
	if t.ok && !t.dirty && now.Sub(t.built) < maxAge {
		return nil
	}
	return t.rebuild(now)
}

// fresh rebuilds the cache if it is due.
func (t *Tree) fresh(now time.Time) error {
	switch {
	case !t.ok, now.Sub(t.built) >= maxAge, t.dirty && now.Sub(t.built) >= rebuildEvery:
		return t.rebuild(now)
	}
	return nil
}

func (t *Tree) rebuild(now time.Time) error {
	n, _ := t.st.Stats()
	d := 0
	for d < maxTreeDepth && n > leafRecords<<uint(d) {
		d++
	}
	level, err := t.st.Digest(d)
	if err != nil {
		return fmt.Errorf("replica: hashing the store: %w", err)
	}
	if cap(t.hash) >= 2<<d && cap(t.hash) <= 8<<d {
		t.hash = t.hash[:2<<d]
	} else {
		t.hash = make([]uint64, 2<<d)
	}
	copy(t.hash[1<<d:], level)
	for j := 1<<d - 1; j >= 1; j-- {
		t.hash[j] = t.hash[2*j] ^ t.hash[2*j+1]
	}
	t.depth, t.n, t.built, t.dirty, t.ok = d, n, now, false, true
	return nil
}

// Len is the number of records the store held at the last rebuild.
func (t *Tree) Len() int { return t.n }

// Digests returns the hashes of the 2^c children of p.
func (t *Tree) Digests(now time.Time, p Prefix, c int) ([]uint64, error) {
	if err := t.fresh(now); err != nil {
		return nil, err
	}
	out := make([]uint64, 1<<uint(c))
	if l := p.Len + c; l <= t.depth {
		first := 1<<uint(l) + int(p.Bits)<<uint(c)
		copy(out, t.hash[first:first+len(out)])
		return out, nil
	}
	// Deeper than the cache: hash the prefix's entries, of which there
	// are about n/2^p.Len. A prefix inside one leaf of the cache holds
	// leafRecords on average; a hostile fan-out on a shallow prefix of a
	// large store is refused rather than scanned.
	scanned := 0
	err := t.st.Bucket(p.Len, int(p.Bits), func(e store.Entry) bool {
		scanned++
		if scanned > maxScan {
			return false
		}
		i := prefixOf(store.KeyTarget(e.Key), p.Len+c).Bits & (1<<uint(c) - 1)
		out[i] ^= e.Hash()
		return true
	})
	if err != nil {
		return nil, fmt.Errorf("replica: reading the store: %w", err)
	}
	if scanned > maxScan {
		return nil, errTooDeep
	}
	return out, nil
}

// Entries returns a page of the entries under p after the key after (all
// of them from the start when after is empty), at most MaxPayload bytes
// of them, and whether more follow. It reads at most maxScan entries.
func (t *Tree) Entries(p Prefix, after string) (es []store.Entry, more bool, err error) {
	return t.entries(p, after, MaxPayload)
}

func (t *Tree) entries(p Prefix, after string, limit int) (es []store.Entry, more bool, err error) {
	var at id.ID
	if after != "" {
		at = store.KeyTarget(after)
	}
	size, scanned := 0, 0
	err = t.st.Bucket(p.Len, int(p.Bits), func(e store.Entry) bool {
		scanned++
		if after != "" && compareTK(store.KeyTarget(e.Key), e.Key, at, after) <= 0 {
			if scanned >= maxScan {
				more = true
				return false
			}
			return true
		}
		if n := entrySize(e); size+n > limit && len(es) > 0 || scanned > maxScan {
			more = true
			return false
		}
		size += entrySize(e)
		es = append(es, e)
		return true
	})
	if err != nil {
		return nil, false, fmt.Errorf("replica: reading the store: %w", err)
	}
	return es, more, nil
}

// Serve answers a dk_sync query's "x" payload, appending the answer's
// "x" payload to dst.
func (t *Tree) Serve(now time.Time, dst []byte, x []byte) ([]byte, error) {
	return t.ServeUpTo(now, dst, x, MaxPayload)
}

// SmallPage is the page of entries a node whose address is not proven
// gets (ServeUpTo): about one record's worth, so that a forged query
// draws an answer not much larger than itself.
const SmallPage = 512

// ServeUpTo is Serve with pages of entries of at most limit bytes (at
// least one entry): an engine that cannot prove the asker's address
// answers with small pages, so that a query with a forged source is no
// amplifier. The asker's round still completes, in more queries.
func (t *Tree) ServeUpTo(now time.Time, dst []byte, x []byte, limit int) ([]byte, error) {
	q, err := ParseRequest(x)
	if err != nil {
		return dst, err
	}
	if q.Entries {
		es, more, err := t.entries(q.Prefix, q.After, min(limit, MaxPayload))
		if err != nil {
			return dst, err
		}
		return appendEntries(dst, es, more), nil
	}
	hs, err := t.Digests(now, q.Prefix, q.Fanout)
	if err != nil {
		return dst, err
	}
	return appendDigests(dst, hs), nil
}

// compareTK orders records as the store does: by target, then by key.
func compareTK(t1 id.ID, k1 string, t2 id.ID, k2 string) int {
	if c := bytes.Compare(t1[:], t2[:]); c != 0 {
		return c
	}
	return strings.Compare(k1, k2)
}

// leafDepth is the depth at which a round lists entries rather than
// hashes: where a prefix holds about leafList of n records (keys hash
// uniformly).
func leafDepth(n int) int {
	if n <= leafList {
		return 0
	}
	return min(MaxDepth, bits.Len(uint(n/leafList)))
}

// leafList is the records a listed prefix holds on average.
const leafList = 16
