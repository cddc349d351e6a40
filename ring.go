package dhtkit

import (
	"context"
	"fmt"

	"github.com/dhtkit/dhtkit/chord"
	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/kademlia"
	"github.com/dhtkit/dhtkit/krpc"
)

// Ring returns a Chord node's predecessor, successor list and finger
// table (see chord.Ring); false when the node runs Kademlia, which has
// buckets instead (Routing).
func (n *Node) Ring() (chord.Ring, bool) {
	if n.chord == nil {
		return chord.Ring{}, false
	}
	var r chord.Ring
	n.rt.Inspect(func() { r = n.chord.Ring() })
	return r, true
}

// fillSelf gives the node's own entry in a lookup's answer (and trace) its address: a
// Chord lookup answered by the node itself (it is the target's successor)
// lists it by id alone, which printed as "invalid AddrPort".
func (n *Node) fillSelf(res *kademlia.Result) {
	fill := func(nodes []krpc.NodeInfo) {
		for i := range nodes {
			if nodes[i].ID == n.ID() && !nodes[i].Addr.IsValid() {
				nodes[i].Addr = n.Addr()
			}
		}
	}
	fill(res.Nodes)
	for i := range res.Trace {
		fill(res.Trace[i].Nodes)
	}
}

// LookupTrace is Lookup that also reports every query the lookup made, in
// the order the answers came (Result.Trace), with the hop count in
// Result.Stats.Hops: a Kademlia lookup's parallel queries, or a Chord
// lookup's forwarding chain.
func (n *Node) LookupTrace(ctx context.Context, target id.ID) (kademlia.Result, error) {
	res, err := n.Do(ctx, kademlia.FindNode{Target: target, Trace: true})
	if err != nil {
		return res, fmt.Errorf("dhtkit: lookup %v: %w", target, err)
	}
	return res, nil
}
