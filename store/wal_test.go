package store

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// payload is a log payload of the operations given as kind, bucket, key,
// value quadruples.
func payload(ops ...walOp) []byte {
	var p []byte
	for _, op := range ops {
		p, _, _ = appendOp(p, op.kind, op.bucket, op.key, op.value)
	}
	return p
}

func TestDecodeFrames(t *testing.T) {
	p1 := payload(walOp{opPut, walRecords, []byte("k1"), []byte("header")}, walOp{opPut, walValues, []byte("k1"), []byte("value")})
	p2 := payload(walOp{opDelete, walRecords, []byte("k2"), nil}, walOp{opDelete, walValues, []byte("k2"), nil})
	two := appendFrame(appendFrame(nil, p1), p2)
	flipped := bytes.Clone(two)
	flipped[len(flipped)-1] ^= 1
	badLen := bytes.Clone(two)
	badLen[len(appendFrame(nil, p1))] ^= 1 // the second frame's length
	for _, tc := range []struct {
		name   string
		log    []byte
		frames int
		end    int
		why    string // in the reason; "" for a whole log
	}{
		{"empty", nil, 0, 0, ""},
		{"two frames", two, 2, len(two), ""},
		{"an empty payload", appendFrame(nil, nil), 1, frameHeader, ""},
		{"zeros after", append(bytes.Clone(two), make([]byte, 100)...), 2, len(two), "checksum"},
		{"header cut short", two[:len(two)-len(p2)-3], 1, len(two) - len(p2) - frameHeader, "header cut short"},
		{"payload cut short", two[:len(two)-1], 1, len(two) - len(p2) - frameHeader, "cut short"},
		{"flipped payload byte", flipped, 1, len(two) - len(p2) - frameHeader, "checksum"},
		{"flipped length byte", badLen, 1, len(two) - len(p2) - frameHeader, ""},
		{"unknown operation", appendFrame(nil, []byte{9, 0, 1, 'k'}), 0, 0, "unknown operation"},
		{"unknown bucket", appendFrame(nil, []byte{opDelete, 7, 1, 'k'}), 0, 0, "unknown bucket"},
		{"empty key", appendFrame(nil, []byte{opDelete, walRecords, 0}), 0, 0, "key of 0 bytes"},
		{"key past the payload", appendFrame(nil, []byte{opDelete, walRecords, 5, 'k'}), 0, 0, "cut short"},
		{"value missing", appendFrame(nil, []byte{opPut, walRecords, 1, 'k'}), 0, 0, "cut short"},
		{"garbage", bytes.Repeat([]byte{0xa5}, 64), 0, 0, "cut short"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			frames, end, why := decodeFrames(tc.log)
			if len(frames) != tc.frames || end != tc.end {
				t.Fatalf("decodeFrames = %d frames ending at %d (%s), want %d ending at %d", len(frames), end, why, tc.frames, tc.end)
			}
			if (end == len(tc.log)) != (why == "") || !strings.Contains(why, tc.why) {
				t.Errorf("reason %q, want one saying %q", why, tc.why)
			}
		})
	}
}

// FuzzDecodeFrames feeds logs as read from disk: decoding never panics,
// and the frames it accepts encode back to the bytes they came from.
func FuzzDecodeFrames(f *testing.F) {
	p := payload(walOp{opPut, walRecords, []byte("key"), []byte("header")}, walOp{opDelete, walValues, []byte("key"), nil})
	f.Add(appendFrame(appendFrame(nil, p), p))
	f.Add(appendFrame(nil, p)[:10])
	f.Add(append(appendFrame(nil, p), make([]byte, 16)...))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		payloads, end, why := decodeFrames(b)
		if end > len(b) || (end < len(b)) != (why != "") {
			t.Fatalf("end %d of %d, reason %q", end, len(b), why)
		}
		var again []byte
		for _, p := range payloads {
			if _, err := parseOps(p); err != nil {
				t.Fatalf("accepted a payload that does not decode: %v", err)
			}
			again = appendFrame(again, p)
		}
		if !bytes.Equal(again, b[:end]) {
			t.Fatalf("frames of %x encode to %x", b[:end], again)
		}
	})
}

