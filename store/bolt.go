package store

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/dhtkit/dhtkit/id"
)

// Bucket names in the bbolt file. Both are keyed by target || key, so they
// iterate in target order. The headers are apart from the values so that
// opening a store reads only the headers.
var (
	bucketRecords = []byte("records") // header (appendMeta)
	bucketValues  = []byte("values")  // value bytes; none for a tombstone
)

// Bolt is a Store in a bbolt file. Every write is committed with fsync
// before it returns, so an acknowledged Put survives a crash. The index of
// headers and digests is kept in memory as well (about 150 bytes per record
// beyond the key) and rebuilt from the file on open; values stay on disk.
// Records that expired while the file was closed are served until the
// first Expire, which the owner should call right after opening.
type Bolt struct {
	mu     sync.Mutex
	closed bool
	cfg    Config
	idx    index
	db     *bolt.DB
}

var _ Store = (*Bolt)(nil)

// OpenBolt opens or creates the store in the file at path. It waits at
// most a second for another process holding the file to let go.
func OpenBolt(path string, cfg Config) (*Bolt, error) { return openBolt(path, cfg, false) }

// openBolt is OpenBolt, with fsync turned off when noSync is set: for tests
// whose subject is not durability, which would otherwise wait on the disk.
func openBolt(path string, cfg Config, noSync bool) (*Bolt, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, NoSync: noSync})
	if err != nil {
		return nil, failed("open "+path, err)
	}
	b := &Bolt{cfg: cfg.withDefaults(), db: db}
	if err := b.load(); err != nil {
		db.Close()
		return nil, fmt.Errorf("%w (file %s)", err, path)
	}
	return b, nil
}

// load creates the buckets if needed and rebuilds the index from the file.
func (b *Bolt) load() error {
	err := b.db.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketRecords, bucketValues} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return failed("open", err)
	}
	var items []item
	err = b.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketRecords).ForEach(func(k, v []byte) error {
			if len(k) < id.Len {
				return fmt.Errorf("store: %w: key %x too short", errCorrupt, k)
			}
			it := item{key: string(k[id.Len:])}
			copy(it.target[:], k)
			if it.target != id.FromString(it.key) {
				return fmt.Errorf("store: %w: key %q filed under target %v", errCorrupt, it.key, it.target)
			}
			if err := decodeMeta(v, &it); err != nil {
				return fmt.Errorf("store: key %q: %w", it.key, err)
			}
			it.hash = entryHash(it.target, it.version, it.deleted)
			items = append(items, it)
			return nil
		})
	})
	if err != nil {
		return err
	}
	b.idx.load(items)
	return nil
}

// failed wraps err from bbolt, marking a full disk with ErrFull.
func failed(op string, err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) || errors.Is(err, syscall.EFBIG) {
		return fmt.Errorf("store: %s: %w: %w", op, ErrFull, err)
	}
	return fmt.Errorf("store: %s: %w", op, err)
}

func dbKey(t id.ID, key string) []byte {
	k := make([]byte, 0, id.Len+len(key))
	return append(append(k, t[:]...), key...)
}

// Put implements Store; it returns once the write is on disk.
func (b *Bolt) Put(r Record) (bool, error) {
	applied, err := b.PutAll([]Record{r})
	return len(applied) == 1 && applied[0], err
}

// PutAll implements Store, in one transaction.
func (b *Bolt) PutAll(rs []Record) ([]bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, errClosed("put")
	}
	// The index changes as the records go in, so that each sees the ones
	// before it; undo restores it should the commit fail.
	type undo struct {
		target id.ID
		key    string
		old    item
		hadOld bool
	}
	var (
		undos   []undo
		applied = make([]bool, 0, len(rs))
		limit   error
	)
	err := b.db.Update(func(tx *bolt.Tx) error {
		records, values := tx.Bucket(bucketRecords), tx.Bucket(bucketValues)
		for i := range rs {
			r := &rs[i]
			c, apply, err := b.idx.prepare(&b.cfg, r)
			if err != nil {
				limit = err
				return nil // commit the records before this one
			}
			if !apply {
				applied = append(applied, false)
				continue
			}
			if b.cfg.Admit != nil {
				var old *Record
				if c.found {
					it := &b.idx.leaves[c.leaf][c.pos]
					o := it.record()
					if !o.Deleted {
						if o.Value, err = readValue(tx, it); err != nil {
							return err
						}
					}
					old = &o
				}
				if err := admit(&b.cfg, old, r); err != nil {
					limit = err
					return nil // commit the records before this one
				}
			}
			k := dbKey(c.it.target, c.it.key)
			if err := records.Put(k, appendMeta(nil, &c.it)); err != nil {
				return err
			}
			if r.Deleted {
				err = values.Delete(k)
			} else {
				err = values.Put(k, r.Value)
			}
			if err != nil {
				return err
			}
			u := undo{target: c.it.target, key: c.it.key, hadOld: c.found}
			if c.found {
				u.old = b.idx.leaves[c.leaf][c.pos]
			}
			undos = append(undos, u)
			b.idx.apply(&c)
			applied = append(applied, true)
		}
		return nil
	})
	if err != nil {
		for i := len(undos) - 1; i >= 0; i-- {
			u := &undos[i]
			leaf, pos, _ := b.idx.find(u.target, u.key)
			if u.hadOld {
				b.idx.apply(&change{it: u.old, leaf: leaf, pos: pos, found: true})
			} else {
				b.idx.remove(leaf, pos)
			}
		}
		op := fmt.Sprintf("put %d records", len(rs))
		if len(rs) == 1 {
			op = fmt.Sprintf("put %q", rs[0].Key)
		}
		return nil, failed(op, err)
	}
	return applied, limit
}

