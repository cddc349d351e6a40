package kademlia

import (
	"net/netip"
	"testing"
	"time"
)

// Nodes started together probe a bootstrap node that is not listening
// yet: the probe is resent at its soft timeout, so a joiner is in as soon
// as the node listens, not after the hard timeout and a back-off.
func TestBootstrapLateSeedJoinsFast(t *testing.T) {
	n := newTestNet(t, 2)
	seed := n.add(Config{})
	seed.down = true
	n.Drop = func(_, to netip.AddrPort, _ []byte) bool { return n.Nodes[to] == nil || n.Nodes[to].down }
	joiner := n.add(Config{Bootstrap: []netip.AddrPort{seed.addr}})
	op := joiner.e.Start(n.Now, Bootstrap{})
	n.Flush(joiner)
	n.RunUntil(400*time.Millisecond, func() bool { return false })
	seed.down = false
	up := n.Now
	if !n.RunUntil(time.Minute, func() bool { _, ok := joiner.results[op]; return ok }) {
		t.Fatal("the joiner never joined")
	}
	if r := joiner.results[op]; r.Err != nil {
		t.Fatalf("bootstrap: %v", r.Err)
	}
	t.Logf("joined %v after the seed came up", n.Now.Sub(up))
	// Without the resends: the 2 s hard timeout, then 1–1.25 s of back-off.
	if took := n.Now.Sub(up); took > time.Second {
		t.Errorf("joined %v after the seed came up, want within a second", took)
	}
}