// frameAt is where one write's frame lies in the log, and which write
// (the index of its state in the history) it was.
type frameAt struct {
	start, end int64
	write      int
}

// snapshot is what a crash right after a write leaves: copies of the
// store file and the log, the frames in the log, the records the store
// held.
type snapshot struct {
	dir    string
	frames []frameAt
	want   []Record
}

// copyStore copies the store file and its log at path into dir, as a
// SIGKILL would leave them: the store writes nothing between its writes.
func copyStore(t *testing.T, path, dir string) {
	t.Helper()
	for _, name := range []string{path, path + walSuffix} {
		src, err := os.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		dst, err := os.Create(filepath.Join(dir, filepath.Base(name)))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(dst, src); err != nil {
			t.Fatal(err)
		}
		src.Close()
		if err := dst.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestWALCrash runs random writes (puts, tombstones, removes, expiry)
// on a durable store checkpointing every few KiB, copies its files after
// each one as a crash would leave them, and reopens the copies: as they
// are, with the log cut anywhere, with a byte of the log flipped, with
// zeros after the log. The reopened store must hold exactly what the live
// one held after the last write whose frame is whole: every acknowledged
// write, and nothing the damage should have cost more.
func TestWALCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("hundreds of opens with fsync")
	}
	rng := rand.New(rand.NewPCG(15, 4))
	dir := t.TempDir()
	path := filepath.Join(dir, "store.db")
	s, err := OpenBolt(path, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.checkpointAt = 8 << 10
	var (
		history     [][]Record // the records after each write
		snaps       []snapshot
		frames      []frameAt
		checkpoints int
		now         = t0
	)
	for i := range 80 {
		before := s.log.size
		switch n := rng.IntN(10); {
		case n < 6:
			var rs []Record
			for range 1 + rng.IntN(4) {
				r := Record{Key: fmt.Sprint("k", rng.IntN(24)), Version: ver(i*10+rng.IntN(10), 1)}
				if rng.IntN(5) == 0 {
					r.Deleted = true
				} else {
					r.Value = bytes.Repeat([]byte{byte(i)}, rng.IntN(1500))
				}
				if rng.IntN(4) == 0 {
					r.Expires = now.Add(time.Duration(1+rng.IntN(20)) * time.Second)
				}
				rs = append(rs, r)
			}
			if _, err := s.PutAll(rs); err != nil {
				t.Fatal(err)
			}
		case n < 8:
			recs := records(t, s)
			if len(recs) > 0 {
				r := recs[rng.IntN(len(recs))]
				if err := s.Remove(r.Key, r.Version); err != nil {
					t.Fatal(err)
				}
			}
		default:
			now = now.Add(time.Duration(rng.IntN(10)) * time.Second)
			if _, err := s.Expire(now); err != nil {
				t.Fatal(err)
			}
		}
		switch after := s.log.size; {
		case after < before:
			checkpoints++
			frames = nil
		case after > before:
			frames = append(frames, frameAt{before, after, i})
		}
		history = append(history, records(t, s))
		snap := snapshot{dir: filepath.Join(dir, fmt.Sprint("crash-", i)), frames: frames, want: history[i]}
		if err := os.Mkdir(snap.dir, 0o700); err != nil {
			t.Fatal(err)
		}
		copyStore(t, path, snap.dir)
		snaps = append(snaps, snap)
	}
	if checkpoints < 3 {
		t.Fatalf("%d checkpoints: the test does not cross them", checkpoints)
	}
	// stateBefore is what the store held before write w.
	stateBefore := func(w int) []Record {
		if w == 0 {
			return nil
		}
		return history[w-1]
	}
	reopen := func(t *testing.T, snap snapshot, damage func(log []byte) []byte, want []Record, warns bool) {
		t.Helper()
		logPath := filepath.Join(snap.dir, "store.db"+walSuffix)
		orig, err := os.ReadFile(logPath)
		if err != nil {
			t.Fatal(err)
		}
		db, err := os.ReadFile(filepath.Join(snap.dir, "store.db"))
		if err != nil {
			t.Fatal(err)
		}
		defer func() { // the next variant starts from the crash again
			os.WriteFile(logPath, orig, 0o600)
			os.WriteFile(filepath.Join(snap.dir, "store.db"), db, 0o600)
		}()
		if err := os.WriteFile(logPath, damage(bytes.Clone(orig)), 0o600); err != nil {
			t.Fatal(err)
		}
		var log syncBuffer
		r, err := OpenBolt(filepath.Join(snap.dir, "store.db"), Config{Logger: slog.New(slog.NewTextHandler(&log, nil))})
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		got := records(t, r)
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		if !equalRecords(got, want) {
			t.Fatalf("reopened with %d records, want %d:\n got %v\nwant %v", len(got), len(want), got, want)
		}
		if warned := strings.Contains(log.String(), "dropped the end of the log"); warned != warns {
			t.Errorf("warned %v, want %v: %s", warned, warns, log.String())
		}
		if after, err := os.ReadFile(logPath); err != nil || len(bytes.Trim(after, "\x00")) > 0 {
			t.Errorf("log after a clean close: %d bytes not zero, %v; want zeros", len(bytes.Trim(after, "\x00")), err)
		}
	}
	for i, snap := range snaps {
		t.Run(fmt.Sprint("after write ", i), func(t *testing.T) {
			reopen(t, snap, func(b []byte) []byte { return b }, snap.want, false)
			reopen(t, snap, func(b []byte) []byte { return append(b, make([]byte, 4096)...) }, snap.want, false)
			if len(snap.frames) == 0 {
				return
			}
			last := snap.frames[len(snap.frames)-1]
			logBytes, err := os.ReadFile(filepath.Join(snap.dir, "store.db"+walSuffix))
			if err != nil {
				t.Fatal(err)
			}
			for range 2 {
				f := snap.frames[rng.IntN(len(snap.frames))]
				off := f.start + rng.Int64N(f.end-f.start)
				cut := len(bytes.Trim(logBytes[f.start:off], "\x00")) > 0
				reopen(t, snap, func(b []byte) []byte { return b[:off] }, stateBefore(f.write), cut)
				reopen(t, snap, func(b []byte) []byte { b[off] ^= 1 << rng.IntN(8); return b }, stateBefore(f.write), true)
			}
			// Cut at the end of a frame: the writes before it, in silence.
			reopen(t, snap, func(b []byte) []byte { return b[:last.start] }, stateBefore(last.write), false)
		})
	}
}

// TestWALReplayTwice is a crash after a checkpoint's commit and before
// the log is emptied: the log is replayed over a file that holds it
// already, overwrites, tombstones, removals and expiry included, and the
// store must come out as it was.
func TestWALReplayTwice(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 15))
	path := filepath.Join(t.TempDir(), "store.db")
	s, err := OpenBolt(path, Config{})
	if err != nil {
		t.Fatal(err)
	}
	recs := fill(t, s, rng, 200)
	for _, r := range recs[:50] {
		r.Value, r.Version.Time = []byte("again"), r.Version.Time+1
		if !put(t, s, r) {
			t.Fatalf("overwrite of %q refused", r.Key)
		}
	}
	for _, r := range recs[50:70] {
		if err := s.Remove(r.Key, r.Version); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := s.Expire(t0.Add(30 * time.Hour)); err != nil || n == 0 {
		t.Fatalf("Expire = %d, %v; want some expired", n, err)
	}
	want := records(t, s)
	log, err := os.ReadFile(path + walSuffix)
	if err != nil || len(log) == 0 {
		t.Fatalf("log: %d bytes, %v", len(log), err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+walSuffix, log, 0o600); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		s, err := OpenBolt(path, Config{})
		if err != nil {
			t.Fatal(err)
		}
		got := records(t, s)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if !equalRecords(got, want) {
			t.Fatalf("open %d: %d records, want %d", i, len(got), len(want))
		}
	}
}

