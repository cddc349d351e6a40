package kademlia

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/routing"
)

// states counts the contacts of tn's table by state.
func states(tn *testNode) (good, questionable, bad int) {
	for _, b := range tn.e.Table().Buckets() {
		for _, c := range b.Contacts {
			switch c.State {
			case routing.Good:
				good++
			case routing.Questionable:
				questionable++
			case routing.Bad:
				bad++
			}
		}
	}
	return
}

// TestPartitionHeals splits a network in two groups until every node has
// marked contacts of the other side bad, heals it, and expects every
// contact good again within a bound set by the probe back-off, with no
// lookup or other action from anyone.
func TestPartitionHeals(t *testing.T) {
	for _, tc := range []struct {
		name  string
		split int           // nodes on side A
		cut   time.Duration // how long the partition lasts
	}{
		{"3|3 for a minute", 3, time.Minute},
		{"2|4 for ten minutes", 2, 10 * time.Minute},
		{"4|5 for an hour", 4, time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// At most K+1 nodes, so that no bucket fills and no contact is
			// replaced: every contact from before the partition must come
			// back. (In a larger network a full bucket may replace a bad
			// contact by a live one of its range for good, as BEP 5 says;
			// sim.TestPartitionHeals checks those tables against the truth.)
			n := newTestNet(t, 11)
			size := tc.split * 2
			if tc.split == 2 {
				size = 6
			}
			if tc.split == 4 {
				size = 9
			}
			n.build(size, Config{})
			sideA := map[netip.AddrPort]bool{}
			for _, tn := range n.Order[:tc.split] {
				sideA[tn.addr] = true
			}
			n.Drop = func(from, to netip.AddrPort, _ []byte) bool { return sideA[from] != sideA[to] }
			// Every node looks something up, so that it asks the other
			// side and marks it bad.
			for _, tn := range n.Order {
				for range 3 {
					n.do(tn, FindNode{Target: id.Random(seededReader{R: n.Rng})})
				}
			}
			n.RunUntil(tc.cut, func() bool { return false })
			for _, tn := range n.Order {
				if _, _, bad := states(tn); bad == 0 {
					t.Fatalf("setup: node %v marked nobody bad during the partition", tn.addr)
				}
				if got := tn.e.Table().Len(); got == 0 {
					t.Fatalf("node %v: the partition emptied the routing table", tn.addr)
				}
			}
			n.Drop = nil
			healed := n.Now
			// One failed probe may land just before the heal: the bound is
			// a full ProbeMax back-off with its jitter, plus the answer.
			bound := routing.ProbeMax*5/4 + 10*time.Second
			allGood := func() bool {
				for _, tn := range n.Order {
					if _, q, bad := states(tn); bad > 0 || q > 0 {
						return false
					}
				}
				return true
			}
			if !n.RunUntil(bound, allGood) {
				for _, tn := range n.Order {
					g, q, b := states(tn)
					t.Logf("node %v: good %d questionable %d bad %d", tn.addr, g, q, b)
				}
				t.Fatalf("contacts still not good %v after the heal", bound)
			}
			t.Logf("every contact good %v after the heal", n.Now.Sub(healed))
			// The tables hold the truth again: from every node, lookups
			// find the true nearest nodes of both sides. (A contact that a
			// full bucket replaced during the partition may be gone for
			// good: BEP 5 keeps any k good nodes of a bucket's range.)
			for _, tn := range n.Order {
				for _, target := range []id.ID{tn.e.ID(), id.Random(seededReader{R: n.Rng})} {
					r := n.do(tn, FindNode{Target: target})
					if want := trueClosest(n, tn.e.ID(), target, min(8, len(n.Order)-1)); r.Err != nil || !slices.Equal(ids(r.Nodes), want) {
						t.Errorf("node %v: lookup of %v after the heal: %v, %v; want %v", tn.addr, target, ids(r.Nodes), r.Err, want)
					}
				}
			}
		})
	}
}

// TestLateReplyRefutes: answers that come after their query timed out
// (a node slow under load) keep the node from turning bad.
func TestLateReplyRefutes(t *testing.T) {
	n := newTestNet(t, 12)
	n.build(4, Config{})
	a, b := n.Order[0], n.Order[1]
	if _, ok := a.e.Table().Get(b.e.ID()); !ok {
		t.Fatal("setup: a does not know b")
	}
	n.Slow = map[netip.AddrPort]time.Duration{b.addr: 5 * time.Second} // past the 2s QueryTimeout
	for range 4 {
		n.do(a, FindNode{Target: b.e.ID()})
		n.RunUntil(10*time.Second, func() bool { return false }) // let the late answers in
	}
	c, ok := a.e.Table().Get(b.e.ID())
	if !ok || c.State == routing.Bad {
		t.Fatalf("a slow node that always answered is %+v (%v)", c, ok)
	}
	if got := a.e.Stats().LateReplies; got < 2 {
		t.Errorf("LateReplies = %d, want at least 2", got)
	}
}

