package chord

import (
	"net/netip"
	"testing"
	"time"
)

// A node restarted before the ring noticed it was gone (a SIGKILL and a
// supervisor's restart) finds itself first in its join lookup's answer:
// the others still list it. It joins with the nodes after itself as its
// successors, and the ring is whole again within round trips. It took
// the answer as a list that ended at itself, joined with no successor
// at all, and coordinated writes with an empty view (a clean-clone CI
// run in session 12: e2e.TestFault/chord/kill, "joined the network ...
// contacts=0").
func TestRestartBeforeTheRingNoticed(t *testing.T) {
	for seed := range uint64(20) {
		n := newTestNet(t, 200+seed)
		n.build(5, Config{})
		if !n.RunUntil(5*time.Minute, func() bool { return n.listErrors() == 0 }) {
			t.Fatalf("seed %d: setup: %d nodes have a wrong list", seed, n.listErrors())
		}
		r := n.Order[2]
		r.down = true
		n.Run(500 * time.Millisecond)
		cfg := r.e.cfg
		cfg.Bootstrap = []netip.AddrPort{n.Order[int(seed)%2].addr}
		r.e = New(cfg, n.Now)
		r.down = false
		n.Flush(r)
		if !n.RunUntil(time.Minute, r.e.Joined) {
			t.Fatalf("seed %d: the restarted node did not rejoin", seed)
		}
		if len(r.e.Successors()) == 0 {
			t.Fatalf("seed %d: the restarted node joined with no successor", seed)
		}
		if !n.RunUntil(2*time.Second, func() bool { return n.wrongLists(false) == 0 }) {
			t.Fatalf("seed %d: %d nodes have a wrong successor list 2 s after the rejoin", seed, n.wrongLists(false))
		}
		// Its predecessor, which never saw it go, notifies it at its next
		// stabilize: within a period.
		if !n.RunUntil(cfg.StabilizeInterval*2, func() bool { return n.listErrors() == 0 }) {
			t.Fatalf("seed %d: %d nodes have a wrong predecessor two stabilize periods after the rejoin", seed, n.listErrors())
		}
	}
}
