package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"os"

	bolt "go.etcd.io/bbolt"
)

// The write-ahead log of a durable Bolt. A bbolt commit costs two
// fdatasyncs (its pages, then its meta page); a put appended to a log of
// its own costs one. So every write of a durable store goes first to the
// log, path + ".wal", as one frame synced once, and into one bbolt
// transaction left open: bbolt writes nothing to its file until that
// transaction commits, with its own fsyncs, at a checkpoint (every
// checkpointBytes of log, and on Close), after which the log is emptied.
// On disk there is thus always a bbolt file as of the last checkpoint and
// a log of every write acknowledged since; an open replays the log into
// the file and checkpoints.
//
// The transaction is kept open rather than committed with bbolt's NoSync:
// bbolt reuses the pages a commit frees at the next one, so unsynced
// commits could overwrite pages that the last synced meta page still
// points to, and a power cut would leave a file the log cannot mend.
//
// The log is written in place over zeros: an fdatasync after an append
// that grows a file must also commit its new size, which on ext4 is a
// journal commit (p90 2.4 ms against 0.26 ms on the project's machine,
// BENCHMARKS.md, "Session 5"), so the log grows in steps of zeros
// (growLog) and each frame then overwrites zeros, and a checkpoint zeroes
// what the log held rather than cutting the file. So a log is its frames
// followed by zeros, and replay ends at the first frame header of zeros,
// in silence. A crash while a checkpoint zeroes the log leaves frames that
// the file already holds, replayed harmlessly; should the first be
// zeroed and not the rest, the open warns of a damaged log and drops
// them, losing nothing.
//
// A frame is: the payload's length (4 bytes, little endian), the CRC32C of
// those 4 bytes and the payload (4 bytes), the payload. A payload is a
// sequence of operations on bbolt's two buckets, each one byte of kind, one
// of bucket, the key (uvarint length, bytes) and, for a put, the value
// (likewise). The operations are what the batch did to the file, whole
// values included, so replaying a frame twice, or over a file that
// already holds it, leaves the same file: replay needs no notion of
// versions. A frame is all or nothing: one that is cut short, fails its
// checksum or does not decode ends the log.

const (
	walSuffix = ".wal"
	// frameHeader is the length and checksum before each payload.
	frameHeader = 8
	// checkpointBytes is the log size at which the open transaction is
	// committed and the log emptied. It bounds the work of an open and
	// the memory of the open transaction (the log's payloads are kept
	// until the checkpoint: bbolt holds on to the bytes put in it).
	checkpointBytes = 4 << 20
	// growLog is the most a log grows by at once, in zeros; a small
	// log grows by its own size, so that a store that writes little
	// (or a small disk) holds little more than it writes.
	growLog = 1 << 20
	// keepLog is the size past which a checkpoint cuts the log rather
	// than zeroing it: a log grown by a frame far larger than usual
	// gives its disk back.
	keepLog = 2 * checkpointBytes
	// earlyCheckpoint: a store whose file holds fewer records than
	// this also checkpoints once its open transaction holds this many
	// operations. bbolt splits a leaf only when a transaction commits,
	// so until a new store's first checkpoint every record goes into
	// one leaf, each insert moving the ones after it: over the 4 MiB of
	// log of a normal checkpoint (some 20,000 small records) that cost
	// more CPU than the fsyncs. After one early commit the records are
	// spread over leaves of a page each, and stay so (BENCHMARKS.md,
	// "Session 10 (issue 15)").
	earlyCheckpoint = 1024
	// frameChunk is the size of the chunks frames are cut from, and
	// frameRoom the least room a frame begins with.
	frameChunk = 64 << 10
	frameRoom  = 4 << 10
)

// zeros is what the log is grown and emptied with.
var zeros [64 << 10]byte

const (
	opPut byte = 1 + iota
	opDelete
)

// walBuckets are the buckets an operation names, by its bucket byte.
var walBuckets = [][]byte{bucketRecords, bucketValues}

// walOp is one operation of a payload. Its key and value alias the
// payload.
type walOp struct {
	kind       byte
	bucket     byte
	key, value []byte
}

// appendOp appends one operation to a payload and returns the payload and
// the key and value as they lie in it: bbolt keeps the slices it is given
// until its transaction commits, so the open transaction is given these,
// which nobody changes, rather than the caller's.
func appendOp(p []byte, kind, bucket byte, k, v []byte) (out, key, value []byte) {
	p = append(p, kind, bucket)
	p = binary.AppendUvarint(p, uint64(len(k)))
	p = append(p, k...)
	key = p[len(p)-len(k):]
	if kind == opPut {
		p = binary.AppendUvarint(p, uint64(len(v)))
		p = append(p, v...)
		value = p[len(p)-len(v):]
	}
	return p, key, value
}

