package chord

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

// TestSyncRepairsAtScale: 5 nodes, 3 replicas, thousands of records per
// node; one node dies; every key is back on its 3 live replicas within 2
// minutes, and no datagram exceeds MaxDatagram (the test network checks
// every one). Then, with nothing to repair, an interval's traffic is a
// small fraction of the data held. -scale runs it at 100,000 keys.
func TestSyncRepairsAtScale(t *testing.T) {
	keys := 5000
	if *scale {
		keys = 100000
	}
	net := newTestNet(t, 35)
	net.build(5, Config{Replicas: 3})
	net.run(time.Minute)
	val := make([]byte, 100)
	batches := make(map[*testNode][]store.Record)
	for i := range keys {
		k := fmt.Sprintf("key-%07d", i)
		r := store.Record{Key: k, Value: val, Version: store.Version{Time: uint64(net.now.UnixMilli()) << 16, Writer: uint64(i + 1)}}
		for _, tn := range net.replicaSet(k, 3) {
			batches[tn] = append(batches[tn], r)
		}
	}
	for tn, recs := range batches {
		if _, err := tn.e.Store().PutAll(recs); err != nil {
			t.Fatal(err)
		}
	}
	short := func() int {
		n := 0
		for i := range keys {
			k := fmt.Sprintf("key-%07d", i)
			for _, tn := range net.replicaSet(k, 3) {
				if _, ok, _ := tn.e.Store().Get(k); !ok {
					n++
					break
				}
			}
		}
		return n
	}
	if n := short(); n != 0 {
		t.Fatalf("%d keys lack a copy before the kill", n)
	}
	net.order[2].down = true
	start := net.now
	for {
		net.run(5 * time.Second)
		if short() == 0 {
			break
		}
		if net.now.Sub(start) > 2*time.Minute {
			debugShort(t, net, keys)
			t.Fatalf("after %v: %d keys lack a copy on their 3 live replicas", net.now.Sub(start), short())
		}
	}
	t.Logf("%d keys back on their 3 live replicas %v after the kill", keys, net.now.Sub(start))

	net.run(time.Minute)
	sent, syncBytes := 0, 0
	asked := make(map[string]bool) // dk_sync queries by asker and transaction
	net.drop = func(from, to netip.AddrPort, data []byte) bool {
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
	net.run(DefaultConfig().SyncInterval)
	net.drop = nil
	var held int64
	for _, tn := range net.live() {
		_, b := tn.e.Store().Stats()
		held += b
	}
	t.Logf("in sync, one interval: %d bytes of dk_sync (%d in all) for %d bytes held: %.2e",
		syncBytes, sent, held, float64(syncBytes)/float64(held))
	// What agreeing replicas exchange does not grow with what they hold:
	// a few queries per pair of replicas, along the edges of the ranges
	// they share.
	if pairs := len(net.live()) * 2; syncBytes == 0 || syncBytes > pairs*8192 {
		t.Errorf("an idle interval sent %d bytes of dk_sync for %d pairs of replicas, want at most 8 KiB a pair", syncBytes, pairs)
	}
}

// debugShort logs the first keys that lack a copy, with their primary's
// view of the ring: what a failure needs to be understood.
func debugShort(t *testing.T, net *testNet, keys int) {
	idx := func(x *testNode) int {
		for i, tn := range net.order {
			if tn == x {
				return i
			}
		}
		return -1
	}
	byID := func(x [20]byte) int {
		for i, tn := range net.order {
			if tn.e.ID() == x {
				return i
			}
		}
		return -1
	}
	shown := 0
	for i := range keys {
		k := fmt.Sprintf("key-%07d", i)
		rs := net.replicaSet(k, 3)
		var has []bool
		miss := false
		for _, tn := range rs {
			_, ok, _ := tn.e.Store().Get(k)
			has = append(has, ok)
			miss = miss || !ok
		}
		if !miss {
			continue
		}
		p := rs[0]
		var succs []int
		for _, s := range p.e.ring.succs {
			succs = append(succs, byID(s.ID))
		}
		t.Logf("key %s: replicas %d %d %d hold %v; primary's pred %d (has %v) succs %v", k, idx(rs[0]), idx(rs[1]), idx(rs[2]), has, byID(p.e.ring.pred.ID), p.e.ring.hasPred, succs)
		if shown++; shown > 5 {
			return
		}
	}
}
