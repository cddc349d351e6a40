package chord

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/kademlia"
)

// holders returns the live nodes whose store has key.
func holders(net *testNet, key string) []*testNode {
	var out []*testNode
	for _, tn := range net.live() {
		if tn.e.cfg.Store == nil {
			continue
		}
		if _, ok, _ := tn.e.cfg.Store.Get(key); ok {
			out = append(out, tn)
		}
	}
	return out
}

func TestKVOnSuccessors(t *testing.T) {
	net := newTestNet(t, 11)
	net.build(40, Config{})
	net.Run(time.Minute)
	for i := range 20 {
		key := fmt.Sprintf("key-%d", i)
		w := net.Order[i]
		res := net.do(w, kademlia.KVPut{Key: key, Value: []byte("v" + key)})
		if res.Err != nil || res.Acks < 2 {
			t.Fatalf("put %s: %v (acks %d)", key, res.Err, res.Acks)
		}
		// The record is on the key's successor and the two nodes after it.
		succ := net.trueSuccessor(id.FromString(key))
		want := []id.ID{succ.e.ID()}
		for len(want) < 3 {
			want = append(want, net.trueSuccessor(id.AddPow2(want[len(want)-1], 0)).e.ID())
		}
		net.Run(time.Second) // the third replica may answer after the quorum
		got := holders(net, key)
		if len(got) != 3 {
			t.Fatalf("%s is on %d nodes, want 3", key, len(got))
		}
		for _, h := range got {
			found := false
			for _, w := range want {
				found = found || h.e.ID() == w
			}
			if !found {
				t.Fatalf("%s is on %v, which is not among its 3 successors", key, h.e.ID())
			}
		}
		r := net.do(net.Order[39-i], kademlia.KVGet{Key: key})
		if r.Err != nil || r.Record == nil || !bytes.Equal(r.Record.Value, []byte("v"+key)) {
			t.Fatalf("get %s: %v %v", key, r.Err, r.Record)
		}
	}
	if res := net.do(net.Order[0], kademlia.KVGet{Key: "absent"}); !errors.Is(res.Err, kademlia.ErrNotFound) {
		t.Fatalf("get of an absent key: %v, want ErrNotFound", res.Err)
	}
	// Last writer wins.
	net.do(net.Order[1], kademlia.KVPut{Key: "key-0", Value: []byte("new")})
	if r := net.do(net.Order[2], kademlia.KVGet{Key: "key-0"}); r.Err != nil || string(r.Record.Value) != "new" {
		t.Fatalf("get after overwrite: %v %v", r.Err, r.Record)
	}
	// A delete is a tombstone that wins too.
	net.do(net.Order[3], kademlia.KVPut{Key: "key-0", Delete: true})
	if r := net.do(net.Order[4], kademlia.KVGet{Key: "key-0"}); !errors.Is(r.Err, kademlia.ErrNotFound) {
		t.Fatalf("get after delete: %v", r.Err)
	}
}

func TestKVSurvivesPrimaryCrash(t *testing.T) {
	net := newTestNet(t, 12)
	net.build(30, Config{})
	net.Run(time.Minute)
	key := "survivor"
	if res := net.do(net.Order[0], kademlia.KVPut{Key: key, Value: []byte("x")}); res.Err != nil {
		t.Fatal(res.Err)
	}
	net.trueSuccessor(id.FromString(key)).down = true
	net.Run(time.Minute)
	r := net.do(net.Order[1], kademlia.KVGet{Key: key})
	if r.Err != nil || string(r.Record.Value) != "x" {
		t.Fatalf("get after the primary crashed: %v %v", r.Err, r.Record)
	}
}

func TestHandover(t *testing.T) {
	net := newTestNet(t, 13)
	net.build(30, Config{})
	net.Run(time.Minute)
	for i := range 30 {
		net.do(net.Order[i], kademlia.KVPut{Key: fmt.Sprint("h", i), Value: []byte{byte(i)}})
	}
	net.Run(time.Second)
	leaving := net.Order[7]
	keys, _ := leaving.e.Store().Stats()
	res := net.do(leaving, kademlia.Handover{})
	if res.Err != nil || res.Acks != keys {
		t.Fatalf("handover: %v, %d acks, want %d", res.Err, res.Acks, keys)
	}
	leaving.down = true
	// The goodbye closes the ring at once, before any stabilize round.
	net.Run(100 * time.Millisecond)
	if n := net.ringErrors(); n != 0 {
		t.Fatalf("%d nodes with a wrong neighbour right after a nice leave", n)
	}
	for i := range 30 {
		key := fmt.Sprint("h", i)
		if n := len(holders(net, key)); n < 3 {
			t.Errorf("%s on %d live nodes after the hand-over, want 3", key, n)
		}
	}
}

// TestRestartedReplicaCatchesUp: a replica restarted with records does
// not answer reads from its own disk until repair has run: right after
// it rejoins, a get through it that only one other replica answers fails
// with the quorum error instead of counting the restarted node's old copy;
// a repair interval later the same get returns the newest version.
func TestRestartedReplicaCatchesUp(t *testing.T) {
	n := newTestNet(t, 31)
	n.build(5, Config{})
	if !n.RunUntil(5*time.Minute, func() bool { return n.ringErrors() == 0 }) {
		t.Fatalf("setup: %d nodes have a wrong neighbour", n.ringErrors())
	}
	const key = "catch-up"
	ring := n.live()
	first := n.trueSuccessor(id.FromString(key))
	at := slices.Index(ring, first)
	reps := []*testNode{ring[at], ring[(at+1)%len(ring)], ring[(at+2)%len(ring)]}
	if w := n.do(reps[1], kademlia.KVPut{Key: key, Value: []byte("old")}); w.Err != nil {
		t.Fatal(w.Err)
	}
	r := reps[0]
	if _, ok, _ := r.e.Store().Get(key); !ok {
		t.Fatal("setup: the replica to restart does not hold the key")
	}
	// r goes down; the key is overwritten meanwhile.
	r.down = true
	n.Run(30 * time.Second)
	w := n.do(reps[1], kademlia.KVPut{Key: key, Value: []byte("new")})
	if w.Err != nil {
		t.Fatal(w.Err)
	}
	// r restarts with its old store and rejoins; the third replica is cut off.
	cfg := r.e.cfg
	cfg.Bootstrap = []netip.AddrPort{reps[1].addr}
	r.e = New(cfg, n.Now)
	r.down = false
	n.Flush(r)
	if !n.RunUntil(time.Minute, r.e.Joined) {
		t.Fatal("the restarted replica did not rejoin")
	}
	n.Run(time.Second)
	cut := reps[2].addr
	n.Drop = func(from, to netip.AddrPort, _ []byte) bool { return from == cut || to == cut }
	g := n.do(r, kademlia.KVGet{Key: key})
	if g.Err == nil {
		t.Fatalf("a get through the restarted replica right after its rejoin returned %q; want the quorum error (it must not count its own old copy)", g.Record.Value)
	}
	if !errors.Is(g.Err, kademlia.ErrQuorum) {
		t.Fatalf("get: %v; want ErrQuorum", g.Err)
	}
	n.Run(cfg.SyncInterval * 2)
	g = n.do(r, kademlia.KVGet{Key: key})
	if g.Err != nil || string(g.Record.Value) != "new" {
		t.Fatalf("a repair interval later: %v %v; want the newest value", g.Err, g.Record)
	}
}
