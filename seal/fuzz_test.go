package seal

import (
	"bytes"
	"testing"
	"time"
)

// FuzzOpen feeds Open arbitrary datagrams: it must never panic, never
// open what was not sealed with the key, and never let a refused datagram
// change the replay state.
func FuzzOpen(f *testing.F) {
	r := ring(f, 1)
	s := New(r, node(1), Config{})
	f.Add(s.Seal(nil, []byte("d1:y1:qe"), t0))
	f.Add(s.Seal(nil, nil, t0))
	f.Add([]byte("d1:ad2:id20:aaaaaaaaaaaaaaaaaaaae1:q4:ping1:t2:aa1:y1:qe"))
	f.Add(bytes.Repeat([]byte{version}, Overhead))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, packet []byte) {
		o := New(r, node(2), Config{})
		in := bytes.Clone(packet)
		payload, _, err := o.Open(in, t0)
		if err != nil {
			if len(o.win) != 0 || o.Stats().Opened != 0 {
				t.Fatalf("a refused datagram changed the replay state")
			}
			return
		}
		// It opened: it must be one of the fuzzer's genuine seeds (only s
		// holds the key), so sealing its payload again opens the same way,
		// and opening it twice is a replay.
		if len(payload) != len(packet)-Overhead {
			t.Fatalf("payload of %d bytes from a %d-byte datagram", len(payload), len(packet))
		}
		if _, _, err := o.Open(bytes.Clone(packet), t0); err == nil {
			t.Fatal("the same datagram opened twice")
		}
	})
}

// FuzzOpenClock varies the receiver's clock and the sequence of two
// genuine datagrams: a datagram opens at most once, whatever the order.
func FuzzOpenClock(f *testing.F) {
	f.Add(int64(0), uint8(0), uint8(1))
	f.Add(int64(61_000), uint8(3), uint8(3))
	f.Fuzz(func(t *testing.T, skewMs int64, i, j uint8) {
		r := ring(t, 1)
		s := New(r, node(1), Config{})
		var ps [][]byte
		for range 8 {
			ps = append(ps, s.Seal(nil, []byte("x"), t0))
		}
		o := New(r, node(2), Config{})
		at := t0.Add(time.Duration(skewMs) * time.Millisecond)
		opened := 0
		for _, k := range []uint8{i % 8, j % 8, i % 8} {
			if _, _, err := o.Open(bytes.Clone(ps[k]), at); err == nil {
				opened++
			}
		}
		want := 2
		if i%8 == j%8 {
			want = 1
		}
		if d := skewMs; d > DefaultMaxAge.Milliseconds() || -d > DefaultMaxAge.Milliseconds() {
			want = 0
		}
		if opened != want {
			t.Fatalf("%d of the datagrams opened, want %d", opened, want)
		}
	})
}
