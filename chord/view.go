package chord

import (
	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/krpc"
)

// Finger is one row of the finger table: Start is self+2^Index, Node the
// first node the engine knows at or after it.
type Finger struct {
	Index int
	Start id.ID
	Node  krpc.NodeInfo
}

// Ring is a snapshot of a node's view of the ring, in Chord's words: what
// a student compares with the paper's figures.
type Ring struct {
	Self           id.ID
	Predecessor    krpc.NodeInfo // valid when HasPredecessor
	HasPredecessor bool
	Successors     []krpc.NodeInfo // nearest first
	// Fingers are the rows of the 160-row finger table where the node
	// changes, lowest index first: rows i+1.. that point at the same node
	// as row i are left out, since on a ring of N nodes all but about
	// log2(N) of the 160 rows repeat the row before. Rows whose start
	// this node owns (it lies between the predecessor and the node) are
	// left out too: their node is the node itself.
	Fingers []Finger
}

// Ring returns the node's predecessor, successor list and finger table.
func (e *Engine) Ring() Ring {
	v := Ring{Self: e.self, Successors: e.Successors()}
	v.Predecessor, v.HasPredecessor = e.Predecessor()
	var last id.ID
	for i := range id.Bits {
		start := id.AddPow2(e.self, i)
		if e.ring.owns(start) {
			continue // the row's node is this node itself
		}
		n, ok := e.ring.finger(i)
		if !ok || (len(v.Fingers) > 0 && n.ID == last) {
			continue
		}
		last = n.ID
		v.Fingers = append(v.Fingers, Finger{Index: i, Start: start, Node: n})
	}
	return v
}
