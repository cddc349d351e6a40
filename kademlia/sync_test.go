package kademlia

import (
	"flag"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/krpc"
	"github.com/dhtkit/dhtkit/store"
)

var scale = flag.Bool("scale", false, "run the anti-entropy tests at 100,000 keys")

// fillReplicas writes keys straight into the stores of their 3 closest
// nodes, as acknowledged puts would have left them, in batches.
func fillReplicas(t testing.TB, n *testNet, keys int) {
	t.Helper()
	val := make([]byte, 100)
	batches := make(map[*testNode][]store.Record)
	for i := range keys {
		k := fmt.Sprintf("key-%07d", i)
		r := store.Record{Key: k, Value: val, Version: store.Version{Time: uint64(n.now.UnixMilli()) << 16, Writer: uint64(i + 1)}}
		for _, tn := range closestLive(n, k, 3) {
			batches[tn] = append(batches[tn], r)
		}
	}
	for tn, recs := range batches {
		if _, err := tn.e.kvStore().PutAll(recs); err != nil {
			t.Fatal(err)
		}
	}
}

// liveCopies counts the copies of keys on live nodes, and the keys with
// fewer than 3.
func liveCopies(n *testNet, keys int) (copies, short int) {
	for i := range keys {
		k := fmt.Sprintf("key-%07d", i)
		c := 0
		for _, tn := range n.order {
			if tn.down || tn.e.cfg.Store == nil {
				continue
			}
			if _, ok, _ := tn.e.cfg.Store.Get(k); ok {
				c++
			}
		}
		copies += c
		if c < 3 {
			short++
		}
	}
	return copies, short
}

// TestSyncRepairsAtScale: 5 nodes, 3 replicas; one node dies; every key
// is back on 3 live nodes within 2 minutes, though each node holds
// thousands of records (the old digest exchange stopped at about 1000),
// and no datagram exceeds MaxDatagram (the test network checks every
// one). Then, with nothing to repair, a sync round's traffic is a small
// fraction of the data held. -scale runs it at 100,000 keys.
func TestSyncRepairsAtScale(t *testing.T) {
	keys := 5000
	if *scale {
		keys = 100000
	}
	n := newTestNet(t, 31)
	n.build(5, Config{Replicas: 3})
	fillReplicas(t, n, keys)
	victim := n.order[2]
	victim.down = true
	start := n.now
	repaired := func() bool { _, short := liveCopies(n, keys); return short == 0 }
	step := func() bool {
		// Check once per virtual 5 s: counting is the costly part.
		until := n.now.Add(5 * time.Second)
		n.runUntil(5*time.Second, func() bool { return !n.now.Before(until) })
		return repaired()
	}
	for !step() {
		if n.now.Sub(start) > 2*time.Minute {
			copies, short := liveCopies(n, keys)
			t.Fatalf("after %v: %d keys on fewer than 3 live nodes (%d copies of %d)", n.now.Sub(start), short, copies, 3*keys)
		}
	}
	t.Logf("%d keys back on 3 live nodes %v after the kill", keys, n.now.Sub(start))

	// Nothing differs now: measure what one SyncInterval of traffic costs.
	n.runUntil(time.Minute, func() bool { return false })
	var sent, syncBytes int
	asked := make(map[string]bool) // dk_sync queries by asker and transaction
	n.drop = func(from, to netip.AddrPort, data []byte) bool {
		sent += len(data)
		var m krpc.Msg
		if m.Decode(data) != nil {
			return false
		}
		switch {
		case m.Y == krpc.Query && m.Q == krpc.MethodSync:
			asked[from.String()+string(m.T)] = true
			syncBytes += len(data)
		case m.Y != krpc.Query && asked[to.String()+string(m.T)]:
			syncBytes += len(data)
		}
		return false
	}
	n.runUntil(DefaultConfig().SyncInterval, func() bool { return false })
	n.drop = nil
	var held int64
	for _, tn := range n.order {
		if !tn.down {
			_, b := tn.e.kvStore().Stats()
			held += b
		}
	}
	t.Logf("in sync, one interval: %d bytes sent in all (%d of them dk_sync) for %d bytes held: %.2e",
		sent, syncBytes, held, float64(sent)/float64(held))
	// What agreeing replicas exchange does not grow with what they hold:
	// a few queries per pair of replicas, along the edges of the ranges
	// they share.
	if pairs := 4 * 3; syncBytes == 0 || syncBytes > pairs*8192 {
		t.Errorf("an idle interval sent %d bytes of dk_sync for %d pairs of replicas, want at most 8 KiB a pair", syncBytes, pairs)
	}
}
