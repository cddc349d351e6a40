package kademlia

import (
	"bytes"
	"time"

	"github.com/dhtkit/dhtkit/id"
)

// itemStore holds the BEP 44 items this node stores for others, each for
// ItemTTL after its last put (publishers re-put hourly), at most max of
// them (libtorrent's max_dht_items): a new item in a full store evicts the
// least recently put one, as libtorrent does.
type itemStore struct {
	ttl     time.Duration
	max     int
	items   map[id.ID]*storedItem
	evicted uint64
}

type storedItem struct {
	Item
	expires time.Time // its last put + ttl: the earliest is the least recent
}

// Errors of a put against what is stored, with their BEP 44 codes.
type putError struct {
	code int
	msg  string
}

func (e *putError) Error() string { return e.msg }

var (
	errCASMismatch = &putError{301, "CAS mismatch: the stored seq differs from cas"}
	errSeqTooOld   = &putError{302, "sequence number less than current"}
)

func (s *itemStore) get(target id.ID, now time.Time) *storedItem {
	it := s.items[target]
	if it == nil || !it.expires.After(now) {
		return nil
	}
	return it
}

// put stores a validated item. For a mutable item it enforces that seq
// never goes back (302) and the compare-and-swap (301).
func (s *itemStore) put(now time.Time, target id.ID, it *Item, cas int64, useCAS bool) error {
	if s.items == nil {
		s.items = make(map[id.ID]*storedItem)
	}
	old := s.items[target]
	if old != nil && it.Mutable() {
		if useCAS && old.Seq != cas {
			return errCASMismatch
		}
		if it.Seq < old.Seq || it.Seq == old.Seq && !bytes.Equal(it.V, old.V) {
			return errSeqTooOld
		}
	}
	if old == nil && len(s.items) >= s.max {
		s.evictOldest()
	}
	// Copy: it refers to the packet buffer.
	s.items[target] = &storedItem{
		Item: Item{
			V: bytes.Clone(it.V), K: bytes.Clone(it.K), Sig: bytes.Clone(it.Sig),
			Salt: bytes.Clone(it.Salt), Seq: it.Seq,
		},
		expires: now.Add(s.ttl),
	}
	return nil
}

// evictOldest drops the least recently put item. It walks the store,
// which max bounds (700 by default), and runs only for a new item in a
// full store.
func (s *itemStore) evictOldest() {
	var oldest id.ID
	var at time.Time
	for k, it := range s.items {
		if at.IsZero() || it.expires.Before(at) {
			oldest, at = k, it.expires
		}
	}
	delete(s.items, oldest)
	s.evicted++
}

func (s *itemStore) expire(now time.Time) {
	for k, it := range s.items {
		if !it.expires.After(now) {
			delete(s.items, k)
		}
	}
}
