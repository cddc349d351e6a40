package chord

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/kademlia"
)

// replicaSet returns the key's true replica set: the live successor of
// its target and the n-1 live nodes after it.
func (n *testNet) replicaSet(key string, size int) []*testNode {
	out := []*testNode{n.trueSuccessor(id.FromString(key))}
	for len(out) < size {
		out = append(out, n.trueSuccessor(id.AddPow2(out[len(out)-1].e.ID(), 0)))
	}
	return out
}

// missing returns the nodes of the key's true replica set that do not
// hold it at version v or newer (deleted as asked).
func (n *testNet) missing(key string, v kademlia.Result, deleted bool) []*testNode {
	var out []*testNode
	for _, tn := range n.replicaSet(key, 3) {
		rec, ok, _ := tn.e.Store().Get(key)
		if !ok || v.Version.Newer(rec.Version) || rec.Deleted != deleted {
			out = append(out, tn)
		}
	}
	return out
}

func TestSyncRestoresKilledReplica(t *testing.T) {
	for _, victim := range []int{0, 1, 2} { // the primary, then each other replica
		net := newTestNet(t, 31)
		net.build(30, Config{})
		net.Run(time.Minute)
		key := "restored"
		res := net.do(net.Order[0], kademlia.KVPut{Key: key, Value: []byte("x")})
		if res.Err != nil {
			t.Fatal(res.Err)
		}
		net.Run(time.Second)
		net.replicaSet(key, 3)[victim].down = true
		// Stabilize notices the dead node, the next round replaces it.
		if !net.RunUntil(4*15*time.Second, func() bool { return len(net.missing(key, res, false)) == 0 }) {
			t.Fatalf("replica %d killed: %d of the 3 live replicas lack the key after four sync intervals", victim, len(net.missing(key, res, false)))
		}
	}
}

func TestSyncReachesJoiner(t *testing.T) {
	net := newTestNet(t, 32)
	net.build(30, Config{})
	net.Run(time.Minute)
	key := "joined"
	res := net.do(net.Order[0], kademlia.KVPut{Key: key, Value: []byte("x")})
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	set := net.replicaSet(key, 3)
	// A node joins right after the primary, between it and the other
	// replicas: the primary's range does not change, so nothing is handed
	// to it on notify.
	joinID := id.AddPow2(set[0].e.ID(), 8)
	if !id.Between(joinID, set[0].e.ID(), set[1].e.ID()) {
		t.Fatal("no room after the primary")
	}
	joiner := net.add(Config{ID: joinID, Bootstrap: []netip.AddrPort{net.Order[5].addr}})
	if !net.RunUntil(2*time.Minute, func() bool { return joiner.e.Joined() && net.ringErrors() == 0 }) {
		t.Fatal("the joiner did not join")
	}
	if got := net.replicaSet(key, 3); got[1] != joiner {
		t.Fatal("the joiner is not the second replica")
	}
	if !net.RunUntil(4*15*time.Second, func() bool { return len(net.missing(key, res, false)) == 0 }) {
		t.Fatalf("%d of the 3 replicas lack the key after four sync intervals", len(net.missing(key, res, false)))
	}
	// The node pushed out of the set keeps its copy: maintenance drops
	// nothing.
	if _, ok, _ := set[2].e.Store().Get(key); !ok {
		t.Error("the former third replica dropped its copy")
	}
}

func TestSyncKeepsDeletes(t *testing.T) {
	net := newTestNet(t, 33)
	// Dead replicas count in their keys' replica sets for DownFor (the
	// quorum rule): shorter than the churn below, so that the get after
	// it counts among the replicas that took their place.
	net.build(30, Config{DownFor: 30 * time.Second})
	net.Run(time.Minute)
	key := "deleted"
	if res := net.do(net.Order[0], kademlia.KVPut{Key: key, Value: []byte("x")}); res.Err != nil {
		t.Fatal(res.Err)
	}
	set := net.replicaSet(key, 3)
	// The third replica misses the delete and keeps the value.
	net.Drop = func(_, to netip.AddrPort, data []byte) bool {
		return to == set[2].addr && bytes.Contains(data, []byte("dk_store"))
	}
	del := net.do(net.Order[1], kademlia.KVPut{Key: key, Delete: true})
	if del.Err != nil {
		t.Fatal(del.Err)
	}
	net.Run(time.Second)
	net.Drop = nil
	if rec, _, _ := set[2].e.Store().Get(key); rec.Deleted {
		t.Fatal("the third replica got the delete after all")
	}
	if !net.RunUntil(4*15*time.Second, func() bool { return len(net.missing(key, del, true)) == 0 }) {
		t.Fatalf("%d of the 3 replicas lack the tombstone after four sync intervals", len(net.missing(key, del, true)))
	}
	// With the two replicas that took the delete gone, the value must not
	// come back.
	set[0].down, set[1].down = true, true
	net.Run(4 * 15 * time.Second)
	if r := net.do(net.Order[2], kademlia.KVGet{Key: key}); !errors.Is(r.Err, kademlia.ErrNotFound) {
		t.Fatalf("get after delete and churn: %v %v, want ErrNotFound", r.Err, r.Record)
	}
	if m := net.missing(key, del, true); len(m) != 0 {
		t.Fatalf("%d of the 3 replicas lack the tombstone after churn", len(m))
	}
}

// TestSyncRefillsPrimary checks the way back: a primary that lacks a
// record of its range (its hand-over was lost) gets it from its successor.
func TestSyncRefillsPrimary(t *testing.T) {
	net := newTestNet(t, 34)
	net.build(30, Config{})
	net.Run(time.Minute)
	key := "refilled"
	res := net.do(net.Order[0], kademlia.KVPut{Key: key, Value: []byte("x")})
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	net.Run(time.Second)
	primary := net.replicaSet(key, 3)[0]
	if err := primary.e.Store().Remove(key, res.Version); err != nil {
		t.Fatal(err)
	}
	if !net.RunUntil(4*15*time.Second, func() bool { return len(net.missing(key, res, false)) == 0 }) {
		t.Fatal("the primary did not get its record back within four sync intervals")
	}
}
