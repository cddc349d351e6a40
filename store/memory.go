package store

import (
	"bytes"
	"fmt"
	"sync"
	"time"

	"github.com/dhtkit/dhtkit/id"
)

// Memory is a Store in memory. An empty one takes a few hundred bytes, so a
// simulator can hold one per node for 100k nodes; a record costs its key and
// value plus about 150 bytes.
type Memory struct {
	mu     sync.Mutex
	closed bool
	cfg    Config
	idx    index
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty in-memory store with the limits of cfg.
func NewMemory(cfg Config) *Memory {
	return &Memory{cfg: cfg.withDefaults()}
}

// Put implements Store. The store keeps a copy of r.Value.
func (m *Memory) Put(r Record) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return false, errClosed("put")
	}
	return m.put(&r)
}

func (m *Memory) put(r *Record) (bool, error) {
	c, apply, err := m.idx.prepare(&m.cfg, r)
	if !apply || err != nil {
		return false, err
	}
	if m.cfg.Admit != nil {
		var old *Record
		if c.found {
			o := m.idx.leaves[c.leaf][c.pos].record()
			old = &o
		}
		if err := admit(&m.cfg, old, r); err != nil {
			return false, err
		}
	}
	if !r.Deleted {
		c.it.value = bytes.Clone(r.Value)
	}
	m.idx.apply(&c)
	return true, nil
}

// PutAll implements Store.
func (m *Memory) PutAll(rs []Record) ([]bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, errClosed("put")
	}
	applied := make([]bool, 0, len(rs))
	for i := range rs {
		ok, err := m.put(&rs[i])
		if err != nil {
			return applied, err
		}
		applied = append(applied, ok)
	}
	return applied, nil
}

// Get implements Store.
func (m *Memory) Get(key string) (Record, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return Record{}, false, errClosed("get")
	}
	it, ok := m.idx.get(key)
	if !ok {
		return Record{}, false, nil
	}
	return it.record(), true, nil
}

// Each implements Store.
func (m *Memory) Each(fn func(Record) bool) error { return m.Range(id.ID{}, maxID, fn) }

// Range implements Store. fn runs without the store's lock held and may
// call the store; a record changed during the iteration may be seen in
// either state.
func (m *Memory) Range(lo, hi id.ID, fn func(Record) bool) error {
	return m.scan(lo, hi, func(it *item) bool { return fn(it.record()) })
}

// Bucket implements Store.
func (m *Memory) Bucket(depth, i int, fn func(Entry) bool) error {
	if err := checkBucket(depth, i); err != nil {
		return err
	}
	lo, hi := BucketRange(depth, i)
	return m.scan(lo, hi, func(it *item) bool { return fn(it.entry()) })
}

func (m *Memory) scan(lo, hi id.ID, fn func(*item) bool) error {
	s := newScanner(lo, hi)
	for {
		m.mu.Lock()
		if m.closed {
			m.mu.Unlock()
			return errClosed("scan")
		}
		batch := s.next(&m.idx)
		m.mu.Unlock()
		if len(batch) == 0 {
			return nil
		}
		for i := range batch {
			if !fn(&batch[i]) {
				return nil
			}
		}
	}
}

// Remove implements Store.
func (m *Memory) Remove(key string, v Version) error {
	_, err := m.RemoveAll([]Entry{{Key: key, Version: v}})
	return err
}

// RemoveAll is Remove of each entry's key at its version; it returns how
// many records it removed.
func (m *Memory) RemoveAll(es []Entry) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return 0, errClosed("remove")
	}
	removed := 0
	for _, e := range es {
		leaf, pos, ok := m.idx.find(KeyTarget(e.Key), e.Key)
		if ok && m.idx.leaves[leaf][pos].version == e.Version {
			m.idx.remove(leaf, pos)
			removed++
		}
	}
	return removed, nil
}

// Expire implements Store.
func (m *Memory) Expire(now time.Time) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return 0, errClosed("expire")
	}
	if !m.idx.due(toNanos(now)) {
		return 0, nil
	}
	return m.idx.dropExpired(), nil
}

// Digest implements Store.
func (m *Memory) Digest(depth int) ([]uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, errClosed("digest")
	}
	return m.idx.digest(depth)
}

// Stats implements Store.
func (m *Memory) Stats() (keys int, bytes int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.idx.n, m.idx.bytes
}

// Live returns the live values (records that are not tombstones) and
// their bytes, from counters kept on every change: status pages read it
// without a scan.
func (m *Memory) Live() (keys int, bytes int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.idx.n - m.idx.tombs, m.idx.bytes - m.idx.tbytes
}

// Close implements Store: it drops every record.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	m.idx = index{}
	return nil
}

// admit asks cfg.Admit about r, wrapping a refusal with ErrRefused.
func admit(cfg *Config, old *Record, r *Record) error {
	if err := cfg.Admit(old, *r); err != nil {
		return fmt.Errorf("store: %w: %w", ErrRefused, err) // the writer names the key (see prepare)
	}
	return nil
}

func errClosed(op string) error { return fmt.Errorf("store: %s: %w", op, ErrClosed) }
