package chord

import (
	"net/netip"
	"slices"
	"time"

	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/krpc"
	"github.com/dhtkit/dhtkit/replica"
	"github.com/dhtkit/dhtkit/store"
)

// Replica maintenance. A write reaches the key's replica set once; churn
// then erodes it: a replica crashes, or a node joins between the key and
// its replicas. So every SyncInterval each node runs a round of the
// replication layer's tree exchange (package replica, dk_sync) with each
// of its first Replicas-1 successors, the rest of the replica set of the
// records it is the primary for, those whose target lies in
// (predecessor, self]: hashes of that range, descending where they
// differ, then keys and versions of the differing leaves. The node
// pushes the records a successor lacks or holds older, and pulls those
// it lacks or holds older itself, so a new primary whose hand-over was
// lost gets its range back from the replica next to it. Replicas that
// agree exchange a few hundred bytes, never values, whatever they store.
//
// The ring makes this simpler than Kademlia's placement: who should hold
// a key follows from the successor list, so only the primary has to look,
// and a replica that died has already been dropped from the list by
// stabilize when the next round runs, which then offers its keys to the
// node that took its place. A node that joins between a key and its
// replicas is in the list of the key's primary after the next stabilize
// and gets the records from the next round; one that joins before the
// primary becomes the primary, is handed its range on notify (pushRange),
// and runs the rounds from then on.
//
// Rounds never drop a record. A node that is no longer in a key's replica
// set hands its copy to the replicas and drops it once they all hold it
// (hand-off, below); until then it keeps it. Versions decide, so a stale
// copy cannot override a newer write or a tombstone, and tombstones
// travel like values, so a delete does not come back.

// placement answers the replication layer's question by the ring: for a
// target this node is the primary of, its first Replicas-1 successors;
// for any other, "cannot tell" (the layer then leaves the record alone).
type placement struct{ e *Engine }

func (p placement) Replicas(t id.ID) ([]krpc.NodeInfo, bool) {
	r := &p.e.ring
	if !r.hasPred || !id.Between(t, r.pred.ID, p.e.self) {
		return nil, false
	}
	return r.succs[:min(p.e.cfg.Replicas-1, len(r.succs))], true
}

// syncTree returns the node's hash tree, made on first use.
func (e *Engine) syncTree() *replica.Tree { return replica.LazyTree(&e.tree, e.kvStore()) }

// stored notes that the store took a write: the tree is out of date.
func (e *Engine) stored() {
	if e.tree != nil {
		e.tree.Invalidate()
	}
}

// sync runs a round with each successor that shares the range this node
// is the primary for.
func (e *Engine) sync(now time.Time) {
	r := &e.ring
	n := min(e.cfg.Replicas-1, len(r.succs))
	st := e.cfg.Store
	if !r.hasPred || st == nil {
		return // the range is unknown, or nothing is stored
	}
	if e.syncTree().Prepare(now) != nil {
		return
	}
	e.startHandOff(now, id.ID{}, 0)
	if n <= 0 {
		return // nobody shares the range
	}
	plan, err := replica.MakePlan(st, placement{e}, 0)
	if err != nil {
		return
	}
	for _, to := range r.succs[:n] {
		// The whole range, held or not: what this node lacks there, a
		// successor may hold.
		plan.Peer(to).Shared.AddRing(r.pred.ID, e.self)
	}
	for _, pp := range plan.Peers {
		e.startRound(now, pp)
	}
}

// syncRound is one round of the tree exchange with a successor
// (replica.Round); the pushes and pulls it calls for run as operations of
// their own. It carries the round: replica.RoundLink.
type syncRound struct {
	e *Engine
	s *opState
	r *replica.Round
}

func (e *Engine) startRound(now time.Time, pp replica.PeerPlan) {
	s := e.newOp(now, nil, true)
	s.round = &syncRound{e: e, s: s, r: replica.NewRound(pp.Peer, e.syncTree(), placement{e}, pp.Shared)}
	s.round.r.Step(now, s.round)
}