// parseOps decodes a payload, all of it or none.
func parseOps(p []byte) ([]walOp, error) {
	var ops []walOp
	field := func() ([]byte, error) {
		n, w := binary.Uvarint(p)
		if w <= 0 || n > uint64(len(p)-w) {
			return nil, errors.New("operation cut short")
		}
		f := p[w : w+int(n) : w+int(n)]
		p = p[w+int(n):]
		return f, nil
	}
	for len(p) > 0 {
		if len(p) < 2 {
			return nil, errors.New("operation cut short")
		}
		op := walOp{kind: p[0], bucket: p[1]}
		p = p[2:]
		if op.kind != opPut && op.kind != opDelete {
			return nil, fmt.Errorf("unknown operation %d", op.kind)
		}
		if int(op.bucket) >= len(walBuckets) {
			return nil, fmt.Errorf("unknown bucket %d", op.bucket)
		}
		var err error
		if op.key, err = field(); err != nil {
			return nil, err
		}
		if len(op.key) == 0 || len(op.key) > bolt.MaxKeySize {
			return nil, fmt.Errorf("key of %d bytes", len(op.key))
		}
		if op.kind == opPut {
			if op.value, err = field(); err != nil {
				return nil, err
			}
			if len(op.value) > bolt.MaxValueSize {
				return nil, fmt.Errorf("value of %d bytes", len(op.value))
			}
		}
		ops = append(ops, op)
	}
	return ops, nil
}

