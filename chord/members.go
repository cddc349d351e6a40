package chord

import (
	"slices"
	"time"

	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/krpc"
)

// The quorum rule counts a key's replica set among every node the engine
// knows to exist, answering or not (docs/architecture.md, "The quorum
// rule"). The ring state alone is not that: a successor list of r
// entries and one predecessor do not hold a node's second predecessor,
// a predecessor that missed one ping is dropped, and a node starved of
// CPU as a split begins can go from its list of before straight to its
// successor's collapsed two-node ring without ever seeing the nodes in
// between in a list, so that none of them is lost either. Such a node
// then counted a key's replica set among itself and the nodes on its
// own side, and the minority side of a 2+4 split acknowledged writes
// (issue 9's split view). So the engine also remembers every node that
// answered one of its queries, and every node its successor lists, for
// Config.DownFor: they stay in the replica sets of their keys, asked
// like any member, until they have been silent that long or said
// goodbye. A remembered node that stops answering is lost like a ring
// entry (ring.failed), and so counts as down without being asked.

// maxMembers bounds the remembered nodes. A small network fits whole;
// in a large one the nodes nearest a key come from the lookup, and a
// node evicted here (the one heard from longest ago) only stops adding
// to replica sets.
const maxMembers = 64

// member is a node the engine heard from, or heard of from its successor.
type member struct {
	info krpc.NodeInfo
	at   time.Time
}

// remember records that n exists at time now.
func (r *ring) remember(now time.Time, n krpc.NodeInfo) {
	if n.ID.IsZero() || n.ID == r.self || !n.Addr.IsValid() {
		return
	}
	if r.members == nil {
		r.members = make(map[id.ID]member)
	}
	if _, ok := r.members[n.ID]; !ok && len(r.members) >= maxMembers {
		var w member
		for _, m := range r.members {
			if w.info.ID.IsZero() || m.at.Before(w.at) || m.at.Equal(w.at) && id.Compare(m.info.ID, w.info.ID) < 0 {
				w = m
			}
		}
		delete(r.members, w.info.ID)
	}
	r.members[n.ID] = member{info: n, at: now}
}

// dropMember forgets x for good: it said goodbye.
func (r *ring) dropMember(x id.ID) { delete(r.members, x) }

// remembered returns, sorted by id, the remembered nodes heard of less
// than d ago that are not in the lost set: a lost one counts as down
// (replicaSet), not as a member to ask.
func (r *ring) remembered(now time.Time, d time.Duration) []krpc.NodeInfo {
	out := make([]krpc.NodeInfo, 0, len(r.members))
	for _, m := range r.members {
		if now.Sub(m.at) < d && r.findLost(m.info.ID) < 0 {
			out = append(out, m.info)
		}
	}
	slices.SortFunc(out, func(a, b krpc.NodeInfo) int { return id.Compare(a.ID, b.ID) })
	return out
}
