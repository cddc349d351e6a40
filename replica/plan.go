package replica

import (
	"slices"

	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/krpc"
	"github.com/dhtkit/dhtkit/store"
)

// Plan is what one walk of a node's index finds: for each peer, the part
// of the id space both should hold (where this node holds records the
// peer should hold too), and the records this node should no longer hold,
// with the nodes that should.
type Plan struct {
	Peers   []PeerPlan
	Foreign []Foreign
}

// PeerPlan is one peer to run a round with.
type PeerPlan struct {
	Peer   krpc.NodeInfo
	Shared *Set
}

// Foreign is a record this node holds and should not: To should.
type Foreign struct {
	Entry store.Entry
	To    []krpc.NodeInfo
}

// MakePlan walks st's index (keys and versions, never values) and asks
// place about each record. At most maxForeign records are listed as
// foreign, so that hand-over costs a bounded share per round.
func MakePlan(st store.Store, place Placement, maxForeign int) (*Plan, error) {
	peers := make(map[id.ID]*PeerPlan)
	var foreign []Foreign
	err := st.Bucket(0, 0, func(e store.Entry) bool {
		t := store.KeyTarget(e.Key)
		others, self := place.Replicas(t)
		if !self {
			if len(others) > 0 && len(foreign) < maxForeign {
				foreign = append(foreign, Foreign{Entry: e, To: others})
			}
			return true
		}
		for _, o := range others {
			pp := peers[o.ID]
			if pp == nil {
				pp = &PeerPlan{Peer: o, Shared: &Set{}}
				peers[o.ID] = pp
			}
			pp.Shared.Add(t)
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	p := &Plan{Foreign: foreign}
	for _, pp := range peers {
		p.Peers = append(p.Peers, *pp)
	}
	slices.SortFunc(p.Peers, func(a, b PeerPlan) int { return id.Compare(a.Peer.ID, b.Peer.ID) })
	return p, nil
}

// Peer returns the plan's entry for peer, adding an empty one if needed:
// an engine that knows of a range shared with a peer where this node
// holds nothing yet (a Chord primary and its successors) adds it.
func (p *Plan) Peer(peer krpc.NodeInfo) *PeerPlan {
	for i := range p.Peers {
		if p.Peers[i].Peer.ID == peer.ID {
			return &p.Peers[i]
		}
	}
	p.Peers = append(p.Peers, PeerPlan{Peer: peer, Shared: &Set{}})
	slices.SortFunc(p.Peers, func(a, b PeerPlan) int { return id.Compare(a.Peer.ID, b.Peer.ID) })
	return p.Peer(peer)
}