// TestWALWrittenInPlace checks the log's shape on disk (wal.go): it grows
// in steps of zeros, a small store's by little, its frames overwrite
// zeros, and a checkpoint zeroes it rather than cutting it, so that an
// append does not change the file's size (which an fdatasync would have
// to commit as well).
func TestWALWrittenInPlace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.db")
	s, err := OpenBolt(path, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.checkpointAt = 96 << 10
	checkpoints := 0
	stat := func() (size int64, zeroTail bool) {
		t.Helper()
		b, err := os.ReadFile(path + walSuffix)
		if err != nil {
			t.Fatal(err)
		}
		return int64(len(b)), len(bytes.Trim(b[s.log.size:], "\x00")) == 0
	}
	value := bytes.Repeat([]byte{7}, 100)
	for i := range 1200 {
		before := s.log.size
		if _, err := s.PutAll([]Record{{Key: fmt.Sprint("k", i), Value: value, Version: ver(i+1, 1)}}); err != nil {
			t.Fatal(err)
		}
		size, zeroTail := stat()
		switch {
		case size != s.log.alloc || !zeroTail:
			t.Fatalf("put %d: log of %d bytes (%d written, %d allocated), zeros after the frames %v", i, size, s.log.size, s.log.alloc, zeroTail)
		case i == 0 && size > 64<<10:
			t.Fatalf("the first put grew the log to %d bytes", size)
		case s.log.size < before && size < s.checkpointAt:
			t.Fatalf("put %d: a checkpoint cut the log to %d bytes", i, size)
		case s.log.size < before:
			checkpoints++
		}
	}
	if checkpoints < 2 {
		t.Fatalf("%d checkpoints: the test does not cross them", checkpoints)
	}
	if s.log.alloc > s.checkpointAt+growLog {
		t.Errorf("log of %d bytes for checkpoints every %d", s.log.alloc, s.checkpointAt)
	}
}

