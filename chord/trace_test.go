package chord

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/kademlia"
)

// TestTrace: a traced Chord lookup is the forwarding chain: each answered
// hop but the last names nodes closer to the target than itself, the last
// holds the target's successor, and the hop count is the chain's length.
func TestTrace(t *testing.T) {
	net := newTestNet(t, 12)
	net.build(100, Config{})
	net.Run(3 * time.Minute)
	rng := rand.New(rand.NewPCG(12, 12))
	for i := range 50 {
		from := net.Order[rng.IntN(100)]
		target := id.Random(seededReader{R: rng})
		res := net.do(from, kademlia.FindNode{Target: target, Trace: true})
		if res.Err != nil {
			t.Fatal(res.Err)
		}
		if len(res.Trace) != res.Stats.Queries {
			t.Fatalf("lookup %d: %d hops traced, %d queries", i, len(res.Trace), res.Stats.Queries)
		}
		if len(res.Trace) == 0 {
			if from != net.trueSuccessor(target) && !from.e.ring.owns(target) && res.Stats.Hops != 0 {
				t.Fatalf("lookup %d: no trace yet %d hops", i, res.Stats.Hops)
			}
			continue
		}
		last := res.Trace[len(res.Trace)-1]
		if !last.Done || last.Nodes[0].ID != net.trueSuccessor(target).e.ID() || res.Stats.Hops != last.Depth+1 {
			t.Fatalf("lookup %d: last hop %+v, hops %d", i, last, res.Stats.Hops)
		}
		for j, h := range res.Trace[:len(res.Trace)-1] {
			if h.Done || h.Err != "" || len(h.Nodes) == 0 || h.Depth != j {
				t.Fatalf("lookup %d hop %d: %+v", i, j, h)
			}
			if d, next := id.RingDistance(h.Node.ID, target), id.RingDistance(h.Nodes[0].ID, target); id.Compare(next, d) >= 0 {
				t.Fatalf("lookup %d hop %d: %v sent us to %v, no closer to %v", i, j, h.Node.ID, h.Nodes[0].ID, target)
			}
		}
	}
	// Without Trace, no trace.
	if res := net.do(net.Order[0], kademlia.FindNode{Target: id.FromString("x")}); res.Trace != nil {
		t.Fatalf("an untraced lookup has a trace: %+v", res.Trace)
	}
}
