package chord

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/kademlia"
)

// checkLookups runs n lookups of random targets from random live nodes
// and fails the test unless every one returns the true successor followed
// by the nodes after it. It returns the mean hops.
func checkLookups(t *testing.T, net *testNet, n int, rng *rand.Rand) float64 {
	t.Helper()
	live := net.live()
	hops := 0
	for i := range n {
		from := live[rng.IntN(len(live))]
		target := id.Random(seededReader{R: rng})
		res := net.do(from, kademlia.FindNode{Target: target})
		if res.Err != nil {
			t.Fatalf("lookup %d of %v from %v: %v", i, target, from.e.ID(), res.Err)
		}
		want := net.trueSuccessor(target)
		if len(res.Nodes) == 0 || res.Nodes[0].ID != want.e.ID() {
			t.Fatalf("lookup %d of %v: got %v first, want %v", i, target, res.Nodes, want.e.ID())
		}
		// The rest follow on the ring, in order, up to K.
		if len(res.Nodes) != min(8, len(live)) {
			t.Fatalf("lookup %d: %d nodes, want %d", i, len(res.Nodes), min(8, len(live)))
		}
		for j := 1; j < len(res.Nodes); j++ {
			if next := net.trueSuccessor(id.AddPow2(res.Nodes[j-1].ID, 0)); res.Nodes[j].ID != next.e.ID() {
				t.Fatalf("lookup %d: node %d is %v, want %v", i, j, res.Nodes[j].ID, next.e.ID())
			}
		}
		hops += res.Stats.Hops
	}
	return float64(hops) / float64(n)
}

func TestRingConverges(t *testing.T) {
	net := newTestNet(t, 1)
	net.build(100, Config{})
	if !net.RunUntil(5*time.Minute, func() bool { return net.ringErrors() == 0 }) {
		t.Fatalf("%d of 100 nodes have a wrong successor or predecessor after 5 virtual minutes", net.ringErrors())
	}
	// Let fix_fingers finish a pass, then every lookup must be exact.
	net.Run(2 * time.Minute)
	rng := rand.New(rand.NewPCG(7, 7))
	mean := checkLookups(t, net, 300, rng)
	// Chord's mean path is about ½·log2(N) ≈ 3.3 for 100 nodes; an
	// iterative lookup counts the final answer too.
	if mean < 1 || mean > 6 {
		t.Errorf("mean hops %.2f, want about ½·log2(100)+1", mean)
	}
	t.Logf("100 nodes: mean hops %.2f, %d datagrams", mean, net.Sent)
}

func TestFingersPointAtTrueSuccessors(t *testing.T) {
	net := newTestNet(t, 2)
	net.build(64, Config{})
	net.Run(3 * time.Minute)
	for _, tn := range net.Order {
		for i := 0; i < id.Bits; i++ {
			f, ok := tn.e.Finger(i)
			start := id.AddPow2(tn.e.ID(), i)
			want := net.trueSuccessor(start)
			if want == tn {
				continue // the node itself: no finger
			}
			if !ok || f.ID != want.e.ID() {
				t.Fatalf("node %v finger %d = %v, want %v", tn.e.ID(), i, f.ID, want.e.ID())
			}
		}
	}
}

func TestCrashesHeal(t *testing.T) {
	net := newTestNet(t, 3)
	net.build(100, Config{})
	net.Run(2 * time.Minute)
	// Crash 20 random nodes at once, without a word.
	rng := rand.New(rand.NewPCG(3, 3))
	for _, i := range rng.Perm(len(net.Order))[:20] {
		net.Order[i].down = true
	}
	if !net.RunUntil(5*time.Minute, func() bool { return net.ringErrors() == 0 }) {
		t.Fatalf("%d of 80 nodes have a wrong successor or predecessor 5 virtual minutes after 20 crashes", net.ringErrors())
	}
	net.Run(time.Minute)
	checkLookups(t, net, 200, rng)
}