// BenchmarkLogAppend is one log frame of 2,000 bytes and its fdatasync,
// as the log writes them ("in place": over zeros, wal.go) and as it wrote
// them before ("growing": each append extends the file, so that its
// fdatasync also commits the new size). It reports the sync's
// percentiles: the design rests on the tail, not the mean.
func BenchmarkLogAppend(b *testing.B) {
	frame := make([]byte, 2000)
	for _, inPlace := range []bool{true, false} {
		name := "growing"
		if inPlace {
			name = "in-place"
		}
		b.Run(name, func(b *testing.B) {
			f, err := os.Create(filepath.Join(b.TempDir(), "log"))
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			if inPlace {
				if err := writeZeros(f, 0, int64(b.N+1)*int64(len(frame))); err != nil {
					b.Fatal(err)
				}
				if err := fdatasync(f); err != nil {
					b.Fatal(err)
				}
			}
			lats := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := range b.N {
				t := time.Now()
				if _, err := f.WriteAt(frame, int64(i)*int64(len(frame))); err != nil {
					b.Fatal(err)
				}
				if err := fdatasync(f); err != nil {
					b.Fatal(err)
				}
				lats = append(lats, time.Since(t))
			}
			b.StopTimer()
			slices.Sort(lats)
			for _, p := range []int{50, 90, 99} {
				b.ReportMetric(float64(lats[len(lats)*p/100].Microseconds()), fmt.Sprintf("p%d-µs", p))
			}
		})
	}
}

// appendFrame appends the frame of payload to dst.
func appendFrame(dst, payload []byte) []byte {
	frame := append(make([]byte, frameHeader, frameHeader+len(payload)), payload...)
	putFrameHeader(frame)
	return append(dst, frame...)
}

