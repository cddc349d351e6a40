package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"os"
	"time"
)

// Damage: a disk or a person may leave a store file empty, truncated or
// with garbage in it. bbolt trusts its file: it panics on pages it cannot
// read and, when its newest meta page is unreadable, silently opens the
// previous transaction. The store therefore checks the file before and
// while bbolt opens it, runs every bbolt call under safely, and checksums
// every record (codec.go), so that damage is reported, never a panic, and
// a damaged record is dropped and counted, never served.

// bbolt's meta page, as laid out on disk after the 16-byte page header
// (internal/common.Meta, native byte order): magic, version, page size,
// flags, root bucket (page, sequence), freelist page, high-water page,
// txid, then the FNV-64a of the 56 bytes before it.
const (
	boltMagic      = 0xED0CDAED
	boltVersion    = 2
	boltPageHeader = 16
	boltMetaLen    = 64
)

type boltMeta struct {
	pageSize uint32
	freelist uint64 // the freelist's page; boltNoFreelist: none on disk
	pgid     uint64 // the high-water mark: pages [0, pgid) are in use
	txid     uint64
}

const (
	boltNoFreelist   = 0xffffffffffffffff
	boltFreelistFlag = 0x10
)

// readMeta reads the meta page at off; ok is false if it does not hold a
// valid one.
func readMeta(f io.ReaderAt, off int64) (m boltMeta, ok bool) {
	var b [boltMetaLen]byte
	if _, err := f.ReadAt(b[:], off+boltPageHeader); err != nil {
		return m, false
	}
	e := binary.NativeEndian
	if e.Uint32(b[0:]) != boltMagic || e.Uint32(b[4:]) != boltVersion {
		return m, false
	}
	h := fnv.New64a()
	h.Write(b[:56])
	if h.Sum64() != e.Uint64(b[56:]) {
		return m, false
	}
	m = boltMeta{pageSize: e.Uint32(b[8:]), freelist: e.Uint64(b[32:]), pgid: e.Uint64(b[40:]), txid: e.Uint64(b[48:])}
	return m, m.pageSize >= 512 && m.pageSize&(m.pageSize-1) == 0
}

// checkFile looks at the store file at path for the damage bbolt would
// not report or would panic on: an empty file (bbolt would make it a new,
// empty store), no readable meta page, a file shorter than its pages. A
// missing file is fine: it is a new store. warning is set when one meta
// page is unreadable: bbolt then opens the transaction before the last,
// which the other replicas repair, but the operator should know.
func checkFile(path string) (warning string, err error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", failed("open "+path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", failed("open "+path, err)
	}
	size := fi.Size()
	if size == 0 {
		return "", damaged(path, "it is empty (0 bytes); every store file holds at least its meta pages")
	}
	m0, ok0 := readMeta(f, 0)
	pageSize := int64(m0.pageSize)
	var m1 boltMeta
	ok1 := false
	if ok0 {
		m1, ok1 = readMeta(f, pageSize)
	} else {
		for _, ps := range []int64{int64(os.Getpagesize()), 4096, 8192, 16384, 65536} {
			if m1, ok1 = readMeta(f, ps); ok1 && int64(m1.pageSize) == ps {
				pageSize = ps
				break
			}
			ok1 = false
		}
	}
	newest := m0
	switch {
	case !ok0 && !ok1:
		return "", damaged(path, fmt.Sprintf("neither meta page is readable (%d bytes)", size))
	case !ok0:
		newest = m1
		warning = "meta page 0 is damaged"
	case !ok1:
		warning = "meta page 1 is damaged"
	case m1.txid > m0.txid:
		newest = m1
	}
	if want := int64(newest.pgid) * pageSize; size < want {
		return "", damaged(path, fmt.Sprintf("it is truncated: %d bytes, its pages reach %d", size, want))
	}
	// bbolt reads the freelist while opening, and panics if its page is
	// not one: check first, since a panic inside bbolt's open leaves the
	// file locked until the process exits.
	if fl := newest.freelist; fl != boltNoFreelist {
		var h [16]byte
		if fl >= newest.pgid {
			return "", damaged(path, fmt.Sprintf("its freelist page %d lies past its last page %d", fl, newest.pgid))
		}
		if _, err := f.ReadAt(h[:], int64(fl)*pageSize); err != nil {
			return "", damaged(path, fmt.Sprintf("reading its freelist page: %v", err))
		}
		if id, flags := binary.NativeEndian.Uint64(h[:]), binary.NativeEndian.Uint16(h[8:]); id != fl || flags&boltFreelistFlag == 0 {
			return "", damaged(path, fmt.Sprintf("its freelist page %d holds page %d of type %#x", fl, id, flags))
		}
	}
	if warning != "" {
		warning += "; opening the transaction before it, so the last write this node acknowledged may be missing until repair brings it back from the other replicas"
	}
	return warning, nil
}

