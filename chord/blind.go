package chord

import (
	"slices"
	"time"

	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/krpc"
)

// A blind arc is a stretch of the ring, before a node's successor or
// before itself, in which there may be nodes it never heard of. A
// successor list is contiguous: each entry came from the one before it
// (stabilize), so the node knows there is nobody between two entries;
// and a predecessor pointer is the node just before. Four moves break
// that while the node has lost anyone within DownFor, that is, across a
// split, where the nodes it never knew are on the other side:
//
//   - it lost every successor and fell back on its nearest finger or its
//     predecessor (stabilize), or took the first node that notified it
//     (notified): the arc to that successor is blind (blindFirst);
//   - its successor's list was blind past some entry: so is its own
//     past that entry (blindAt, from "b" in wire.go), and when its head
//     of list moves to or past the mark the arc to its head is blind;
//   - it lost every successor and has none yet: it is not alone;
//   - it lost its predecessor and took one from further back than the
//     lost one and the one before that (predBlind).
//
// Answering across such an arc, a node named its own side's nodes as a
// key's replicas, and a minority side acknowledged writes to keys it
// held a minority of (TestSplitProbe: 16 writes over 13 rings of 6 to 30
// nodes). Now an answer names no member past a blind arc: it stops
// before it and is partial, so that the asker asks the key's successor
// itself and counts what it cannot name as down; and when every member
// would lie past one, the answer names only a node to ask and vouches
// for nothing ("u"), and a lookup that settles on it counts every member
// down (ring.answer, replicaSet).
//
// An arc is seen again when the fallback successor's lost predecessor,
// or the one before it ("q"), lies within the successor list the node
// last knew whole (the two overlap; the nodes of the successor's it
// never heard of are lost from then on: sawList), when its first
// successor lies within that list again (a node of the other side back:
// headWithinReach), or when it has lost no one within DownFor. In a ring
// that loses a few nodes at a time nothing is blind: the successor list
// and the two predecessors bridge them.

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
// the successor's blind mark, the arc to it holds that blind arc; when
// it lies within the list last known whole, the arc is seen again.
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
	if r.blindFirst && len(r.succs) > 0 && r.withinReach(r.succs[0].ID) {
		r.blindFirst = false
	}
}

// withinReach reports whether x lies within the successor list the node
// last knew whole.
func (r *ring) withinReach(x id.ID) bool {
	return !r.reach.IsZero() && id.Compare(r.dist(x), r.dist(r.reach)) <= 0
}

// fellBack records that the node took a successor not from a list (every
// successor failed): while it has lost anyone, the arc to it is blind.
func (e *Engine) fellBack(now time.Time) {
	e.ring.blindFirst = e.lostWithin(now)
	e.ring.blindAt = id.ID{}
}

// takeMark takes a neighbour's blind mark for the node's list. A mark at
// the node itself ends the neighbour's blind arc here: its list past
// this node is not part of ours (setSuccs stops there).
func (e *Engine) takeMark(b id.ID) {
	if b == e.self {
		b = id.ID{}
	}
	e.ring.blindAt = b
}

// lostPredsNow returns the predecessors the node lost last while the
// first still counts as down (within DownFor).
func (e *Engine) lostPredsNow(now time.Time) []krpc.NodeInfo {
	r := &e.ring
	if len(r.lostPreds) == 0 {
		return nil
	}
	if i := r.findLost(r.lostPreds[0].ID); i < 0 || now.Sub(r.lost[i].since) >= e.cfg.DownFor {
		return nil
	}
	return r.lostPreds
}

// sawList takes the blind mark, and the lost predecessor, from the
// successor's answer to stabilize.
func (e *Engine) sawList(now time.Time, nb neighbors) {
	r := &e.ring
	e.takeMark(nb.blind)
	if r.blindFirst && len(nb.lostPreds) > 0 {
		// The successor knew the nodes before it back to its last lost
		// predecessor's predecessor: when that reaches into the list this
		// node knew, nothing between is unknown, and the ones it never
		// heard of are lost (they count down in replica sets).
		within := func(n krpc.NodeInfo) bool { return n.ID == e.self || r.withinReach(n.ID) }
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

// neighbors is what the node tells of its neighbourhood: its predecessor
// and, with succs, its successor list, blind mark and lost predecessors.
func (e *Engine) neighbors(now time.Time, succs bool) neighbors {
	r := &e.ring
	var nb neighbors
	if r.hasPred {
		nb.pred = r.pred
	}
	if succs {
		nb.succs = r.succs
		nb.blind, _ = e.blindFrom(now)
		nb.lostPreds = e.lostPredsNow(now)
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
	lost := e.lostPredsNow(now)
	if !r.hasPred || len(lost) == 0 {
		return false
	}
	far := lost[len(lost)-1].ID
	if far == r.pred.ID || !id.Between(far, r.pred.ID, r.self) {
		return false // the new predecessor is at or past the nodes known
	}
	return id.Between(t, r.pred.ID, far) && t != far
}
