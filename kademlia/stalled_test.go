package kademlia

import (
	"net/netip"
	"testing"
	"time"
)

// TestLateLookupQueryWritesOnce: a lookup query that passes its soft
// timeout after the lookup has handed over to the quorum write must not
// end the lookup a second time. It did: the engine routed the soft
// timeout to the lookup, whose end started the write again, with a
// version of its own, after the put had been acknowledged with the
// first; the replicas then held a version no caller was told of (the
// fault suite's checker saw one in a run with 10% loss and 50 ms delay).
func TestLateLookupQueryWritesOnce(t *testing.T) {
	n := newTestNet(t, 21)
	n.build(24, Config{})
	coord := n.Order[0]
	coord.e.onehop.off = true
	// Every lookup answer from one node is lost, so that its query is
	// still out when the lookup ends.
	var mute netip.AddrPort
	n.Drop = func(from, to netip.AddrPort, data []byte) bool { return from == mute && to == coord.addr }
	for _, tn := range n.Order[1:] {
		mute = tn.addr
		op := coord.e.Start(n.Now, KVPut{Key: "late", Value: []byte(tn.addr.String())})
		n.Flush(coord)
		handedOver := func() bool { s := coord.e.ops[op]; return s == nil || s.kv != nil }
		if !n.RunUntil(time.Minute, handedOver) {
			t.Fatal("the put never reached its replicas")
		}
		s := coord.e.ops[op]
		if s == nil {
			continue
		}
		kv := s.kv
		var late *pending
		for tid := range 1 << 16 {
			if slot := coord.e.inflight.Get(uint16(tid)); slot != nil && slot.Q.op == op && slot.Q.method == s.lookup.method {
				late = &slot.Q
				break
			}
		}
		if late == nil {
			n.RunUntil(time.Minute, func() bool { _, ok := coord.results[op]; return ok })
			continue
		}
		coord.e.onStalled(n.Now, late)
		if s.kv != kv {
			t.Fatal("a lookup query's soft timeout after the hand-over started the write again")
		}
		if !n.RunUntil(time.Minute, func() bool { _, ok := coord.results[op]; return ok }) {
			t.Fatal("the put did not finish")
		}
		res := coord.results[op]
		if res.Err != nil {
			t.Fatalf("put: %v", res.Err)
		}
		n.RunUntil(10*time.Second, func() bool { return false })
		for _, r := range n.Order {
			if got, ok, _ := r.e.Store().Get("late"); ok && got.Version != res.Version {
				t.Fatalf("%v holds version %v; the put was acknowledged with %v", r.addr, got.Version, res.Version)
			}
		}
		return
	}
	t.Fatal("no lookup ended with a query of its own still out: the test tests nothing")
}
