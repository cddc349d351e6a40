package chord

import (
	"net/netip"
	"slices"
	"time"

	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/krpc"
	"github.com/dhtkit/dhtkit/routing"
)

// Failure detection that recovers. A node that fails to answer leaves the
// successor list, the fingers and the predecessor at once (Zave's rule:
// fall back on the next live successor), but it is not forgotten: it
// waits in the ring's lost set, and the engine pings it with the same
// jittered exponential back-off as a Kademlia table's bad contacts
// (routing.ProbeDelay: ProbeMin doubling to ProbeMax). When it answers, a
// probe's answer or any other, it comes back as a finger, and as the
// first successor if it lies between the node and its successor;
// stabilize then walks the ring to the true successor. After a partition
// each side has made a ring of its own; every node still remembers its
// successor from before, so once the network heals each ring re-merges
// into one, with no action from anyone. A node that left with a goodbye
// (ch_leave) is not remembered.

// maxLost bounds the lost set: the successor list, the fingers (about
// log2 N of them) and the predecessor fit many times over.
const maxLost = 64

// lostNode is a neighbour that stopped answering.
type lostNode struct {
	info     krpc.NodeInfo
	fails    int       // consecutive unanswered queries, routing.BadFails at first
	since    time.Time // when it was lost: it counts in replica sets for Config.DownFor
	next     time.Time // its next probe
	inflight bool
}

// lost records n, which just failed, for probing.
func (e *Engine) lose(now time.Time, n krpc.NodeInfo) {
	r := &e.ring
	if n.ID.IsZero() || n.ID == e.self || !n.Addr.IsValid() {
		return
	}
	if i := r.findLost(n.ID); i >= 0 {
		return // a probe is under way or scheduled
	}
	if len(r.lost) >= maxLost {
		// Forget the one that failed longest: it is the likeliest dead.
		w := 0
		for i := range r.lost {
			if r.lost[i].fails > r.lost[w].fails {
				w = i
			}
		}
		r.lost = slices.Delete(r.lost, w, w+1)
	}
	l := lostNode{info: n, fails: routing.BadFails, since: now}
	l.next = now.Add(routing.ProbeDelay(l.fails, uint32(e.rng.IntN(1<<16))))
	r.lost = append(r.lost, l)
}

func (r *ring) findLost(x id.ID) int {
	return slices.IndexFunc(r.lost, func(l lostNode) bool { return l.info.ID == x })
}

// nextProbe is when the next probe of a lost node is due.
func (r *ring) nextProbe() (time.Time, bool) {
	var t time.Time
	ok := false
	for _, l := range r.lost {
		if !l.inflight && (!ok || l.next.Before(t)) {
			t, ok = l.next, true
		}
	}
	return t, ok
}

// probe pings the lost nodes whose probe is due.
func (e *Engine) probe(now time.Time) {
	r := &e.ring
	for i := range r.lost {
		l := &r.lost[i]
		if l.inflight || now.Before(l.next) {
			continue
		}
		e.newQuery(mPing)
		if e.sendQuery(now, mPing, l.info.Addr, l.info.ID, 0, forProbe) {
			l.inflight = true
			e.stats.Probes++
		}
	}
}

// probeFailed backs off the next probe of a lost node that did not answer.
func (e *Engine) probeFailed(now time.Time, x id.ID) {
	r := &e.ring
	i := r.findLost(x)
	if i < 0 {
		return
	}
	l := &r.lost[i]
	l.inflight = false
	l.fails = min(l.fails+1, 255)
	l.next = now.Add(routing.ProbeDelay(l.fails, uint32(e.rng.IntN(1<<16))))
}

// heard is told of every node that answered a query of ours. A lost node
// that answers is back: as a finger, and as the first successor when it
// lies between us and our successor (or we have none); stabilize starts
// at once to check it and walk on to the true successor.
func (e *Engine) heard(now time.Time, n krpc.NodeInfo) {
	r := &e.ring
	delete(r.suspects, n.ID)
	r.remember(now, n)
	e.joinedNow(now)
	i := r.findLost(n.ID)
	if i < 0 {
		return
	}
	// A node back after a crash or a partition holds keys that changed
	// meanwhile, and its side took writes ours never saw: repair with it
	// soon, once stabilize has had a period to merge the rings, rather
	// than up to a SyncInterval later.
	if soon := now.Add(e.jitter(e.cfg.StabilizeInterval)); soon.Before(e.nextSync) {
		e.nextSync = soon
	}
	r.lost = slices.Delete(r.lost, i, i+1)
	if r.lost != nil && len(r.lost) == 0 {
		r.lost = nil
	}
	r.addFinger(n)
	if succ, ok := r.successor(); !ok || id.Between(n.ID, e.self, succ.ID) && n.ID != succ.ID {
		r.setSuccs([]krpc.NodeInfo{n}, r.succs)
		e.headWithinReach()
		e.stats.SuccessorChanges++
		r.nextStabilize = now
	}
}

// queriedBy is told of every query: a lost node that queries us from
// the address we knew is back at once, as if it had answered (SWIM's
// refutation: any message from it proves it alive), however long its
// probe back-off had grown; a restarted node used to wait out up to
// ProbeMax and a quarter. One that queries from another address is
// probed at once at the old one.
func (e *Engine) queriedBy(now time.Time, x id.ID, from netip.AddrPort) {
	r := &e.ring
	i := r.findLost(x)
	if i < 0 {
		return
	}
	if r.lost[i].info.Addr == from {
		e.heard(now, r.lost[i].info)
		return
	}
	if !r.lost[i].inflight {
		r.lost[i].next = now
	}
}

// Lost returns the neighbours that stopped answering and are being
// probed, for inspection (a status shows them as bad contacts).
func (e *Engine) Lost() []krpc.NodeInfo {
	out := make([]krpc.NodeInfo, len(e.ring.lost))
	for i, l := range e.ring.lost {
		out[i] = l.info
	}
	return out
}
