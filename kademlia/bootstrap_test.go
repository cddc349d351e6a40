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

// A node restarted with saved contacts that are all gone (their nodes came
// back at other addresses) is still reached by the nodes that know it: once
// every bootstrap address has let a probe time out, it joins through the
// nodes that reached it, within seconds, not after JoinWait.
func TestBootstrapThroughNodesThatReachUs(t *testing.T) {
	n := newTestNet(t, 3)
	gone := n.add(Config{})
	gone.down = true
	n.Drop = func(_, to netip.AddrPort, _ []byte) bool { return n.Nodes[to] == nil || n.Nodes[to].down }
	a := n.add(Config{})
	b := n.add(Config{Bootstrap: []netip.AddrPort{a.addr}})
	restarted := n.add(Config{Bootstrap: []netip.AddrPort{gone.addr}})
	op := restarted.e.Start(n.Now, Bootstrap{})
	n.Flush(restarted)
	b.e.Start(n.Now, Bootstrap{})
	n.Flush(b)
	// a learns of the restarted node (it kept its address): its ping puts
	// a in the restarted node's table.
	a.e.Start(n.Now, Ping{Addr: restarted.addr})
	n.Flush(a)
	start := n.Now
	if !n.RunUntil(time.Minute, func() bool { _, ok := restarted.results[op]; return ok }) {
		t.Fatal("the restarted node never joined")
	}
	if r := restarted.results[op]; r.Err != nil {
		t.Fatalf("bootstrap: %v", r.Err)
	}
	took := n.Now.Sub(start)
	t.Logf("joined through the table after %v", took)
	// The dead address's first probe times out after the hard timeout
	// (2 s); the next table check follows within bootTableCheck.
	if took > 5*time.Second {
		t.Errorf("joined after %v, want within 5 s", took)
	}
	if restarted.e.Table().Len() < 2 {
		t.Errorf("the restarted node knows %d nodes after joining, want a and b", restarted.e.Table().Len())
	}
}
