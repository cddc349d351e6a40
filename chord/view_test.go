package chord

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/id"
)

// TestRingView checks Ring against the true ring of a converged network:
// the predecessor and successors are the true neighbours, and every
// finger row names the true successor of its start, with no row
// repeating the node of the row before.
func TestRingView(t *testing.T) {
	for _, n := range []int{2, 9, 64} {
		net := newTestNet(t, uint64(n))
		net.build(n, Config{})
		if !net.RunUntil(5*time.Minute, func() bool { return net.ringErrors() == 0 }) {
			t.Fatalf("%d nodes: the ring did not converge", n)
		}
		net.Run(3 * time.Minute)
		for _, tn := range net.Order {
			v := tn.e.Ring()
			if v.Self != tn.e.ID() {
				t.Fatalf("Self %v, want %v", v.Self, tn.e.ID())
			}
			if !v.HasPredecessor || net.trueSuccessor(id.AddPow2(v.Predecessor.ID, 0)) != tn {
				t.Fatalf("%d nodes: node %v predecessor %v (known %v) is not the node before it", n, tn.e.ID(), v.Predecessor.ID, v.HasPredecessor)
			}
			if want := min(n-1, 8); len(v.Successors) != want {
				t.Fatalf("%d nodes: %d successors, want %d", n, len(v.Successors), want)
			}
			prev := tn.e.ID()
			for i, s := range v.Successors {
				if want := net.trueSuccessor(id.AddPow2(prev, 0)); s.ID != want.e.ID() {
					t.Fatalf("%d nodes: successor %d is %v, want %v", n, i, s.ID, want.e.ID())
				}
				prev = s.ID
			}
			if len(v.Fingers) == 0 || len(v.Fingers) > n-1 {
				t.Fatalf("%d nodes: %d finger rows, want 1..%d", n, len(v.Fingers), n-1)
			}
			for j, f := range v.Fingers {
				if f.Start != id.AddPow2(tn.e.ID(), f.Index) {
					t.Fatalf("row %d: start %v is not self+2^%d", j, f.Start, f.Index)
				}
				if want := net.trueSuccessor(f.Start); f.Node.ID != want.e.ID() {
					t.Fatalf("%d nodes: finger %d (start %v) = %v, want %v", n, f.Index, f.Start, f.Node.ID, want.e.ID())
				}
				if j > 0 && (f.Node.ID == v.Fingers[j-1].Node.ID || f.Index <= v.Fingers[j-1].Index) {
					t.Fatalf("row %d repeats or goes back: %+v after %+v", j, f, v.Fingers[j-1])
				}
			}
		}
	}
}

// TestRingViewAlone: a node alone has no predecessor, successors or fingers.
func TestRingViewAlone(t *testing.T) {
	e := New(Config{}, time.Unix(0, 0))
	v := e.Ring()
	if v.HasPredecessor || len(v.Successors) != 0 || len(v.Fingers) != 0 {
		t.Fatalf("a lone node's ring: %+v", v)
	}
}

// TestLinearRouting: walking successors reaches the same successor as
// fingers do, in many more steps (the Chord lab's comparison).
func TestLinearRouting(t *testing.T) {
	mean := map[string]float64{}
	for _, routing := range []string{RoutingFingers, RoutingLinear} {
		net := newTestNet(t, 21)
		net.build(60, Config{Routing: routing})
		if !net.RunUntil(5*time.Minute, func() bool { return net.ringErrors() == 0 }) {
			t.Fatalf("%s: the ring did not converge", routing)
		}
		net.Run(2 * time.Minute)
		mean[routing] = checkLookups(t, net, 100, rand.New(rand.NewPCG(21, 21)))
	}
	// 60 nodes: fingers about ½·log2(60)+1 ≈ 4; linear about 60/2.
	if mean[RoutingFingers] > 6 || mean[RoutingLinear] < 15 {
		t.Fatalf("mean hops: fingers %.1f, linear %.1f", mean[RoutingFingers], mean[RoutingLinear])
	}
	t.Logf("60 nodes, mean hops: fingers %.2f, linear %.2f", mean[RoutingFingers], mean[RoutingLinear])
}
