package chord

import (
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/kademlia"
)

// TestPartitionRemerges splits a ring in two groups until each has closed
// a ring of its own, heals the network, and expects one ring again, with
// true successors and predecessors everywhere, within a bound set by the
// probe back-off, with no action from anyone.
func TestPartitionRemerges(t *testing.T) {
	for _, tc := range []struct {
		name string
		size int
		frac float64 // of the nodes on side A
		cut  time.Duration
	}{
		{"3|3 for a minute", 6, 0.5, time.Minute},
		{"2|4 for ten minutes", 6, 1.0 / 3, 10 * time.Minute},
		{"8|12 for half an hour", 20, 8.0 / 20, 30 * time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newTestNet(t, 21)
			n.build(tc.size, Config{})
			if !n.runUntil(5*time.Minute, func() bool { return n.ringErrors() == 0 }) {
				t.Fatalf("setup: %d nodes have a wrong neighbour", n.ringErrors())
			}
			n.run(time.Minute)
			sideA := map[netip.AddrPort]bool{}
			rng := rand.New(rand.NewPCG(5, 5))
			for _, i := range rng.Perm(tc.size)[:int(float64(tc.size)*tc.frac+0.5)] {
				sideA[n.order[i].addr] = true
			}
			n.drop = func(from, to netip.AddrPort, _ []byte) bool { return sideA[from] != sideA[to] }
			n.run(tc.cut)
			// Each side has closed a ring of its own: every successor is
			// on the node's own side.
			lost := 0
			for _, tn := range n.order {
				s, ok := tn.e.ring.successor()
				if !ok {
					t.Fatalf("node %v is alone during the partition", tn.addr)
				}
				if sideA[s.Addr] != sideA[tn.addr] {
					t.Fatalf("setup: node %v keeps a successor across the partition", tn.addr)
				}
				lost += len(tn.e.Lost())
			}
			if lost == 0 {
				t.Fatal("setup: no node lost a neighbour across the partition")
			}
			n.drop = nil
			healed := n.now
			bound := 2 * time.Minute
			if !n.runUntil(bound, func() bool { return n.ringErrors() == 0 }) {
				t.Fatalf("%d of %d nodes have a wrong successor or predecessor %v after the heal", n.ringErrors(), tc.size, bound)
			}
			t.Logf("one ring again %v after the heal", n.now.Sub(healed))
			// The successor lists are whole again, and lookups exact.
			n.run(2 * time.Minute)
			ring := n.live()
			for i, tn := range ring {
				succs := tn.e.Successors()
				for k := range min(len(succs), len(ring)-1) {
					if want := ring[(i+1+k)%len(ring)]; succs[k].ID != want.e.ID() {
						t.Fatalf("node %v successor %d: %v, want %v", tn.addr, k, succs[k].ID, want.e.ID())
					}
				}
			}
			checkLookups(t, n, 50, rng)
		})
	}
}

// TestLeaverIsNotProbed: a node that said goodbye is not remembered as
// lost.
func TestLeaverIsNotProbed(t *testing.T) {
	n := newTestNet(t, 22)
	n.build(5, Config{})
	n.runUntil(5*time.Minute, func() bool { return n.ringErrors() == 0 })
	leaver := n.order[2]
	n.do(leaver, kademlia.Handover{})
	leaver.down = true
	n.run(time.Minute)
	for _, tn := range n.live() {
		for _, l := range tn.e.Lost() {
			if l.ID == leaver.e.ID() {
				t.Errorf("node %v probes %v, which left with a goodbye", tn.addr, leaver.addr)
			}
		}
	}
	if e := n.ringErrors(); e != 0 {
		t.Errorf("%d nodes have a wrong neighbour after a leave", e)
	}
}