func (sr *syncRound) SendSync(now time.Time, x []byte) (uint64, bool) {
	q := sr.e.newQuery(mSync)
	q.A.Has |= krpc.HasX
	q.A.X = x
	tid, ok := sr.e.sendQueryTID(now, mSync, sr.r.Peer.Addr, sr.r.Peer.ID, sr.s.id, forOp)
	return uint64(tid), ok
}
func (sr *syncRound) Push(now time.Time, p *replica.Push) { sr.e.push(now, p) }
func (sr *syncRound) Pull(now time.Time, keys []string)   { sr.e.pullRecords(now, sr.r.Peer, keys) }
func (sr *syncRound) Finish(now time.Time)                { sr.e.finish(now, sr.s, nil) }

func (sr *syncRound) response(now time.Time, e *Engine, _ *opState, p *pending, m *krpc.Msg) {
	if sr.r.Answered(now, uint64(p.tid), m.R.X, sr) != nil {
		e.stats.Malformed++
	}
}

func (sr *syncRound) failure(now time.Time, _ *Engine, _ *opState, p *pending) {
	sr.r.Failed(now, uint64(p.tid), sr)
}

// pullRecords fetches keys from `from` (dk_fetch {"ks": [...]}) and stores
// what is newer than ours.
func (e *Engine) pullRecords(now time.Time, from krpc.NodeInfo, keys []string) {
	s := e.newOp(now, nil, true)
	s.pull = true
	q := e.newQuery(mFetch)
	q.A.Has |= krpc.HasX
	e.xbuf = replica.AppendFetch(e.xbuf[:0], keys...)
	q.A.X = e.xbuf
	if !e.sendQuery(now, mFetch, from.Addr, from.ID, s.id, forOp) {
		e.finish(now, s, errBadAddr)
	}
}

// pulled stores the records a pull brought back.
func (e *Engine) pulled(now time.Time, s *opState, m *krpc.Msg) {
	defer e.finish(now, s, nil)
	if replica.Pulled(now, e.kvStore(), m.R.X, e.clock.Observe, e.changed) != nil {
		e.stats.Malformed++
	}
}

// handleSync answers dk_sync, the replication layer's tree exchange:
// hashes of a prefix's children, or a page of its entries, one datagram
// at most. A node of our ring at the address it asks from gets full
// pages; any other (a predecessor further back, or a forged source) pages
// of replica.SmallPage, so that a forged query draws little more than
// itself. It leaves the reply in e.out and reports whether there is one.
func (e *Engine) handleSync(now time.Time, from netip.AddrPort, q *krpc.Msg) bool {
	limit := replica.SmallPage
	if e.proven(from, q) || e.known(q.A.ID, from) {
		limit = replica.MaxPayload
	}
	out, err := e.syncTree().ServeUpTo(now, e.xbuf[:0], q.A.X, limit)
	if err != nil {
		e.stats.Malformed++
		e.replyError(now, from, q.T, krpc.CodeProtocol, replica.Method+": "+err.Error())
		return false
	}
	e.xbuf = out
	r := e.newResponse(q.T)
	r.R.Has |= krpc.HasX
	r.R.X = out
	return true
}

// known reports whether node x at addr is our predecessor, a successor or
// a finger: a node whose address we have seen answer.
func (e *Engine) known(x id.ID, addr netip.AddrPort) bool {
	r := &e.ring
	if r.hasPred && r.pred.ID == x && r.pred.Addr == addr {
		return true
	}
	is := func(n krpc.NodeInfo) bool { return n.ID == x && n.Addr == addr }
	return slices.ContainsFunc(r.succs, is) || slices.ContainsFunc(r.fingers, is)
}

