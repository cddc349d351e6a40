package routing

import (
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"
)

var peer = netip.MustParseAddrPort("192.0.2.1:6881")

func TestInFlight(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	t0 := time.Unix(0, 0)
	tests := []struct {
		name string
		run  func(t *testing.T, f *InFlight[int])
	}{
		{"ids are distinct and not sequential", func(t *testing.T, f *InFlight[int]) {
			seen := map[uint16]bool{}
			var prev uint16
			seq := 0
			for i := range 1000 {
				s, ok := f.Start(rng.Uint32, peer)
				if !ok || seen[s.TID] {
					t.Fatalf("start %d: ok %v, id %d reused while in flight", i, ok, s.TID)
				}
				seen[s.TID] = true
				if i > 0 && s.TID == prev+1 {
					seq++
				}
				prev = s.TID
			}
			if seq > 10 {
				t.Fatalf("%d of 1000 ids follow their predecessor", seq)
			}
		}},
		{"a timer of a released query is not due", func(t *testing.T, f *InFlight[int]) {
			s, _ := f.Start(rng.Uint32, peer)
			f.Wake(s.TID, t0)
			f.Release(s.TID)
			if _, ok := f.Due(t0.Add(time.Hour)); ok {
				t.Fatal("a released query's timer fired")
			}
		}},
		{"a reused slot ignores its earlier timers", func(t *testing.T, f *InFlight[int]) {
			s, _ := f.Start(func() uint32 { return 7 }, peer)
			f.Wake(7, t0)
			f.Release(7)
			s2, _ := f.Start(func() uint32 { return 7 }, peer)
			if s2 != s {
				t.Fatal("the slot was not reused")
			}
			f.Wake(7, t0.Add(time.Minute))
			if _, ok := f.Due(t0.Add(time.Second)); ok {
				t.Fatal("the earlier use's timer fired for the new query")
			}
			if got, ok := f.Due(t0.Add(time.Minute)); !ok || got.TID != 7 {
				t.Fatal("the new query's timer did not fire")
			}
		}},
		{"timers fire in order", func(t *testing.T, f *InFlight[int]) {
			a, _ := f.Start(rng.Uint32, peer)
			b, _ := f.Start(rng.Uint32, peer)
			f.Wake(b.TID, t0.Add(2*time.Second))
			f.Wake(a.TID, t0.Add(time.Second))
			if at, _ := f.Next(); !at.Equal(t0.Add(time.Second)) {
				t.Fatalf("next %v", at)
			}
			if got, _ := f.Due(t0.Add(3 * time.Second)); got.TID != a.TID {
				t.Fatal("the later timer fired first")
			}
		}},
		{"a reply matches only from the address asked", func(t *testing.T, f *InFlight[int]) {
			s, _ := f.Start(rng.Uint32, peer)
			tb := AppendTID(nil, s.TID)
			if got, _, ok := f.Match(tb, peer); !ok || got != s {
				t.Fatal("the reply from the address asked did not match")
			}
			if _, _, ok := f.Match(tb, netip.MustParseAddrPort("192.0.2.2:6881")); ok {
				t.Fatal("a reply from another address matched")
			}
			if _, _, ok := f.Match(AppendTID(nil, s.TID+1), peer); ok {
				t.Fatal("another transaction id matched")
			}
			if _, _, ok := f.Match([]byte{1, 2, 3}, peer); ok {
				t.Fatal("a 3-byte transaction id matched")
			}
		}},
		{"full", func(t *testing.T, f *InFlight[int]) {
			for range MaxInFlight {
				if _, ok := f.Start(rng.Uint32, peer); !ok {
					t.Fatal("refused before full")
				}
			}
			if _, ok := f.Start(rng.Uint32, peer); ok {
				t.Fatal("started a query with every id in use")
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.run(t, new(InFlight[int])) })
	}
}

func TestTID(t *testing.T) {
	for _, tid := range []uint16{0, 1, 0x1234, 0xffff} {
		got, ok := ParseTID(AppendTID(nil, tid))
		if !ok || got != tid {
			t.Fatalf("%d came back as %d, %v", tid, got, ok)
		}
	}
	for _, b := range [][]byte{nil, {1}, {1, 2, 3}} {
		if _, ok := ParseTID(b); ok {
			t.Fatalf("%x parsed as a transaction id of ours", b)
		}
	}
}
