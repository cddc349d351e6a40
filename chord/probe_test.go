package chord

import (
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/kademlia"
	"github.com/dhtkit/dhtkit/krpc"
	"github.com/dhtkit/dhtkit/routing"
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
			if !n.RunUntil(5*time.Minute, func() bool { return n.ringErrors() == 0 }) {
				t.Fatalf("setup: %d nodes have a wrong neighbour", n.ringErrors())
			}
			n.Run(time.Minute)
			sideA := map[netip.AddrPort]bool{}
			rng := rand.New(rand.NewPCG(5, 5))
			for _, i := range rng.Perm(tc.size)[:int(float64(tc.size)*tc.frac+0.5)] {
				sideA[n.Order[i].addr] = true
			}
			n.Drop = func(from, to netip.AddrPort, _ []byte) bool { return sideA[from] != sideA[to] }
			n.Run(tc.cut)
			// Each side has closed a ring of its own: every successor is
			// on the node's own side.
			lost := 0
			for _, tn := range n.Order {
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
			n.Drop = nil
			healed := n.Now
			bound := 2 * time.Minute
			if !n.RunUntil(bound, func() bool { return n.ringErrors() == 0 }) {
				t.Fatalf("%d of %d nodes have a wrong successor or predecessor %v after the heal", n.ringErrors(), tc.size, bound)
			}
			t.Logf("one ring again %v after the heal", n.Now.Sub(healed))
			// The successor lists are whole again, and lookups exact.
			n.Run(2 * time.Minute)
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
	n.RunUntil(5*time.Minute, func() bool { return n.ringErrors() == 0 })
	leaver := n.Order[2]
	n.do(leaver, kademlia.Handover{})
	leaver.down = true
	n.Run(time.Minute)
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

// TestQueryRefutesAtOnce: a neighbour lost long enough for its probe
// back-off to reach ProbeMax (down, then restarted at the same address)
// is back as soon as a query from it arrives, with no answer of its own
// (every datagram from a to b is lost here); a query from another
// address does not bring it back.
func TestQueryRefutesAtOnce(t *testing.T) {
	n := newTestNet(t, 22)
	n.build(4, Config{})
	if !n.RunUntil(5*time.Minute, func() bool { return n.ringErrors() == 0 }) {
		t.Fatalf("setup: %d nodes have a wrong neighbour", n.ringErrors())
	}
	a, b := n.Order[0], n.Order[1]
	info := krpc.NodeInfo{ID: b.e.ID(), Addr: b.addr}
	for range routing.BadFails {
		a.e.ring.failed(n.Now, b.e.ID(), a.e)
	}
	for range 8 {
		a.e.probeFailed(n.Now, b.e.ID())
	}
	if a.e.ring.findLost(info.ID) < 0 {
		t.Fatal("setup: b is not lost")
	}
	a.e.queriedBy(n.Now, info.ID, netip.MustParseAddrPort("127.9.9.9:1"))
	if a.e.ring.findLost(info.ID) < 0 {
		t.Fatal("a query from another address brought b back")
	}
	n.Drop = func(from, to netip.AddrPort, _ []byte) bool { return from == a.addr && to == b.addr }
	queries := a.e.Stats().QueriesIn[mPing]
	b.e.Start(n.Now, kademlia.Ping{Addr: a.addr})
	n.Flush(b)
	// Checked the moment a has the query: a's own queries to b are lost
	// here, so b may be lost again later.
	if !n.RunUntil(time.Second, func() bool { return a.e.Stats().QueriesIn[mPing] > queries }) {
		t.Fatal("b's ping never reached a")
	}
	if a.e.ring.findLost(info.ID) >= 0 {
		t.Fatal("b queried a from its own address and is still lost")
	}
	if _, ok := a.e.ring.known(info.ID); !ok {
		t.Fatal("b is back but in none of a's fingers or successors")
	}
}

// TestHandoverReachesLostSuccessor: a leaving node hands its records to
// its first successor even when it holds it lost (it missed queries in a
// load spike and is alive), not only to the successors it still lists.
func TestHandoverReachesLostSuccessor(t *testing.T) {
	n := newTestNet(t, 23)
	n.build(5, Config{})
	if !n.RunUntil(5*time.Minute, func() bool { return n.ringErrors() == 0 }) {
		t.Fatalf("setup: %d nodes have a wrong neighbour", n.ringErrors())
	}
	a := n.Order[0]
	succ, _ := a.e.ring.successor()
	var b *testNode
	for _, tn := range n.Order {
		if tn.e.ID() == succ.ID {
			b = tn
		}
	}
	var mine []string
	for i := range 20 {
		k := "lost-succ-" + string(rune('a'+i))
		w := n.do(a, kademlia.KVPut{Key: k, Value: []byte(k)})
		if w.Err != nil {
			t.Fatal(w.Err)
		}
		if _, ok, _ := a.e.Store().Get(k); ok {
			mine = append(mine, k)
			if err := b.e.Store().Remove(k, w.Version); err != nil {
				t.Fatal(err)
			}
		}
	}
	if len(mine) == 0 {
		t.Skip("a holds no key with this seed")
	}
	for range routing.BadFails {
		a.e.ring.failed(n.Now, b.e.ID(), a.e)
	}
	if a.e.ring.findLost(b.e.ID()) < 0 {
		t.Fatal("setup: b is not lost")
	}
	if h := n.do(a, kademlia.Handover{}); h.Err != nil {
		t.Fatal(h.Err)
	}
	for _, k := range mine {
		if _, ok, _ := b.e.Store().Get(k); !ok {
			t.Errorf("%s: the lost successor did not get it at the hand-over", k)
		}
	}
}

// TestOneTimeoutIsSuspicion: a successor that misses one query stays in
// the successor list (suspect); an answer clears the suspicion, so one
// more miss after it still keeps it; routing.BadFails misses in a row
// drop it into the lost set.
func TestOneTimeoutIsSuspicion(t *testing.T) {
	n := newTestNet(t, 24)
	n.build(4, Config{})
	if !n.RunUntil(5*time.Minute, func() bool { return n.ringErrors() == 0 }) {
		t.Fatalf("setup: %d nodes have a wrong neighbour", n.ringErrors())
	}
	a := n.Order[0]
	succ, _ := a.e.ring.successor()
	inList := func() bool { s, _ := a.e.ring.successor(); return s.ID == succ.ID }
	steps := []struct {
		do      string // "fail" or "answer"
		inList  bool
		lostNow bool
	}{
		{"fail", true, false},
		{"answer", true, false},
		{"fail", true, false},
		{"fail", false, true},
	}
	for i, st := range steps {
		if st.do == "fail" {
			a.e.ring.failed(n.Now, succ.ID, a.e)
		} else {
			a.e.heard(n.Now, succ)
		}
		if inList() != st.inList || (a.e.ring.findLost(succ.ID) >= 0) != st.lostNow {
			t.Fatalf("step %d (%s): first successor kept %v, lost %v; want %v, %v", i, st.do, inList(), a.e.ring.findLost(succ.ID) >= 0, st.inList, st.lostNow)
		}
	}
}
