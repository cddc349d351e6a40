package chord

import (
	"slices"
	"time"

	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/krpc"
)

// A blind arc is a stretch of the ring just before a successor-list entry
// in which there may be nodes this node never heard of. Its successor
// list is otherwise contiguous: each entry came from the one before it
// (stabilize), so the node knows there is nobody between two entries.
// One way breaks that: every successor failed and the node fell back on
// its nearest finger (stabilize). Across a split, the nodes between the
// lost successors and that finger are on the other side, and the node
// never knew them: it answered for the keys there with its own side's
// nodes, and a minority side acknowledged writes to keys it held a
// minority of (TestSplitProbe: 2 of 3652 writes in 12-node rings, 7 of
// 5976 in 20-node rings).
//
// So a node that fell back marks its arc to its first successor blind
// while it has lost anyone within DownFor, and passes the mark on with
// its successor list (wire.go, "b"); a node whose head of list moves to
// or past its successor's mark takes the blindness as its own. An answer
// names no node at or past the mark as a member: it stops before it and
// is partial (ring.answer), so that the asker asks the key's successor
// itself and, failing that, counts the members it cannot name as down.
// In a ring that loses a few nodes at a time nothing is blind: the
// successor list bridges them. Nor is an arc blind when the fallback
// successor's lost predecessor, or the one before it (wire.go, "q"), lies
// within the successor list this node last knew whole: the two overlap,
// and every node between is known, lost or not (sawList).

// blindFrom returns the first entry that follows a blind arc, if any.
func (e *Engine) blindFrom(now time.Time) (id.ID, bool) {
	r := &e.ring
	if r.blindFirst {
		if len(r.succs) > 0 && e.lostWithin(now) {
			return r.succs[0].ID, true
		}
		r.blindFirst = false
	}
	return r.blindAt, !r.blindAt.IsZero()
}

// beyondBlind reports whether x lies at or past the blind mark b, as
// seen from the node.
func (r *ring) beyondBlind(x, b id.ID) bool {
	return id.Compare(r.dist(x), r.dist(b)) >= 0
}

// headMoved records that the head of the successor list changed other
// than through stabilize (a successor lost): when it is now at or past
// the successor's blind mark, the arc to it holds that blind arc.
func (e *Engine) headMoved() {
	r := &e.ring
	if len(r.succs) == 0 {
		return
	}
	if !r.blindAt.IsZero() && r.beyondBlind(r.succs[0].ID, r.blindAt) {
		r.blindFirst = true
	}
	e.headWithinReach()
}

// headWithinReach ends the blindness of the arc to the first successor
// when that one lies within the list the node last knew whole: it knows
// every node before it there. So a node that fell back across a split
// vouches for its list again as soon as a node of the other side is back
// at its head (probe.go), not DownFor later.
func (e *Engine) headWithinReach() {
	r := &e.ring
	if r.blindFirst && len(r.succs) > 0 && !r.reach.IsZero() && id.Compare(r.dist(r.succs[0].ID), r.dist(r.reach)) <= 0 {
		r.blindFirst = false
	}
}

// sawList takes the blind mark, and the lost predecessor, from the
// successor's answer to stabilize.
func (e *Engine) sawList(now time.Time, nb neighbors) {
	r := &e.ring
	r.blindAt = nb.blind
	if r.blindAt == e.self {
		// The successor's blind arc ends at this node: its list, past
		// this node, is not part of ours (setSuccs stops there).
		r.blindAt = id.ID{}
	}
	if r.blindFirst && !r.reach.IsZero() && len(nb.lostPreds) > 0 {
		// The successor knew the nodes before it back to its last lost
		// predecessor's predecessor: when that reaches into the list this
		// node knew, nothing between is unknown, and the ones it never
		// heard of are lost (they count down in replica sets).
		within := func(n krpc.NodeInfo) bool {
			return n.ID == e.self || id.Compare(r.dist(n.ID), r.dist(r.reach)) <= 0
		}
		if i := slices.IndexFunc(nb.lostPreds, within); i >= 0 {
			for _, n := range nb.lostPreds[:i] {
				if _, known := r.known(n.ID); !known {
					e.lose(now, n)
				}
			}
			r.blindFirst = false
		}
	}
	e.headWithinReach()
	if _, blind := e.blindFrom(now); !blind && len(r.succs) > 0 {
		r.reach = r.succs[len(r.succs)-1].ID
	}
}

// neighbors is what the node tells of its neighbourhood: its predecessor,
// with succs its successor list and blind mark, and the predecessor it
// lost last while that one counts as down.
func (e *Engine) neighbors(now time.Time, succs bool) neighbors {
	r := &e.ring
	var nb neighbors
	if r.hasPred {
		nb.pred = r.pred
	}
	if succs {
		nb.succs = r.succs
		nb.blind, _ = e.blindFrom(now)
	}
	if len(r.lostPreds) > 0 {
		if i := r.findLost(r.lostPreds[0].ID); i >= 0 && now.Sub(r.lost[i].since) < e.cfg.DownFor {
			nb.lostPreds = r.lostPreds
		}
	}
	return nb
}

// predBlind reports whether t, which the node owns by its predecessor
// pointer, lies in a blind arc before it: the node lost its predecessor
// (within DownFor) and took a new one from further back than the nodes
// it knew before it (the lost one and the one before that), so nodes it
// never heard of may lie between. Across a split the node's own side
// closes its ring over the other side that way, and the node then
// answered for the other side's keys with its own side's nodes
// (TestSplitProbe, 20 nodes).
func (e *Engine) predBlind(now time.Time, t id.ID) bool {
	r := &e.ring
	if !r.hasPred || len(r.lostPreds) == 0 {
		return false
	}
	if i := r.findLost(r.lostPreds[0].ID); i < 0 || now.Sub(r.lost[i].since) >= e.cfg.DownFor {
		return false
	}
	far := r.lostPreds[len(r.lostPreds)-1].ID
	if far == r.pred.ID || !id.Between(far, r.pred.ID, r.self) {
		return false // the new predecessor is at or past the nodes known
	}
	return id.Between(t, r.pred.ID, far) && t != far
}