// Hand-off from holders that are not replicas. Rounds run from a key's
// primary only, and never drop a copy; but a node that was a replica of
// a key stops being one when nodes join between the key and it, or when
// a partition heals and the ring takes back nodes it had closed over.
// Its copy then sits outside the replica set for good: the rounds of the
// key's primary do not see it, and a get does not ask it. So each round
// a node also checks the records it holds outside the range it is the
// primary for: it looks up the successor of the farthest one back (the
// answer is that node and its successor list, a contiguous stretch of
// the ring, so it tells the replica set of every target from there up to
// Replicas-1 nodes before its end), hands each record it turns out not
// to be a replica of to the members of its set (replica.Handover), and
// drops its copy once every one of them acknowledged it, as Kademlia's
// purge does. A record whose set has a member down, or that the answer
// does not cover, stays for a later round. A round makes at most
// maxHandOffLookups such lookups, each starting past the last one's
// reach.

// maxHandOffLookups bounds the lookups one round's hand-off makes.
const maxHandOffLookups = 4

// maxHandOffPerSync bounds the records one lookup hands off.
const maxHandOffPerSync = 4096

// handOff is the lookup of the hand-off: the target it looks up, and
// how many lookups this round made before it.
type handOff struct {
	far  id.ID
	hops int
}

// startHandOff looks up the farthest target back from this node, past
// after (zero: from the start), of a record held outside the range this
// node is the primary for.
func (e *Engine) startHandOff(now time.Time, after id.ID, hops int) {
	r := &e.ring
	if hops >= maxHandOffLookups || !r.hasPred || e.cfg.Store == nil {
		return
	}
	var far id.ID
	found := false
	_ = e.cfg.Store.Bucket(0, 0, func(en store.Entry) bool {
		t := store.KeyTarget(en.Key)
		if id.Between(t, r.pred.ID, e.self) || hops > 0 && !id.Between(t, after, e.self) {
			return true
		}
		if !found || id.Compare(id.RingDistance(t, e.self), id.RingDistance(far, e.self)) > 0 {
			far, found = t, true
		}
		return true
	})
	if !found {
		return
	}
	s := e.newOp(now, nil, true)
	s.off = &handOff{far: far, hops: hops}
	e.startLookup(now, s, far, nil)
}

// handOffTo takes the hand-off lookup's answer: the successor of far and
// the nodes after it.
func (e *Engine) handOffTo(now time.Time, s *opState, a answer) {
	nodes := a.nodes
	off := *s.off
	e.finish(now, s, nil)
	r := &e.ring
	st := e.cfg.Store
	if len(nodes) < e.cfg.Replicas || !r.hasPred || st == nil {
		return // the answer does not tell a whole replica set
	}
	// The last target whose Replicas successors the answer lists.
	last := nodes[len(nodes)-e.cfg.Replicas].ID
	reach := id.RingDistance(off.far, last)
	h := replica.NewHandover()
	handed := 0
	_ = st.Bucket(0, 0, func(en store.Entry) bool {
		t := store.KeyTarget(en.Key)
		if id.Between(t, r.pred.ID, e.self) || id.Compare(id.RingDistance(off.far, t), reach) > 0 {
			return true
		}
		ms, down := e.replicaSet(now, t, a)
		if slices.ContainsFunc(ms, func(m replica.Member) bool { return m.Self }) || slices.Contains(down, true) || len(ms) < e.cfg.Replicas {
			return true // a replica after all, or a member is down: keep it
		}
		to := make([]krpc.NodeInfo, len(ms))
		for i, m := range ms {
			to[i] = m.Node
		}
		h.Add(en, to)
		handed++
		return handed < maxHandOffPerSync
	})
	h.Drop = func(_ time.Time, rec store.Record) {
		if err := st.Remove(rec.Key, rec.Version); err == nil {
			e.stored()
		}
	}
	for _, p := range h.Pushes() {
		e.push(now, p)
	}
	// Past this answer's reach, the next lookup, unless it reached us.
	if id.Compare(reach, id.RingDistance(off.far, e.self)) < 0 {
		e.startHandOff(now, last, off.hops+1)
	}
}
