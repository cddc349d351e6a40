package store

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
)

// ring returns a syncRing, or skips where io_uring is missing.
func ring(t testing.TB) *syncRing {
	t.Helper()
	r, err := newSyncRing()
	if err != nil {
		if runtime.GOOS == "linux" {
			t.Skipf("io_uring unavailable (%v): a kernel of 5.6 or later, with kernel.io_uring_disabled = 0 and no seccomp filter refusing it", err)
		}
		t.Skip("io_uring is Linux's")
	}
	t.Cleanup(r.close)
	return r
}

// TestSyncRing: writes and fdatasyncs through the ring land where they
// should, one after the other, and the kernel's errors come back as
// pwrite's and fdatasync's would, leaving the ring usable.
func TestSyncRing(t *testing.T) {
	r := ring(t)
	path := filepath.Join(t.TempDir(), "log")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var want []byte
	for i := range 300 { // past the ring's 2 entries many times over
		frame := []byte(fmt.Sprintf("frame %03d|", i))
		if n, err := r.writeSync(int(f.Fd()), frame, int64(len(want))); err != nil || n != len(frame) {
			t.Fatalf("writeSync %d: wrote %d of %d bytes: %v", i, n, len(frame), err)
		}
		want = append(want, frame...)
	}
	if _, err := r.writeSync(int(f.Fd()), nil, 0); err != nil {
		t.Fatalf("a sync alone: %v", err)
	}
	if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("the file holds %q (%v), want %q", got, err, want)
	}
	var p [2]int
	if err := syscall.Pipe(p[:]); err != nil {
		t.Fatal(err)
	}
	syscall.Close(p[1])
	if _, err := r.writeSync(p[0], nil, 0); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("sync of a pipe: %v, want EINVAL as from fdatasync", err)
	}
	syscall.Close(p[0])
	if _, err := r.writeSync(p[0], []byte("x"), 0); !errors.Is(err, syscall.EBADF) {
		t.Errorf("write to a closed descriptor: %v, want EBADF", err)
	}
	if _, err := r.writeSync(int(f.Fd()), []byte("again"), 0); err != nil {
		t.Fatalf("writeSync after errors: %v", err)
	}
}

// TestLogUsesRing: where io_uring works, a durable store's log syncs
// through it; with noRing, the same store calls fdatasync and holds the
// same records across a reopen. (TestWALCrash replays logs written
// through the ring.)
func TestLogUsesRing(t *testing.T) {
	ring(t)
	t.Cleanup(func() { noRing = false })
	for _, off := range []bool{false, true} {
		noRing = off
		path := filepath.Join(t.TempDir(), "store.db")
		s, err := OpenBolt(path, Config{})
		if err != nil {
			t.Fatal(err)
		}
		if (s.log.ring != nil) == off {
			t.Fatalf("noRing %v: the log's ring is %v", off, s.log.ring)
		}
		for i := range 50 {
			if _, err := s.Put(Record{Key: string(rune('a'+i%26)) + "key", Value: []byte{byte(i)}, Version: ver(i, 1)}); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if s, err = OpenBolt(path, Config{}); err != nil {
			t.Fatal(err)
		}
		if r, ok, err := s.Get("xkey"); err != nil || !ok || r.Value[0] != 49 {
			t.Fatalf("noRing %v: after a reopen Get = %v, %v, %v", off, r, ok, err)
		}
		s.Close()
	}
}

// BenchmarkLogSync is a 2,000-byte frame written in place and its
// fdatasync, through the ring and by calls.
func BenchmarkLogSync(b *testing.B) {
	for _, via := range []string{"ring", "call"} {
		b.Run(via, func(b *testing.B) {
			var r *syncRing
			if via == "ring" {
				r = ring(b)
			}
			f, err := os.Create(filepath.Join(b.TempDir(), "log"))
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			frame := make([]byte, 2000)
			if err := writeZeros(f, 0, int64(b.N+1)*int64(len(frame))); err != nil {
				b.Fatal(err)
			}
			fdatasync(f)
			b.ResetTimer()
			for i := range b.N {
				off := int64(i) * int64(len(frame))
				if r != nil {
					_, err = r.writeSync(int(f.Fd()), frame, off)
				} else if _, err = f.WriteAt(frame, off); err == nil {
					err = fdatasync(f)
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
