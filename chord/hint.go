package chord

import (
	"slices"
	"time"

	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/krpc"
)

// Hints: a change in front of a node reaches it within round trips, not
// stabilize periods. In Chord as published a node learns of a node that
// joined in front of it only at its own next stabilize, and the nodes
// before it, whose successor lists should now name the newcomer, one
// period each later. Until then they answer lookups of the newcomer's
// range with the ring as it was, and on a young ring a writer and a
// listener could pick replica sets with no member in common: the
// listener missed every write of such a writer (CI saw it in
// e2e.TestValuesSensorsCLI: five nodes, writes 130 ms after the last
// join; TestHintsYoungRingListen failed 2 seeds in 300 without hints).
//
// So a node whose neighbourhood changed tells the node behind it:
//
//   - a node that takes a new predecessor tells the one it replaced,
//     whose successor the newcomer now is;
//   - a node whose successor list changed tells its predecessor, whose
//     list is one longer than its own.
//
// The hint is ch_hint, which carries nothing and claims nothing: the
// receiver only runs its next stabilize at once, a query to the
// successor it already has, answered under a transaction id of its own.
// A forged hint thus changes no list, and costs at most one stabilize
// round per hintGap. Hints stop where a successor list does not change,
// at most Successors nodes back. A peer that does not know ch_hint
// answers error 204 (method unknown) and stabilizes on its own period,
// as before.

// hintGap is the least time between two stabilize rounds brought forward
// by hints.
const hintGap = 50 * time.Millisecond

// hint tells to that the ring changed in front of it.
func (e *Engine) hint(now time.Time, to krpc.NodeInfo) {
	if to.ID.IsZero() || to.ID == e.self || !to.Addr.IsValid() {
		return
	}
	e.newQuery(mHint)
	e.sendQuery(now, mHint, to.Addr, to.ID, 0, forFire)
}

// hinted takes a hint from n: from our successor, or from a node that
// lies between us and it, it brings the next stabilize forward.
func (e *Engine) hinted(now time.Time, n krpc.NodeInfo) {
	succ, ok := e.ring.successor()
	if !ok {
		return
	}
	if n.ID == succ.ID && n.Addr == succ.Addr || id.Between(n.ID, e.self, succ.ID) && n.ID != succ.ID {
		e.stabilizeSoon(now)
	}
}

// stabilizeSoon brings the next stabilize forward to now, or to hintGap
// after the last one brought forward.
func (e *Engine) stabilizeSoon(now time.Time) {
	r := &e.ring
	at := r.lastEarly.Add(hintGap)
	if at.Before(now) {
		at = now
	}
	if at.Before(r.nextStabilize) {
		r.nextStabilize, r.lastEarly, r.early = at, at, true
	}
}

// tickStabilize runs a stabilize round when one is due. A round brought
// forward while one is in flight waits for it to end: its answer may
// predate the change it was brought forward for.
func (e *Engine) tickStabilize(now time.Time) {
	r := &e.ring
	if now.Before(r.nextStabilize) {
		return
	}
	if r.early && r.stabilizing {
		r.nextStabilize = now.Add(hintGap)
		return
	}
	r.early = false
	r.nextStabilize = now.Add(e.jitter(e.cfg.StabilizeInterval))
	e.stabilize(now)
}

// hintChanges hints the predecessor when the successor list changed
// since it was last hinted, whatever changed it (a stabilize, a
// neighbour's goodbye, a successor lost or back), and a new predecessor
// at once: on a young ring the one hinted before may have been a
// stand-in.
func (e *Engine) hintChanges(now time.Time) {
	r := &e.ring
	if !r.hasPred || r.left || r.toldTo == r.pred.ID && sameIDs(r.told, r.succs) {
		return
	}
	r.told, r.toldTo = append(r.told[:0], r.succs...), r.pred.ID
	e.hint(now, r.pred)
}

// sameIDs reports whether two node lists name the same nodes in order.
func sameIDs(a, b []krpc.NodeInfo) bool {
	return slices.EqualFunc(a, b, func(x, y krpc.NodeInfo) bool { return x.ID == y.ID })
}