// Get implements Store.
func (b *Bolt) Get(key string) (Record, bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return Record{}, false, errClosed("get")
	}
	it, ok := b.idx.get(key)
	if !ok {
		return Record{}, false, nil
	}
	r := it.record()
	if r.Deleted {
		return r, true, nil
	}
	err := b.db.View(func(tx *bolt.Tx) error {
		var err error
		r.Value, err = readValue(tx, it)
		return err
	})
	if err != nil {
		return Record{}, false, err
	}
	return r, true, nil
}

// readValue returns a copy of it's value; bbolt's bytes live only as long
// as the transaction.
func readValue(tx *bolt.Tx, it *item) ([]byte, error) {
	v := tx.Bucket(bucketValues).Get(dbKey(it.target, it.key))
	if v == nil || len(v) != it.size {
		return nil, fmt.Errorf("store: value of %q: %w: %d bytes on disk, header says %d",
			it.key, errCorrupt, len(v), it.size)
	}
	return bytes.Clone(v), nil
}

// Each implements Store.
func (b *Bolt) Each(fn func(Record) bool) error { return b.Range(id.ID{}, maxID, fn) }

// Range implements Store. fn runs without the store's lock held and may
// call the store; a record changed during the iteration may be seen in
// either state.
func (b *Bolt) Range(lo, hi id.ID, fn func(Record) bool) error {
	s := newScanner(lo, hi)
	recs := make([]Record, 0, scanBatch)
	for {
		recs = recs[:0]
		b.mu.Lock()
		if b.closed {
			b.mu.Unlock()
			return errClosed("range")
		}
		batch := s.next(&b.idx)
		err := b.db.View(func(tx *bolt.Tx) error {
			for i := range batch {
				r := batch[i].record()
				if !r.Deleted {
					var err error
					if r.Value, err = readValue(tx, &batch[i]); err != nil {
						return err
					}
				}
				recs = append(recs, r)
			}
			return nil
		})
		b.mu.Unlock()
		if err != nil {
			return err
		}
		if len(recs) == 0 {
			return nil
		}
		for _, r := range recs {
			if !fn(r) {
				return nil
			}
		}
	}
}

// Bucket implements Store; it reads only the in-memory index.
func (b *Bolt) Bucket(depth, i int, fn func(Entry) bool) error {
	if err := checkBucket(depth, i); err != nil {
		return err
	}
	lo, hi := BucketRange(depth, i)
	s := newScanner(lo, hi)
	for {
		b.mu.Lock()
		if b.closed {
			b.mu.Unlock()
			return errClosed("bucket")
		}
		batch := s.next(&b.idx)
		b.mu.Unlock()
		if len(batch) == 0 {
			return nil
		}
		for i := range batch {
			if !fn(batch[i].entry()) {
				return nil
			}
		}
	}
}

// Remove implements Store.
func (b *Bolt) Remove(key string, v Version) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return errClosed("remove")
	}
	t := id.FromString(key)
	leaf, pos, ok := b.idx.find(t, key)
	if !ok || b.idx.leaves[leaf][pos].version != v {
		return nil
	}
	k := dbKey(t, key)
	err := b.db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketRecords).Delete(k); err != nil {
			return err
		}
		return tx.Bucket(bucketValues).Delete(k)
	})
	if err != nil {
		return failed(fmt.Sprintf("remove %q", key), err)
	}
	b.idx.remove(leaf, pos)
	return nil
}

// Expire implements Store. The records go in one transaction: all or none.
func (b *Bolt) Expire(now time.Time) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return 0, errClosed("expire")
	}
	prev := b.idx.now
	if !b.idx.due(toNanos(now)) {
		return 0, nil
	}
	err := b.db.Update(func(tx *bolt.Tx) error {
		var err error
		b.idx.each(func(it *item) bool {
			if it.expires == 0 || it.expires > b.idx.now {
				return true
			}
			k := dbKey(it.target, it.key)
			if err = tx.Bucket(bucketRecords).Delete(k); err == nil {
				err = tx.Bucket(bucketValues).Delete(k)
			}
			return err == nil
		})
		return err
	})
	if err != nil {
		// Keep the clock where the records still are.
		b.idx.now = prev
		return 0, failed("expire", err)
	}
	return b.idx.dropExpired(), nil
}

// Digest implements Store.
func (b *Bolt) Digest(depth int) ([]uint64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, errClosed("digest")
	}
	return b.idx.digest(depth)
}

// Stats implements Store.
func (b *Bolt) Stats() (keys int, bytes int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.idx.n, b.idx.bytes
}

// Live returns the live values (records that are not tombstones) and
// their bytes, from counters kept on every change: status pages read it
// without a scan.
func (b *Bolt) Live() (keys int, bytes int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.idx.n - b.idx.tombs, b.idx.bytes - b.idx.tbytes
}

// Close implements Store: it closes the file.
func (b *Bolt) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	b.idx = index{}
	if err := b.db.Close(); err != nil {
		return failed("close", err)
	}
	return nil
}

// Path returns the file the store lives in.
func (b *Bolt) Path() string { return b.db.Path() }
