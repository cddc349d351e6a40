package store

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"

	bolt "go.etcd.io/bbolt"
)

// The open transaction of a durable Bolt and its checkpoints (wal.go says
// why). Every read and write of the store goes through view and update,
// which use the open transaction when there is one, so that reads see
// the writes not yet checkpointed.

// Buckets by their byte in the log (walBuckets).
const (
	walRecords byte = iota
	walValues
)

// writeBatch is one write's changes to the file: done in tx, and recorded
// as a log payload when the store has a log.
type writeBatch struct {
	tx     *bolt.Tx
	logged bool
	// frame is the log frame: room for its header, then the payload
	// (wal.go), begun in the store's frames.
	frame []byte
	ops   int
}

func (w *writeBatch) put(bucket byte, k, v []byte) error {
	if w.logged {
		w.frame, k, v = appendOp(w.frame, opPut, bucket, k, v)
		w.ops++
	}
	return w.tx.Bucket(walBuckets[bucket]).Put(k, v)
}

func (w *writeBatch) del(bucket byte, k []byte) error {
	if w.logged {
		w.frame, k, _ = appendOp(w.frame, opDelete, bucket, k, nil)
		w.ops++
	}
	return w.tx.Bucket(walBuckets[bucket]).Delete(k)
}

// view runs fn on what the store holds, under safely. The caller holds
// b.mu (or is opening the store).
func (b *Bolt) view(fn func(*bolt.Tx) error) error {
	return b.safely(func() error {
		if b.tx != nil {
			return fn(b.tx)
		}
		return b.db.View(fn)
	})
}

// update runs fn as one write, under safely: when it returns nil, the
// write is on disk. Without a log that is one bbolt commit. With one, fn
// changes the open transaction, its changes are appended to the log in
// one frame with one fdatasync, and a log past checkpointBytes is
// checkpointed, as is a young store's at earlyCheckpoint operations;
// should fn or the
// append fail, the open transaction is rebuilt without fn's changes.
// The caller holds b.mu.
func (b *Bolt) update(fn func(*writeBatch) error) error {
	if b.log == nil {
		return b.safely(func() error {
			return b.db.Update(func(tx *bolt.Tx) error { return fn(&writeBatch{tx: tx}) })
		})
	}
	return b.safely(func() error {
		if b.tx == nil {
			tx, err := b.db.Begin(true)
			if err != nil {
				return err
			}
			b.tx = tx
		}
		w := &writeBatch{tx: b.tx, logged: true, frame: b.frames.begin()}
		err := fn(w)
		if w.ops == 0 {
			return err // the transaction is as it was
		}
		if err == nil {
			err = b.log.append(w.frame)
		}
		if err != nil {
			b.rebuild()
			return err
		}
		b.frames.keep(w.frame)
		b.pending = append(b.pending, w.frame[frameHeader:])
		b.txOps += w.ops
		if b.log.size >= b.checkpointAt || b.txOps >= earlyCheckpoint && b.fileOps < earlyCheckpoint {
			if err := b.checkpoint(); err != nil {
				// The write is in the log: the checkpoint is retried
				// at the next one.
				b.writeFailed(err)
			}
		}
		return nil
	})
}

// rebuild rolls the open transaction back and does again in a new one
// the writes logged since the last checkpoint: the transaction then holds
// exactly what the log does. Should that fail, the store breaks (safely):
// the log on disk still holds every write, for the next open.
func (b *Bolt) rebuild() {
	if b.tx != nil {
		b.tx.Rollback()
		b.tx = nil
	}
	if len(b.pending) == 0 {
		return
	}
	tx, err := b.db.Begin(true)
	if err == nil {
		// A panic of bbolt's is caught here, not by the caller's
		// safely, so that the transaction is not left holding bbolt's
		// lock.
		err = safely(b.path, func() error {
			for _, p := range b.pending {
				ops, err := parseOps(p)
				if err == nil {
					err = applyOps(tx, ops)
				}
				if err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			tx.Rollback()
		}
	}
	if err != nil {
		b.broken = fmt.Errorf("store: %s: redoing the writes since the last checkpoint after a failed write: %w (the store refuses every operation until it is opened again)", b.path, err)
		b.cfg.Logger.Error("store: cannot redo the logged writes; the store refuses every operation until the node restarts, which replays its log",
			"file", b.path, "err", err)
		return
	}
	b.tx = tx
}

// checkpoint commits the open transaction, which bbolt syncs, and empties
// the log. The caller holds b.mu, under safely.
func (b *Bolt) checkpoint() error {
	if b.tx != nil {
		tx := b.tx
		b.tx = nil
		if err := tx.Commit(); err != nil {
			// bbolt rolled it back; the log still holds its writes.
			b.rebuild()
			return failed("checkpoint", err)
		}
	}
	b.pending = nil
	b.frames.reset()
	b.txOps, b.fileOps = 0, b.idx.n
	return b.log.reset()
}

// openLog opens the log beside the store file and replays it: its intact
// frames are done again in the open transaction, as if just written, and
// checkpointed. A log that ends in a frame cut short or damaged is cut
// there, with a warning: a crash while appending leaves a frame that was
// never acknowledged, and damage to a frame loses the writes from it on,
// which the other replicas hold. Should the checkpoint fail (a full disk),
// the store opens all the same, its writes in the log, as when a
// checkpoint fails while it is open. The buckets exist: the caller made
// them.
func (b *Bolt) openLog() error {
	path := b.path + walSuffix
	data, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return failed("open "+path, err)
	}
	payloads, end, why := decodeFrames(data)
	// After the frames come zeros (wal.go), or damage.
	damaged := len(bytes.Trim(data[end:], "\x00")) > 0
	if damaged {
		b.cfg.Logger.Warn("store: dropped the end of the log: a write cut short by a crash, never acknowledged, or damage, whose writes the other replicas hold",
			"file", path, "offset", end, "bytes", len(data)-end, "reason", why)
	}
	if b.log, err = openWAL(path); err != nil {
		return err
	}
	b.log.size, b.log.alloc = int64(end), int64(len(data))
	if damaged {
		// Cut the tail, lest a frame appended after it be lost to it,
		// or a frame in it be replayed after the ones appended.
		if err := b.log.f.Truncate(int64(end)); err != nil {
			return failed("cut the end of "+path, err)
		}
		b.log.alloc = int64(end)
	}
	if len(payloads) == 0 {
		return nil
	}
	b.pending = payloads
	if err := b.safely(func() error { b.rebuild(); return b.broken }); err != nil {
		return fmt.Errorf("store: replaying %s: %w", path, err)
	}
	if err := b.safely(b.checkpoint); err != nil {
		if b.broken != nil {
			return err
		}
		b.writeFailed(err)
	}
	return nil
}

// abandon lets go of a store whose open failed after its log was opened.
func (b *Bolt) abandon() {
	if b.log != nil {
		b.log.close()
	}
	if b.broken != nil {
		return // bbolt may hold its locks: see Close
	}
	if b.tx != nil {
		b.tx.Rollback()
	}
	b.db.Close()
}
