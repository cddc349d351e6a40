package chord

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/kademlia"
)

// A burst of puts started at once from several coordinators leaves every
// record on all three of its successors soon after the puts are
// acknowledged, long before a sync interval (Kademlia's
// TestBurstPutsReachEveryReplica).
func TestBurstPutsReachEveryReplica(t *testing.T) {
	net := newTestNet(t, 41)
	net.build(16, Config{SyncInterval: time.Hour})
	net.Run(time.Minute)
	coords := net.Order[:6]
	const perCoord = 100
	type started struct {
		tn  *testNode
		op  kademlia.OpID
		key string
	}
	var ops []started
	for i := range perCoord {
		for j, c := range coords {
			key := "burst-" + strconv.Itoa(j) + "-" + strconv.Itoa(i)
			ops = append(ops, started{c, c.e.Start(net.Now, kademlia.KVPut{Key: key, Value: []byte("v-" + key)}), key})
		}
	}
	for _, c := range coords {
		net.Flush(c)
	}
	acked := func() bool {
		for _, s := range ops {
			if _, ok := s.tn.results[s.op]; !ok {
				return false
			}
		}
		return true
	}
	if !net.RunUntil(time.Minute, acked) {
		t.Fatal("the puts did not finish within a virtual minute")
	}
	for _, s := range ops {
		if r := s.tn.results[s.op]; r.Err != nil {
			t.Fatalf("put %s: %v", s.key, r.Err)
		}
	}
	// No sync round runs meanwhile (SyncInterval): only the writes count.
	net.Run(5 * time.Second)
	short := 0
	var first string
	for _, s := range ops {
		held := 0
		succ := net.trueSuccessor(id.FromString(s.key))
		for range 3 {
			if _, ok, _ := succ.e.Store().Get(s.key); ok {
				held++
			}
			succ = net.trueSuccessor(id.AddPow2(succ.e.ID(), 0))
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
