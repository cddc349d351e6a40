package kademlia

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/id"
)

// A burst of puts started at once from several coordinators leaves every
// record on all three of its replicas soon after the puts are
// acknowledged, long before a sync interval: a put acknowledges at its
// write quorum (2 of 3), but the third write is sent with the others and
// must land too, or two nodes that die before the next sync may take a
// write only they held.
func TestBurstPutsReachEveryReplica(t *testing.T) {
	n := newTestNet(t, 41)
	n.build(16, Config{SyncInterval: time.Hour})
	coords := n.Order[:6]
	// A lookup from each coordinator freshens its contacts (oneHopFresh),
	// so that the burst goes one hop, as it does on a busy cluster.
	for _, c := range coords {
		n.do(c, KVGet{Key: "warm-up-" + c.addr.String()})
	}
	const perCoord = 100
	type started struct {
		tn  *testNode
		op  OpID
		key string
	}
	var ops []started
	for i := range perCoord {
		for j, c := range coords {
			key := "burst-" + strconv.Itoa(j) + "-" + strconv.Itoa(i)
			ops = append(ops, started{c, c.e.Start(n.Now, KVPut{Key: key, Value: []byte("v-" + key)}), key})
		}
	}
	for _, c := range coords {
		n.Flush(c)
	}
	acked := func() bool {
		for _, s := range ops {
			if _, ok := s.tn.results[s.op]; !ok {
				return false
			}
		}
		return true
	}
	if !n.RunUntil(time.Minute, acked) {
		t.Fatal("the puts did not finish within a virtual minute")
	}
	for _, s := range ops {
		if r := s.tn.results[s.op]; r.Err != nil {
			t.Fatalf("put %s: %v", s.key, r.Err)
		}
	}
	// Well within a sync interval (15 s), and long enough for every
	// write sent, and its retry, to be answered or time out.
	n.RunUntil(5*time.Second, func() bool { return false })
	short := 0
	var first string
	for _, s := range ops {
		held := 0
		for _, tn := range closestLive(n, s.key, 3) {
			if _, ok, _ := tn.e.Store().Get(s.key); ok {
				held++
			}
		}
		if held < 3 {
			if short++; first == "" {
				first = fmt.Sprintf("%s on %d of its 3 replicas", s.key, held)
			}
		}
	}
	if short > 0 {
		t.Errorf("%d of %d records short of their 3 replicas 5 s after the burst (first: %s)", short, len(ops), first)
	}
}

// A one-hop put whose coordinator has not heard of a node that joined
// next to the key reaches its quorum on the two true replicas it knows;
// the third member it asked refuses (not a replica by its own table), and
// the write still reaches the newcomer, the true third replica, before
// any sync round.
func TestOneHopPutReachesUnknownReplica(t *testing.T) {
	n := newTestNet(t, 32)
	n.build(6, Config{SyncInterval: time.Hour})
	key := "stale"
	target := id.FromString(key)
	x := target
	x[19] ^= 1 // differs from the target in the last bits only
	newcomer := n.add(Config{ID: x, SyncInterval: time.Hour, Bootstrap: []netip.AddrPort{n.Order[1].addr}})
	if !n.RunUntil(5*time.Minute, func() bool { return newcomer.e.boot.joined }) {
		t.Fatal("the newcomer did not join")
	}
	n.RunUntil(30*time.Second, func() bool { return false })
	want := closestLive(n, key, 3)
	if !slices.Contains(want, newcomer) {
		t.Fatal("the newcomer is not among the 3 closest: the test's ids are wrong")
	}
	// The coordinator is not a replica, so that every write it makes
	// crosses the network, and the two replicas it knows trust it (it
	// answered their ping): they acknowledge its one-hop write.
	var coord *testNode
	for _, tn := range n.Order {
		if !slices.Contains(want, tn) {
			coord = tn
			break
		}
	}
	for _, r := range want {
		if r != newcomer {
			if res := n.do(r, Ping{Addr: coord.addr}); res.Err != nil {
				t.Fatalf("ping: %v", res.Err)
			}
		}
	}
	coord.e.onehop.off = true
	n.do(coord, KVGet{Key: "warm-up"})
	n.do(coord, KVGet{Key: key})
	coord.e.onehop.off = false
	coord.e.table.Remove(newcomer.e.ID())
	if !coord.e.oneHopCovered(n.Now, target) {
		t.Fatal("the coordinator's table does not cover the key: the test needs it to try one hop")
	}
	p := n.do(coord, KVPut{Key: key, Value: []byte("fresh")})
	if p.Err != nil {
		t.Fatalf("put: %v", p.Err)
	}
	if coord.e.stats.OneHopFallbacks != 0 {
		t.Fatalf("the put fell back to a lookup: the test needs it to reach its quorum in one hop")
	}
	n.RunUntil(5*time.Second, func() bool { return false })
	for _, tn := range want {
		if r, ok, _ := tn.e.Store().Get(key); !ok || string(r.Value) != "fresh" || r.Version != p.Version {
			t.Errorf("replica %v (newcomer %v) does not hold the write 5 s after it was acknowledged", tn.addr, tn == newcomer)
		}
	}
}
