package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/dhtkit/dhtkit/id"
)

// Bucket names in the bbolt file. Both are keyed by target || key, so they
// iterate in target order. A value of up to inlineMax bytes follows its
// header in the records bucket, one bbolt write; a larger one lies apart,
// in the values bucket, so that opening a store, which reads every
// header, reads at most inlineMax bytes of value per record.
var (
	bucketRecords = []byte("records") // header (appendMeta), then an inline value
	bucketValues  = []byte("values")  // larger values; none for a tombstone
)

// Bolt is a Store in a bbolt file. Every write is on disk before it
// returns, appended to a log with one fdatasync and checkpointed to the
// bbolt file now and then (wal.go), so an acknowledged Put survives a
// crash. The index of
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
	path   string
	// broken is set once bbolt panicked on the file: see safely.
	broken error

	// A durable store's log, its open transaction, the payloads
	// logged since the last checkpoint and the frames they lie in
	// (wal.go, waltx.go); log is nil for a store opened without fsync.
	log     *wal
	tx      *bolt.Tx
	pending [][]byte
	frames  frameArena
	// txOps counts the operations in the open transaction, fileOps the
	// records the store held at the last checkpoint (earlyCheckpoint).
	txOps, fileOps int
	// checkpointAt is checkpointBytes, smaller in tests.
	checkpointAt int64

	// What the store met of a failing disk (Faults); lastWarn and
	// unlogged rate-limit the log lines of failed writes.
	damagedRecords, writeErrs int64
	lastWarn                  time.Time
	unlogged                  int
}

var _ Store = (*Bolt)(nil)

// OpenBolt opens or creates the store in the file at path. It waits at
// most a second for another process holding the file to let go.
//
// A damaged file is reported, never a panic and never a silent loss: an
// empty or truncated file, unreadable meta pages and pages that fail
// bbolt's consistency check make OpenBolt fail with an error wrapping
// ErrDamaged that names the file (MoveDamaged sets it aside); a damaged
// record is dropped, counted (Faults) and logged, and left for the other
// replicas to restore.
func OpenBolt(path string, cfg Config) (*Bolt, error) { return openBolt(path, cfg, false) }

// openBolt is OpenBolt, with fsync turned off when noSync is set: for tests
// whose subject is not durability, which would otherwise wait on the disk.
func openBolt(path string, cfg Config, noSync bool) (*Bolt, error) {
	cfg = cfg.withDefaults()
	warning, err := checkFile(path)
	if err != nil {
		return nil, err
	}
	var db *bolt.DB
	err = safely(path, func() error {
		var err error
		// Not NoFreelistSync: an open would then rebuild the freelist by
		// reading every page on goroutines of bbolt's own, where a
		// damaged page panics out of reach of safely and kills the node
		// (TestBoltCorrupt); and it made durable puts no faster
		// (BENCHMARKS.md, "Not done in round 4").
		db, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, NoSync: noSync})
		return err
	})
	if err != nil {
		if errors.Is(err, ErrDamaged) {
			return nil, err
		}
		if errors.Is(err, berrors.ErrInvalid) || errors.Is(err, berrors.ErrChecksum) || errors.Is(err, berrors.ErrVersionMismatch) {
			return nil, damaged(path, err.Error())
		}
		return nil, failed("open "+path, err)
	}
	if warning != "" {
		cfg.Logger.Warn("store: "+warning, "file", path)
	}
	b := &Bolt{cfg: cfg, db: db, path: path, checkpointAt: checkpointBytes}
	if err := b.check(); err != nil {
		db.Close()
		return nil, err
	}
	if err := b.makeBuckets(); err != nil {
		db.Close()
		return nil, err
	}
	if !noSync {
		if err := b.openLog(); err != nil {
			b.abandon()
			return nil, err
		}
	}
	if err := b.load(); err != nil {
		b.abandon()
		return nil, err
	}
	b.fileOps = b.idx.n
	return b, nil
}

// maxCheckErrors bounds the errors of bbolt's check that an open reports.
const maxCheckErrors = 5

