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
// Maintenance never drops a record: a node that is no longer in a key's
// replica set keeps its copy until it expires. That costs storage, never
// data; Versions decide, so a stale copy cannot override a newer write or
// a tombstone, and tombstones travel like values, so a delete does not
// come back.

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
func (e *Engine) syncTree() *replica.Tree {
	if e.tree == nil {
		e.tree = replica.NewTree(e.kvStore())
	}
	return e.tree
}

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
	if !r.hasPred || n <= 0 || st == nil {
		return // the range is unknown, nobody shares it, or nothing is stored
	}
	// Chord keeps no other clock on its records: drop what expired
	// (tombstones included) here, so that expired records are not offered.
	if _, err := st.Expire(now); err != nil {
		return
	}
	tree := e.syncTree()
	if err := tree.Refresh(now); err != nil {
		return
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

// syncRound is one round of the tree exchange with a successor, and the
// pushes it calls for: dk_store batches of the round's own, a window of
// them in flight, so that a successor that lacks a whole range is not
// sent it in one burst its socket buffer would drop.
type syncRound struct {
	r       *replica.Round
	todo    []store.Entry       // to push; values are read as they are sent
	pushing map[uint16]struct{} // dk_store batches in flight
}

// pushWindow is how many dk_store batches a round keeps in flight.
const pushWindow = 8

func (e *Engine) startRound(now time.Time, pp replica.PeerPlan) {
	s := e.newOp(now, nil, true)
	s.round = &syncRound{r: replica.NewRound(pp.Peer, e.syncTree(), placement{e}, pp.Shared), pushing: make(map[uint16]struct{})}
	s.round.next(now, e, s)
}

// next sends what the round asks for, starts the repairs its answers call
// for, and ends the round once it is done.
func (sr *syncRound) next(now time.Time, e *Engine, s *opState) {
	peer := sr.r.Peer
	sr.r.Next(func(x []byte) (uint64, bool) {
		q := e.newQuery(mSync)
		q.A.Has |= krpc.HasX
		q.A.X = x
		tid, ok := e.sendQueryTID(now, mSync, peer.Addr, peer.ID, s.id, forOp)
		return uint64(tid), ok
	})
	push, pulls := sr.r.Repairs()
	sr.todo = append(sr.todo, push...)
	st := e.kvStore()
	for len(sr.pushing) < pushWindow && len(sr.todo) > 0 {
		var batch []store.Record
		size := 0
		for len(sr.todo) > 0 {
			rec, ok, err := st.Get(sr.todo[0].Key)
			if err != nil || !ok || expired(&rec, now) {
				sr.todo = sr.todo[1:]
				continue
			}
			n := len(rec.Key) + len(rec.Value) + 64
			if len(batch) > 0 && size+n >= maxPayload {
				break
			}
			batch, size = append(batch, rec), size+n
			sr.todo = sr.todo[1:]
		}
		if len(batch) == 0 {
			break
		}
		q := e.newQuery(mStore)
		q.A.Has |= krpc.HasX
		e.xbuf = replica.AppendRecords(e.xbuf[:0], batch)
		q.A.X = e.xbuf
		if tid, ok := e.sendQueryTID(now, mStore, peer.Addr, peer.ID, s.id, forOp); ok {
			sr.pushing[tid] = struct{}{}
		}
	}
	for _, ks := range pulls {
		e.pullRecords(now, peer, ks)
	}
	if sr.r.Done() && len(sr.pushing) == 0 && len(sr.todo) == 0 {
		e.finish(now, s, nil)
	}
}

func (sr *syncRound) response(now time.Time, e *Engine, s *opState, p *pending, m *krpc.Msg) {
	if _, ok := sr.pushing[p.tid]; ok {
		delete(sr.pushing, p.tid) // a batch stored; what failed, the next round finds
	} else if err := sr.r.Answer(now, uint64(p.tid), m.R.X); err != nil {
		e.stats.Malformed++
	}
	sr.next(now, e, s)
}

func (sr *syncRound) failure(now time.Time, e *Engine, s *opState, p *pending) {
	if _, ok := sr.pushing[p.tid]; ok {
		delete(sr.pushing, p.tid)
	} else {
		sr.r.Fail(uint64(p.tid))
	}
	sr.next(now, e, s)
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
	recs, err := replica.ParseRecords(m.R.X)
	if err != nil {
		e.stats.Malformed++
		return
	}
	observe := func(v store.Version) error { return e.clock.Observe(now, v) }
	replica.Apply(now, e.kvStore(), recs, observe, func(r store.Record) { e.changed(now, r) })
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
