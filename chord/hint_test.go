package chord

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/kademlia"
	"github.com/dhtkit/dhtkit/krpc"
	"github.com/dhtkit/dhtkit/store"
)

// joinFast starts size nodes 50 ms apart, each joining through the first,
// as a script that starts a cluster does, and waits until all joined.
func (n *testNet) joinFast(size int, cfg Config) {
	n.T.Helper()
	n.add(cfg)
	for range size - 1 {
		c := cfg
		c.Bootstrap = []netip.AddrPort{n.Order[0].addr}
		n.add(c)
		n.Run(50 * time.Millisecond)
	}
	if !n.RunUntil(time.Minute, n.allJoined) {
		n.T.Fatal("not every node joined within a virtual minute")
	}
}

// listErrors counts the live nodes whose successor list is not the true
// one (as long as the ring allows) or whose predecessor is wrong.
func (n *testNet) listErrors() int { return n.wrongLists(true) }

// wrongLists counts the live nodes whose successor list is not the true
// one, or, if preds, whose predecessor is wrong.
func (n *testNet) wrongLists(preds bool) int {
	ring := n.live()
	bad := 0
	for i, tn := range ring {
		succs := tn.e.Successors()
		want := min(tn.e.cfg.Successors, len(ring)-1)
		ok := len(succs) == want
		for k := 0; ok && k < want; k++ {
			ok = succs[k].ID == ring[(i+1+k)%len(ring)].e.ID()
		}
		if preds {
			p, has := tn.e.Predecessor()
			ok = ok && has && p.ID == ring[(i+len(ring)-1)%len(ring)].e.ID()
		}
		if !ok {
			bad++
		}
	}
	return bad
}

// Hints make a young ring whole within round trips: every successor list
// and predecessor is the true one well before the first stabilize period
// (5 s) has passed, instead of one period per node of the list.
func TestHintsMakeYoungRingWhole(t *testing.T) {
	for _, size := range []int{2, 3, 5, 20, 60} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			const seeds = 10
			var sum, worst time.Duration
			for seed := range uint64(seeds) {
				n := newTestNet(t, 100+seed)
				n.joinFast(size, Config{})
				start := n.Now
				if !n.RunUntil(2*time.Second, func() bool { return n.listErrors() == 0 }) {
					t.Fatalf("seed %d: %d of %d nodes have a wrong successor list or predecessor 2 s after the last join", seed, n.listErrors(), size)
				}
				took := n.Now.Sub(start)
				sum, worst = sum+took, max(worst, took)
			}
			t.Logf("%d nodes joined 50 ms apart: whole %v after the last join on average, %v at worst (%d seeds)", size, sum/seeds, worst, seeds)
		})
	}
}

// A listener on a ring 100 ms old hears every write: TestValuesSensorsCLI
// (e2e) with engines on virtual time. Before hints, the first node still
// held the two-node ring it made when the second joined, and its writes
// went to replicas no listener registered with (2 seeds in 300).
func TestHintsYoungRingListen(t *testing.T) {
	const key, sensors, readings = "pollution_level", 3, 5
	for seed := range uint64(300) {
		n := newTestNet(t, seed)
		n.joinFast(5, Config{})
		for _, l := range n.Order[3:] {
			l.e.Start(n.Now, kademlia.KVListen{Key: key})
			n.Flush(l)
		}
		n.Run(100 * time.Millisecond)
		for seq := 1; seq <= readings; seq++ {
			ops := make([]kademlia.OpID, sensors)
			for s := range sensors {
				w := n.Order[s]
				ops[s] = w.e.Start(n.Now, kademlia.KVPut{Key: store.ValueKey(key, store.ValueID(s+1)), Value: fmt.Appendf(nil, "%d/%d", s+1, seq)})
				n.Flush(w)
			}
			if !n.RunUntil(time.Minute, func() bool {
				for s, op := range ops {
					if _, ok := n.Order[s].results[op]; !ok {
						return false
					}
				}
				return true
			}) {
				t.Fatalf("seed %d: the puts of reading %d did not finish", seed, seq)
			}
			for s, op := range ops {
				if err := n.Order[s].results[op].Err; err != nil {
					t.Fatalf("seed %d: sensor %d, reading %d: %v", seed, s+1, seq, err)
				}
			}
		}
		n.Run(2 * time.Second) // less than a listener's refresh (a minute): only pushes count
		for i, l := range n.Order[3:] {
			seen := map[string]bool{}
			for _, ev := range l.events {
				seen[string(ev.Record.Value)] = true
			}
			if len(seen) != sensors*readings {
				t.Fatalf("seed %d: listener %d heard %d of %d readings", seed, i+1, len(seen), sensors*readings)
			}
		}
	}
}

// A hint claims nothing: one from a node that is neither the successor
// nor between us and it changes nothing, and a flood of them from the
// successor's own address brings stabilize forward at most once per
// hintGap, each round a query to the successor we had.
func TestHintsAreBounded(t *testing.T) {
	n := newTestNet(t, 7)
	n.build(5, Config{})
	n.Run(time.Minute)
	node := n.Order[0]
	succ, _ := node.e.ring.successor()
	hint := func(sender id.ID) []byte {
		m := krpc.Msg{Y: krpc.Query, T: []byte("hh"), Net: []byte("test")}
		setMethod(&m, mHint)
		m.A.Has = krpc.HasID
		m.A.ID = sender
		return m.Append(nil)
	}
	before := node.e.ring.nextStabilize
	stranger := netip.MustParseAddrPort("10.9.9.9:1234")
	n.Inject(node, stranger, hint(id.FromString("stranger")))
	// A node claiming the successor's id from another address is a stranger too.
	n.Inject(node, stranger, hint(succ.ID))
	if node.e.ring.nextStabilize != before {
		t.Fatalf("a stranger's hint moved the next stabilize from %v to %v", before, node.e.ring.nextStabilize)
	}
	sent := node.e.Stats().QueriesOut[mGetPredecessor]
	flood := time.Second
	for end := n.Now.Add(flood); n.Now.Before(end); {
		n.Inject(node, succ.Addr, hint(succ.ID))
		n.Run(time.Millisecond)
	}
	rounds := node.e.Stats().QueriesOut[mGetPredecessor] - sent
	if max := uint64(flood/hintGap) + 2; rounds == 0 || rounds > max {
		t.Fatalf("a second of hints from the successor made %d stabilize rounds, want 1 to %d", rounds, max)
	}
	t.Logf("%v of hints from the successor, one a millisecond: %d stabilize rounds", flood, rounds)
	if s, _ := node.e.ring.successor(); s.ID != succ.ID || n.listErrors() != 0 {
		t.Fatalf("the hints changed the ring: successor %v, was %v; %d list errors", s.ID, succ.ID, n.listErrors())
	}
}