// check runs bbolt's consistency check over the whole file: every page
// reachable once, every other one free. It reads every page, about a
// second per GiB from the page cache, once per open.
func (b *Bolt) check() error {
	var errs []error
	err := b.view(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			if len(errs) < maxCheckErrors {
				errs = append(errs, err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(errs) > 0 {
		return damaged(b.path, fmt.Sprintf("its consistency check failed: %v", errors.Join(errs...)))
	}
	return nil
}

// makeBuckets creates the buckets if needed.
func (b *Bolt) makeBuckets() error {
	err := b.safely(func() error {
		return b.db.Update(func(tx *bolt.Tx) error {
			for _, name := range [][]byte{bucketRecords, bucketValues} {
				if _, err := tx.CreateBucketIfNotExists(name); err != nil {
					return err
				}
			}
			return nil
		})
	})
	if err != nil {
		return failed("open "+b.path, err)
	}
	return nil
}

// load rebuilds the index from the file. A record whose header fails its
// checks is dropped from the file, logged and counted: the other replicas
// hold it.
func (b *Bolt) load() error {
	var (
		items []item
		bad   [][]byte
		why   []error
	)
	err := b.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketRecords).ForEach(func(k, v []byte) error {
			it, err := decodeRecord(k, v)
			if err != nil {
				bad = append(bad, bytes.Clone(k))
				why = append(why, err)
				return nil
			}
			items = append(items, it)
			return nil
		})
	})
	if err != nil {
		return err
	}
	for i, k := range bad {
		b.damagedRecords++
		if i < maxCheckErrors {
			b.cfg.Logger.Warn("store: dropped a damaged record; the other replicas will restore it",
				"file", b.path, "db_key", fmt.Sprintf("%.64x", k), "err", why[i])
		}
	}
	if len(bad) > maxCheckErrors {
		b.cfg.Logger.Warn("store: dropped more damaged records", "file", b.path, "count", len(bad)-maxCheckErrors)
	}
	if len(bad) > 0 {
		err := b.update(func(w *writeBatch) error {
			for _, k := range bad {
				if err := w.del(walRecords, k); err != nil {
					return err
				}
				if err := w.del(walValues, k); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return failed("open "+b.path+": dropping damaged records", err)
		}
	}
	b.idx.load(items)
	return nil
}

// decodeRecord decodes one entry of the records bucket: its bbolt key
// (target || key) and header.
func decodeRecord(k, v []byte) (item, error) {
	if len(k) < id.Len {
		return item{}, fmt.Errorf("%w: key %x too short", errCorrupt, k)
	}
	it := item{key: string(k[id.Len:])}
	copy(it.target[:], k)
	if it.target != KeyTarget(it.key) {
		return item{}, fmt.Errorf("%w: key %q filed under target %v", errCorrupt, it.key, it.target)
	}
	if err := decodeMeta(v, &it); err != nil {
		return item{}, fmt.Errorf("key %q: %w", it.key, err)
	}
	it.hash = entryHash(entryID(it.target, it.key), it.version, it.deleted)
	return it, nil
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
	err := b.update(func(w *writeBatch) error {
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
					var bad error
					if !o.Deleted {
						o.Value, bad = readValue(w.tx, it)
					}
					if bad == nil { // a damaged record counts as none
						old = &o
					}
				}
				if err := admit(&b.cfg, old, r); err != nil {
					limit = err
					return nil // commit the records before this one
				}
			}
			c.it.inline = !r.Deleted && len(r.Value) <= inlineMax
			if err := b.write(w, &c, r.Value); err != nil {
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
		b.writeFailed(err)
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

// write puts c's record in the file: its header, and its value after it
// when inline, else in the values bucket. A value the key held apart
// before is deleted; none is deleted when there is none, which saves
// the write a search.
func (b *Bolt) write(w *writeBatch, c *change, value []byte) error {
	k := dbKey(c.it.target, c.it.key)
	// One allocation: room for the header and, when inline, the value.
	n := metaFixed + 2*binary.MaxVarintLen64 + len(c.it.source) + sumLen
	if c.it.inline {
		n += len(value)
	}
	e := appendMeta(make([]byte, 0, n), &c.it)
	if c.it.inline {
		e = append(e, value...)
	}
	if err := w.put(walRecords, k, e); err != nil {
		return err
	}
	switch {
	case !c.it.inline && !c.it.deleted:
		return w.put(walValues, k, value)
	case c.found && apart(&b.idx.leaves[c.leaf][c.pos]):
		return w.del(walValues, k)
	}
	return nil
}

// apart says whether it's value lies in the values bucket.
func apart(it *item) bool { return !it.inline && !it.deleted }

// remove deletes it from the file: its header, and its value when
// apart.
func remove(w *writeBatch, it *item) error {
	k := dbKey(it.target, it.key)
	if err := w.del(walRecords, k); err != nil || !apart(it) {
		return err
	}
	return w.del(walValues, k)
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
	var bad error
	err := b.view(func(tx *bolt.Tx) error {
		r.Value, bad = readValue(tx, it)
		return nil
	})
	if err != nil {
		return Record{}, false, err
	}
	if bad != nil {
		// Not served: this replica lacks the record until repair.
		b.dropDamaged([]item{*it}, []error{bad})
		return Record{}, false, nil
	}
	return r, true, nil
}

// readValue returns a copy of it's value, checked against its header;
// bbolt's bytes live only as long as the transaction.
func readValue(tx *bolt.Tx, it *item) ([]byte, error) {
	var v []byte
	if it.inline {
		v = inlineValue(tx.Bucket(bucketRecords).Get(dbKey(it.target, it.key)), it)
	} else {
		v = tx.Bucket(bucketValues).Get(dbKey(it.target, it.key))
	}
	if err := verifyValue(v, it); err != nil {
		return nil, fmt.Errorf("store: value of %q: %w", it.key, err)
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
		var (
			bad  []item
			errs []error
		)
		err := b.view(func(tx *bolt.Tx) error {
			for i := range batch {
				r := batch[i].record()
				if !r.Deleted {
					var err error
					if r.Value, err = readValue(tx, &batch[i]); err != nil {
						bad, errs = append(bad, batch[i]), append(errs, err)
						continue
					}
				}
				recs = append(recs, r)
			}
			return nil
		})
		if len(bad) > 0 {
			b.dropDamaged(bad, errs)
		}
		b.mu.Unlock()
		if err != nil {
			return err
		}
		if len(batch) == 0 {
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
	_, err := b.RemoveAll([]Entry{{Key: key, Version: v}})
	return err
}

// RemoveAll is Remove of each entry's key at its version, in one
// transaction (one fsync), for callers that release many records at once
// (the chunk collector). It returns how many records it removed; on an
// error none is removed.
func (b *Bolt) RemoveAll(es []Entry) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return 0, errClosed("remove")
	}
	var hit []item
	for _, e := range es {
		leaf, pos, ok := b.idx.find(KeyTarget(e.Key), e.Key)
		if ok && b.idx.leaves[leaf][pos].version == e.Version {
			hit = append(hit, b.idx.leaves[leaf][pos])
		}
	}
	if len(hit) == 0 {
		return 0, nil
	}
	err := b.update(func(w *writeBatch) error {
		for i := range hit {
			if err := remove(w, &hit[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.writeFailed(err)
		op := fmt.Sprintf("remove %d records", len(hit))
		if len(hit) == 1 {
			op = fmt.Sprintf("remove %q", hit[0].key)
		}
		return 0, failed(op, err)
	}
	for i := range hit {
		if leaf, pos, ok := b.idx.find(hit[i].target, hit[i].key); ok {
			b.idx.remove(leaf, pos)
		}
	}
	return len(hit), nil
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
	err := b.update(func(w *writeBatch) error {
		var err error
		b.idx.each(func(it *item) bool {
			if it.expires == 0 || it.expires > b.idx.now {
				return true
			}
			err = remove(w, it)
			return err == nil
		})
		return err
	})
	if err != nil {
		b.writeFailed(err)
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
	if b.log != nil {
		if b.broken == nil {
			if cerr := b.safely(b.checkpoint); cerr != nil {
				// Nothing is lost: the log keeps the writes for the
				// next open, which replays them.
				b.writeFailed(cerr)
			}
		}
		if b.tx != nil && b.broken == nil {
			b.tx.Rollback()
		}
		b.tx = nil
		b.log.close()
	}
	if b.broken != nil {
		// bbolt may hold its own locks after its panic: closing could
		// hang. The process lets go of the file when it exits.
		return nil
	}
	if err := b.db.Close(); err != nil {
		return failed("close", err)
	}
	return nil
}

// Path returns the file the store lives in.
func (b *Bolt) Path() string { return b.path }

// Durable reports whether a Put returns only once the write is on disk
// (false for a test store opened without fsync): an engine commits such a
// store off its lock (replica.Commits.Async), since the fsync is slow.
func (b *Bolt) Durable() bool { return !b.db.NoSync }