func damaged(path, why string) error {
	return fmt.Errorf("store: %s: %w: %s", path, ErrDamaged, why)
}

// safely runs fn, turning a panic, which bbolt raises on pages it cannot
// make sense of, into an error wrapping ErrDamaged. bbolt's View and Update
// roll their transaction back when fn panics, so the database stays usable
// for the pages that are sound.
func safely(path string, fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = damaged(path, fmt.Sprintf("bbolt failed reading it: %v", r))
		}
	}()
	return fn()
}

// safely is the package's safely for a store in use. A panic of bbolt's
// may leave its locks held and its pages half written, so the first one
// breaks the store for good: every later call fails with the same error
// wrapping ErrDamaged, and one line in the log says what to do.
func (b *Bolt) safely(fn func() error) error {
	if b.broken != nil {
		return b.broken
	}
	err := safely(b.path, fn)
	if errors.Is(err, ErrDamaged) {
		b.broken = fmt.Errorf("%w (the store refuses every operation until it is opened again)", err)
		b.cfg.Logger.Error("store: the file is damaged; the store refuses every operation until the node restarts, which reports the file and how to set it aside",
			"file", b.path, "err", err)
	}
	return err
}

// MoveDamaged renames the store file at path aside, to
// path.damaged-YYYYMMDDTHHMMSSZ (now, UTC), and returns the new name, so
// that a node can start with an empty store and refill it from the other
// replicas while the damaged file stays for inspection. Its log stays: the
// new store replays it, so the writes since the last checkpoint, each a
// whole record, are not lost with the file.
func MoveDamaged(path string, now time.Time) (string, error) {
	to := path + ".damaged-" + now.UTC().Format("20060102T150405Z")
	if err := os.Rename(path, to); err != nil {
		return "", fmt.Errorf("store: moving the damaged %s aside: %w", path, err)
	}
	return to, nil
}

// writeWarnEvery is how often, at most, a store logs that its disk refuses
// writes: once is enough to be seen, and a busy node must not flood its log.
const writeWarnEvery = 10 * time.Second

// writeFailed logs a write the disk refused, at most once per
// writeWarnEvery with the count of those not logged. The caller holds b.mu.
func (b *Bolt) writeFailed(err error) {
	b.writeErrs++
	now := time.Now()
	if now.Sub(b.lastWarn) < writeWarnEvery {
		b.unlogged++
		return
	}
	b.cfg.Logger.Error("store: cannot write: the node refuses writes until the disk takes them again",
		"file", b.path, "err", err, "failures_not_logged", b.unlogged)
	b.lastWarn, b.unlogged = now, 0
}

// dropDamaged removes the records in bad, whose value failed its check,
// from the file and the index: they are no longer served, and read repair
// or anti-entropy stores them again, since this replica now lacks them.
// The caller holds b.mu.
func (b *Bolt) dropDamaged(bad []item, errs []error) {
	for i := range bad {
		it := &bad[i]
		b.damagedRecords++
		b.cfg.Logger.Warn("store: dropped a damaged record; the other replicas will restore it",
			"file", b.path, "key", it.key, "version", it.version, "err", errs[i])
		leaf, pos, ok := b.idx.find(it.target, it.key)
		if !ok || b.idx.leaves[leaf][pos].version != it.version {
			continue
		}
		// Both buckets: the value may be the damaged part, or lie apart
		// with the header saying otherwise.
		k := dbKey(it.target, it.key)
		err := b.update(func(w *writeBatch) error {
			if err := w.del(walRecords, k); err != nil {
				return err
			}
			return w.del(walValues, k)
		})
		if err != nil {
			// Still out of the index, so never served; the file keeps it
			// until the key is written again.
			b.writeFailed(err)
		}
		b.idx.remove(leaf, pos)
	}
}

// Faults reports what the store met of a failing disk since it opened:
// records dropped because they were damaged, and writes that failed.
func (b *Bolt) Faults() (damagedRecords, writeErrors int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.damagedRecords, b.writeErrs
}