// TestQueryFromBadContactTriggersPing: a bad contact that queries us is
// pinged at once, and good again when it answers.
func TestQueryFromBadContactTriggersPing(t *testing.T) {
	n := newTestNet(t, 13)
	n.build(4, Config{})
	a, b := n.Order[0], n.Order[1]
	a.e.Table().Failed(n.Now, b.e.ID())
	a.e.Table().Failed(n.Now, b.e.ID())
	if c, _ := a.e.Table().Get(b.e.ID()); c.State != routing.Bad {
		t.Fatalf("setup: b is %v", c.State)
	}
	n.do(b, Ping{Addr: a.addr})
	ok := n.RunUntil(time.Second, func() bool {
		c, _ := a.e.Table().Get(b.e.ID())
		return c.State == routing.Good
	})
	if !ok {
		t.Fatal("a bad contact that queried us is still not good a second later")
	}
}

// TestQueryRefutesAtOnce: a contact that failed long enough for its
// probe back-off to reach ProbeMax (a node down, then restarted at the
// same address) is good again as soon as a query from it arrives, with
// no answer of its own: here every datagram from a to b is lost, so no
// ping of a's could ever be answered.
func TestQueryRefutesAtOnce(t *testing.T) {
	n := newTestNet(t, 14)
	n.build(4, Config{})
	a, b := n.Order[0], n.Order[1]
	n.do(a, Ping{Addr: b.addr})
	n.RunUntil(time.Second, func() bool { c, _ := a.e.Table().Get(b.e.ID()); return c.State == routing.Good })
	if c, _ := a.e.Table().Get(b.e.ID()); c.State != routing.Good {
		t.Fatalf("setup: b is %v after answering a", c.State)
	}
	for range 8 {
		a.e.Table().Failed(n.Now, b.e.ID())
	}
	if c, _ := a.e.Table().Get(b.e.ID()); c.State != routing.Bad {
		t.Fatalf("setup: b is %v", c.State)
	}
	n.Drop = func(from, to netip.AddrPort, _ []byte) bool { return from == a.addr && to == b.addr }
	n.do(b, Ping{Addr: a.addr})
	ok := n.RunUntil(time.Second, func() bool {
		c, _ := a.e.Table().Get(b.e.ID())
		return c.State == routing.Good
	})
	if !ok {
		c, _ := a.e.Table().Get(b.e.ID())
		t.Fatalf("a contact that queried us is %v a second later; want good at once", c.State)
	}
}

// TestHandoverReachesBadReplicas: a leaving node hands a record to its
// replicas even when its table holds one of them bad (it missed two
// queries in a load spike, say, and is alive): the hand-over goes to the
// replica set of the quorum rule, not only to the usable contacts.
func TestHandoverReachesBadReplicas(t *testing.T) {
	n := newTestNet(t, 26)
	n.build(8, Config{})
	leaver := n.Order[3]
	// A key whose replicas, after the leaver, include another node.
	var key string
	var others []*testNode
	for i := range 100 {
		k := "handover" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		if reps := closestLive(n, k, 3); slices.Contains(reps, leaver) {
			key = k
			for _, r := range reps {
				if r != leaver {
					others = append(others, r)
				}
			}
			break
		}
	}
	if key == "" {
		t.Skip("the leaver is no replica of any key tried with this seed")
	}
	// Only the leaver holds it, and it holds the first other replica bad.
	w := n.do(leaver, KVPut{Key: key, Value: []byte("v")})
	if w.Err != nil {
		t.Fatal(w.Err)
	}
	for _, r := range others {
		if err := r.e.Store().Remove(key, w.Version); err != nil {
			t.Fatal(err)
		}
	}
	if len(holders(n, key)) != 1 {
		t.Fatalf("setup: %d holders, want the leaver alone", len(holders(n, key)))
	}
	bad := others[0]
	leaver.e.Table().Failed(n.Now, bad.e.ID())
	leaver.e.Table().Failed(n.Now, bad.e.ID())
	if c, _ := leaver.e.Table().Get(bad.e.ID()); c.State != routing.Bad {
		t.Fatalf("setup: the replica is %v in the leaver's table", c.State)
	}
	if h := n.do(leaver, Handover{}); h.Err != nil {
		t.Fatal(h.Err)
	}
	if !slices.Contains(holders(n, key), bad) {
		t.Errorf("the replica the leaver held bad did not get the record; holders %d", len(holders(n, key)))
	}
	for _, r := range others[1:] {
		if !slices.Contains(holders(n, key), r) {
			t.Errorf("a usable replica did not get the record")
		}
	}
}