// TestFrameArena: a frame kept is never written over before the arena
// is reset, whether the frames after it fit in its chunk, outgrow it, or
// are dropped (a failed write) and begun again.
func TestFrameArena(t *testing.T) {
	var a frameArena
	type kept struct {
		frame []byte
		want  []byte
	}
	var all []kept
	rng := rand.New(rand.NewPCG(10, 1))
	for i := range 400 {
		f := a.begin()
		if len(f) != frameHeader {
			t.Fatalf("frame %d begins with %d bytes, want %d", i, len(f), frameHeader)
		}
		n := rng.IntN(3000)
		if i%50 == 7 {
			n = frameChunk + rng.IntN(frameChunk) // outgrows any chunk
		}
		var early []byte // what a frame that moves wrote before it did
		for j := range n {
			f = append(f, byte(i+j))
			if len(f) == frameRoom {
				early = f
			}
		}
		if i%9 == 4 {
			continue // dropped: the next frame may take its room
		}
		a.keep(f)
		all = append(all, kept{f, bytes.Clone(f)})
		if early != nil && &early[0] != &f[0] {
			all = append(all, kept{early, bytes.Clone(early)})
		}
	}
	for i, k := range all {
		if !bytes.Equal(k.frame, k.want) {
			t.Fatalf("kept frame %d of %d bytes was written over", i, len(k.want))
		}
	}
	a.reset()
	if f := a.begin(); cap(f) < frameRoom {
		t.Errorf("after reset a frame begins with room for %d bytes, want at least %d", cap(f), frameRoom)
	}
}

// TestEarlyCheckpoint: a new durable store commits its open transaction
// at earlyCheckpoint operations, long before checkpointBytes of log, and
// a store that already holds that many records waits for the log.
func TestEarlyCheckpoint(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.db")
	s, err := OpenBolt(path, Config{MaxBytes: -1, MaxPerSource: -1})
	if err != nil {
		t.Fatal(err)
	}
	put := func(s *Bolt, from, n int) {
		t.Helper()
		rs := make([]Record, 0, 16)
		for i := from; i < from+n; i += 16 {
			rs = rs[:0]
			for j := i; j < min(i+16, from+n); j++ {
				rs = append(rs, Record{Key: fmt.Sprintf("key-%06d", j), Value: []byte("v"), Version: ver(j, 1)})
			}
			if _, err := s.PutAll(rs); err != nil {
				t.Fatal(err)
			}
		}
	}
	checkpoints := 0
	for i := 0; i < 2*earlyCheckpoint; i += 16 {
		before, file := s.log.size, s.fileOps
		put(s, i, 16)
		if s.log.size >= before {
			continue
		}
		checkpoints++
		if file >= earlyCheckpoint {
			t.Fatalf("checkpointed early with %d records in the file", file)
		}
		if s.txOps != 0 || s.fileOps != s.idx.n {
			t.Fatalf("after the checkpoint: %d operations open, file counted %d records of %d", s.txOps, s.fileOps, s.idx.n)
		}
	}
	// A record with a small value is one operation (flagInline), so the
	// file holds earlyCheckpoint records after the first checkpoint.
	if checkpoints != 1 {
		t.Fatalf("%d checkpoints while a new store took %d records, want 1", checkpoints, 2*earlyCheckpoint)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = OpenBolt(path, Config{MaxBytes: -1, MaxPerSource: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.fileOps != 2*earlyCheckpoint {
		t.Fatalf("reopened store counts %d records in its file, want %d", s.fileOps, 2*earlyCheckpoint)
	}
	before := s.log.size
	put(s, 2*earlyCheckpoint, 2*earlyCheckpoint)
	if s.log.size <= before {
		t.Fatalf("a store of %d records checkpointed early (log %d bytes, was %d)", 2*earlyCheckpoint, s.log.size, before)
	}
	for _, k := range []string{"key-000000", fmt.Sprintf("key-%06d", 4*earlyCheckpoint-1)} {
		if _, ok, err := s.Get(k); err != nil || !ok {
			t.Fatalf("Get(%s) = %v, %v after the checkpoints", k, ok, err)
		}
	}
}