// apply does the operations in tx.
func applyOps(tx *bolt.Tx, ops []walOp) error {
	for _, op := range ops {
		bk := tx.Bucket(walBuckets[op.bucket])
		var err error
		if op.kind == opPut {
			err = bk.Put(op.key, op.value)
		} else {
			err = bk.Delete(op.key)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// putFrameHeader fills in the header of frame, its first frameHeader
// bytes, for the payload after them.
func putFrameHeader(frame []byte) {
	payload := frame[frameHeader:]
	binary.LittleEndian.PutUint32(frame[:4], uint32(len(payload)))
	crc := crc32.Update(crc32.Checksum(frame[:4], castagnoli), castagnoli, payload)
	binary.LittleEndian.PutUint32(frame[4:], crc)
}

// decodeFrames decodes the intact frames at the start of b: their
// payloads, each checked to decode (parseOps), and the offset where they
// end. why says what ended the log before len(b): a frame cut short, a
// bad checksum, a payload that does not decode.
func decodeFrames(b []byte) (payloads [][]byte, end int, why string) {
	for end < len(b) {
		rest := b[end:]
		if len(rest) < frameHeader {
			return payloads, end, fmt.Sprintf("a frame header cut short (%d bytes)", len(rest))
		}
		n := binary.LittleEndian.Uint32(rest)
		crc := binary.LittleEndian.Uint32(rest[4:])
		if uint64(n) > uint64(len(rest)-frameHeader) {
			return payloads, end, fmt.Sprintf("a frame of %d bytes cut short at %d", n, len(rest)-frameHeader)
		}
		payload := rest[frameHeader : frameHeader+int(n) : frameHeader+int(n)]
		if crc32.Update(crc32.Checksum(rest[:4], castagnoli), castagnoli, payload) != crc {
			return payloads, end, "a frame failing its checksum"
		}
		if _, err := parseOps(payload); err != nil {
			return payloads, end, fmt.Sprintf("a frame that does not decode: %v", err)
		}
		payloads = append(payloads, payload)
		end += frameHeader + int(n)
	}
	return payloads, end, ""
}

// wal is the log file of a durable Bolt.
type wal struct {
	f    *os.File
	path string
	size int64 // the end of the last intact frame: where the next goes
	// alloc is the file's length: from size to alloc it holds zeros.
	alloc int64
	// ring writes the frames and does the fdatasyncs where io_uring is
	// there (syncring_linux.go); nil: the log calls pwrite and
	// fdatasync itself.
	ring *syncRing
}

// maxRingWrite is the largest frame written through the ring: Linux
// writes at most 2 GiB at once, and the log's own loop finishes a longer
// one.
const maxRingWrite = 1 << 30

// noRing keeps the log from using io_uring: for the tests of the path
// without it.
var noRing bool

func openWAL(path string) (*wal, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, failed("open "+path, err)
	}
	w := &wal{f: f, path: path}
	if !noRing {
		w.ring, _ = newSyncRing()
	}
	return w, nil
}

// writeSync writes b at off and waits until the log's data is on the
// disk (fdatasync): through the ring while it works.
func (w *wal) writeSync(b []byte, off int64) error {
	if w.ring != nil && len(b) <= maxRingWrite {
		n, err := w.ring.writeSync(int(w.f.Fd()), b, off)
		switch err {
		case errRingBroken: // written again below, whole
			w.ring.close()
			w.ring = nil
		case errShortWrite: // the rest below, which says why it stops
			b, off = b[n:], off+int64(n)
		default:
			return err
		}
	}
	if len(b) > 0 {
		if _, err := w.f.WriteAt(b, off); err != nil {
			return err
		}
	}
	return fdatasync(w.f)
}

// frameArena hands out the frames of an open transaction, cut one after
// the other from chunks, rather than a slice grown from nothing for each
// (its first allocations and copies were a tenth of a durable node's
// CPU). bbolt keeps the keys and values it is given, which lie in the
// frames (appendOp), until its transaction commits, so no byte of a frame
// kept is written again before the checkpoint resets the arena. Its zero
// value is ready.
type frameArena struct{ chunk []byte }

// begin returns an empty frame: room for the header, and capacity for a
// payload up to the chunk's end, past which append moves it out.
func (a *frameArena) begin() []byte {
	if cap(a.chunk)-len(a.chunk) < frameRoom {
		a.chunk = make([]byte, 0, frameChunk)
	}
	n := len(a.chunk)
	return a.chunk[n : n+frameHeader]
}

// keep marks frame, the last one begun, as written to the log: the next
// begins after it. A frame that outgrew its chunk leaves the chunk
// behind, since the keys it wrote there before it moved stay in use.
func (a *frameArena) keep(frame []byte) {
	n := len(a.chunk)
	if n+len(frame) <= cap(a.chunk) && &frame[0] == &a.chunk[n : n+1][0] {
		a.chunk = a.chunk[:n+len(frame)]
		return
	}
	a.chunk = nil
}

// reset lets the frames go: the transaction that used them committed.
func (a *frameArena) reset() { a.chunk = a.chunk[:0] }

// append writes frame (frameHeader bytes of room, then a payload) after
// the last one and waits for the disk. On an error the log is cut back to
// where it was, so that a frame half written never hides the ones after
// it; should that fail too, the next frame overwrites it, written at the
// same offset.
func (w *wal) append(frame []byte) error {
	if uint64(len(frame)-frameHeader) > math.MaxUint32 {
		return fmt.Errorf("store: append to %s: %w: a batch of %d bytes", w.path, ErrTooLarge, len(frame)-frameHeader)
	}
	putFrameHeader(frame)
	end := w.size + int64(len(frame))
	if end > w.alloc {
		w.grow(end)
	}
	if err := w.writeSync(frame, w.size); err != nil {
		w.f.Truncate(w.size)
		w.alloc = w.size
		return failed("append to "+w.path, err)
	}
	w.size = end
	w.alloc = max(w.alloc, end)
	return nil
}

// grow extends the log with zeros to at least end. Should the disk be
// full, the log stays as it was: the frame is then written past its end,
// as into a log that is not grown, and fails or not on its own.
func (w *wal) grow(end int64) {
	to := max(end, w.alloc+min(max(w.alloc, 64<<10), growLog))
	if err := writeZeros(w.f, w.alloc, to-w.alloc); err != nil {
		w.f.Truncate(w.alloc)
		return
	}
	w.alloc = to
}

// reset empties the log: the caller has committed what it holds. The
// frames are zeroed, not cut, so that the next ones are written over
// zeros (see the top of this file).
func (w *wal) reset() error {
	var err error
	if w.alloc > keepLog {
		err = w.f.Truncate(0)
		w.alloc = 0
	} else {
		err = writeZeros(w.f, 0, w.size)
	}
	if err == nil {
		err = w.writeSync(nil, 0)
	}
	if err != nil {
		return failed("empty "+w.path, err)
	}
	w.size = 0
	return nil
}

// writeZeros writes n zero bytes to f at off.
func writeZeros(f *os.File, off, n int64) error {
	for n > 0 {
		k := min(n, int64(len(zeros)))
		if _, err := f.WriteAt(zeros[:k], off); err != nil {
			return err
		}
		off, n = off+k, n-k
	}
	return nil
}

func (w *wal) close() error {
	if w.ring != nil {
		w.ring.close()
		w.ring = nil
	}
	return w.f.Close()
}
