package kademlia

import (
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/routing"
)

// benchEngine is a mainline-mode engine whose table holds 100 contacts,
// answering queries from one loopback peer. Its limits are raised, not
// lifted, so that every answer pays for the limiter's bookkeeping and the
// byte budget of an unproven source.
func benchEngine(b *testing.B) (*Engine, time.Time) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	rng := rand.New(rand.NewPCG(1, 2))
	e := New(Config{Network: "mainline", Rand: seededReader{R: rng},
		RateLimit: 1e12, RateBurst: 1e12, GlobalRate: 1e12, RateBytes: 1 << 50, GlobalBytes: 1 << 50}, now)
	for i := range 100 {
		addr := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 1, byte(i >> 8), byte(i)}), 6881)
		e.Table().Observe(now, id.Random(seededReader{R: rng}), addr, routing.Responded, time.Millisecond)
	}
	return e, now
}

// The hot path of a DHT node: decode a query, update the table, answer.
// It must not allocate.
func BenchmarkAnswer(b *testing.B) {
	for _, bc := range []struct {
		name string
		pkt  string
	}{
		{"ping", "d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe"},
		{"find_node", "d1:ad2:id20:abcdefghij01234567896:target20:mnopqrstuvwxyz123456e1:q9:find_node1:t2:aa1:y1:qe"},
		{"get_peers", "d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz123456e1:q9:get_peers1:t2:aa1:y1:qe"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			e, now := benchEngine(b)
			from := netip.MustParseAddrPort("127.0.0.1:4000")
			pkt := []byte(bc.pkt)
			b.ReportAllocs()
			b.SetBytes(int64(len(pkt)))
			for b.Loop() {
				e.Receive(now, from, pkt)
				if rd := e.Ready(); len(rd.Packets) != 1 {
					b.Fatalf("%d replies", len(rd.Packets))
				}
			}
		})
	}
}

func TestAnswerDoesNotAllocate(t *testing.T) {
	e, now := benchEngine(nil)
	from := netip.MustParseAddrPort("127.0.0.1:4000")
	pkt := []byte("d1:ad2:id20:abcdefghij01234567896:target20:mnopqrstuvwxyz123456e1:q9:find_node1:t2:aa1:y1:qe")
	e.Receive(now, from, pkt) // warm the scratch buffers
	e.Ready()
	if n := testing.AllocsPerRun(1000, func() {
		e.Receive(now, from, pkt)
		if rd := e.Ready(); len(rd.Packets) != 1 {
			t.Fatalf("%d replies", len(rd.Packets))
		}
	}); n != 0 {
		t.Errorf("answering find_node allocates %.1f times", n)
	}
}

// TestReplicasFoundAllocs: picking a key's replica set from the table
// allocates the two slices it returns and nothing else (its candidates go
// in the engine's scratch).
func TestReplicasFoundAllocs(t *testing.T) {
	e, now := benchEngine(nil)
	target := id.Random(seededReader{R: rand.New(rand.NewPCG(3, 4))})
	want, _ := e.replicasFound(now, target, nil, true) // warm the scratch
	if len(want) != e.cfg.replicas() {
		t.Fatalf("%d members, want %d", len(want), e.cfg.replicas())
	}
	if n := testing.AllocsPerRun(100, func() {
		got, _ := e.replicasFound(now, target, nil, true)
		if len(got) != len(want) || got[0].Node != want[0].Node {
			t.Fatalf("members %v, want %v", got, want)
		}
	}); n != 2 {
		t.Errorf("replicasFound allocates %.0f times, want 2", n)
	}
}