func TestLookupsRouteAroundFreshCrashes(t *testing.T) {
	net := newTestNet(t, 4)
	net.build(60, Config{})
	net.Run(2 * time.Minute)
	rng := rand.New(rand.NewPCG(4, 4))
	for _, i := range rng.Perm(len(net.Order))[:6] {
		net.Order[i].down = true
	}
	// Straight away: stale fingers time out, lookups take the next best
	// node. The answer may still name a crashed node as successor until
	// stabilize notices, so judge only that every lookup completes.
	for range 50 {
		from := net.live()[rng.IntN(54)]
		if res := net.do(from, kademlia.FindNode{Target: id.Random(seededReader{R: rng})}); res.Err != nil {
			t.Fatalf("lookup right after crashes: %v", res.Err)
		}
	}
}

func TestDeterministic(t *testing.T) {
	run := func() string {
		net := newTestNet(t, 9)
		net.build(30, Config{})
		net.Run(time.Minute)
		rng := rand.New(rand.NewPCG(9, 9))
		s := fmt.Sprint(net.Sent)
		for range 20 {
			res := net.do(net.Order[rng.IntN(30)], kademlia.FindNode{Target: id.Random(seededReader{R: rng})})
			s += fmt.Sprint(res.Nodes[0].ID, res.Stats.Hops, res.Stats.Duration)
		}
		for _, tn := range net.Order {
			s += fmt.Sprint(tn.e.Successors(), tn.e.Fingers(), tn.e.Stats())
		}
		return s
	}
	if a, b := run(), run(); a != b {
		t.Fatal("two runs with the same seed differ")
	}
}

func TestAloneAndTwo(t *testing.T) {
	net := newTestNet(t, 5)
	a := net.add(Config{})
	res := net.do(a, kademlia.FindNode{Target: id.FromString("x")})
	if res.Err != nil || len(res.Nodes) != 1 || res.Nodes[0].ID != a.e.ID() {
		t.Fatalf("a lone node's lookup: %v %v, want itself", res.Err, res.Nodes)
	}
	b := net.add(Config{Bootstrap: []netip.AddrPort{a.addr}})
	net.RunUntil(time.Minute, func() bool { return net.ringErrors() == 0 })
	if net.ringErrors() != 0 {
		t.Fatalf("two nodes do not point at each other: a %v/%v, b %v/%v",
			a.e.Successors(), a.e.ring.pred, b.e.Successors(), b.e.ring.pred)
	}
	if res := net.do(b, kademlia.Ping{Addr: a.addr}); res.Err != nil || res.ID != a.e.ID() {
		t.Fatalf("ping: %v %v", res.Err, res.ID)
	}
}

func TestBootstrapRetriesUntilAnswered(t *testing.T) {
	net := newTestNet(t, 6)
	a := net.add(Config{})
	a.down = true
	b := net.add(Config{Bootstrap: []netip.AddrPort{a.addr}})
	net.Run(30 * time.Second)
	if b.e.Joined() {
		t.Fatal("joined through a node that is down")
	}
	a.down = false
	if !net.RunUntil(5*time.Minute, func() bool { return b.e.Joined() && net.ringErrors() == 0 }) {
		t.Fatal("did not join once the bootstrap node came up")
	}
}

func TestUnsupportedAndCanceled(t *testing.T) {
	net := newTestNet(t, 8)
	a := net.add(Config{})
	if res := net.do(a, kademlia.GetPeers{}); !errors.Is(res.Err, ErrUnsupported) {
		t.Errorf("get_peers: %v, want ErrUnsupported", res.Err)
	}
	dead := netip.MustParseAddrPort("127.0.9.9:6881")
	op := a.e.Start(net.Now, kademlia.Ping{Addr: dead})
	a.e.Cancel(net.Now, op)
	net.Flush(a)
	if res := a.results[op]; !errors.Is(res.Err, kademlia.ErrCanceled) {
		t.Errorf("canceled ping: %v", res.Err)
	}
	if res := net.do(a, kademlia.Ping{Addr: dead}); !errors.Is(res.Err, kademlia.ErrTimeout) {
		t.Errorf("ping of nobody: %v, want timeout", res.Err)
	}
	a.e.Close(net.Now)
	op = a.e.Start(net.Now, kademlia.FindNode{})
	net.Flush(a)
	if res := a.results[op]; !errors.Is(res.Err, kademlia.ErrClosed) {
		t.Errorf("after Close: %v", res.Err)
	}
}
