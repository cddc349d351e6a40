package kademlia

import (
	"bytes"
	"time"

	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/krpc"
	"github.com/dhtkit/dhtkit/replica"
	"github.com/dhtkit/dhtkit/store"
)

// Anti-entropy. Every SyncInterval a node walks its store's index and, by
// its routing table, works out who else should hold each record
// (replica.MakePlan). With each such neighbour it runs a round of the
// replication layer's tree exchange (package replica, dk_sync): hashes of
// the parts of the id space both hold, descending only where they differ,
// then the keys and versions of the differing leaves; the node pushes what
// the neighbour lacks and pulls what it lacks itself. Replicas that agree
// exchange a few hundred bytes whatever they store, and every message fits
// a datagram. The same walk hands records to nodes that joined nearer to
// them, and records this node should no longer hold are pushed to their
// replicas and dropped once every replica holds them.
//
// A replica that died is found out by these exchanges themselves: its
// queries time out, the routing table marks it bad, and the next walk
// counts the next-closest node as a replica and pushes to it. With the
// default 15 s interval a lost copy is restored within about a minute.

// maxHandoffPerSync bounds the records one sync round hands over because
// this node should no longer hold them; the rest go in later rounds.
const maxHandoffPerSync = 4096

// MaxDatagram is the largest datagram the engine sends: key-value
// records make messages of several KiB, which loopback and LANs carry
// (fragmented, on Ethernet). Drivers must accept datagrams this large.
const MaxDatagram = 16 << 10

// maxPayload bounds the "x" payload of one message, leaving room for the
// rest of the message within MaxDatagram.
const maxPayload = 12 << 10

// pushOp is an internal operation that carries a replica.Push (dk_store
// batches, a window of them in flight, each record's fate reported) to
// one node. Without a token it first asks the node for one with a BEP 44
// get: a write must prove its source address, whether or not the
// receiver knows us.
type pushOp struct {
	s        *opState
	p        *replica.Push
	token    []byte
	tokenTID uint16
	tokenRe  uint16 // the token query asked again, when tokenTry
	tokenTry bool   // the token query was asked twice
	asking   bool   // waiting for a write token
}

// internalOp starts an operation of the engine's own (a push, a round, a
// pull) whose answers go to h.
func (e *Engine) internalOp(now time.Time, h kvHandler) *opState {
	e.lastOp++
	s := &opState{id: e.lastOp, op: Handover{}, internal: true, started: now, kv: h}
	e.ops[s.id] = s
	return s
}

// pushRecords stores recs on node `to` (read repair).
func (e *Engine) pushRecords(now time.Time, to krpc.NodeInfo, token []byte, recs []store.Record) {
	e.push(now, replica.NewPush(to, recs), token)
}

// push starts p, with token if we hold one for its node.
func (e *Engine) push(now time.Time, p *replica.Push, token []byte) {
	po := &pushOp{p: p, token: token}
	po.s = e.internalOp(now, po)
	if token == nil {
		if tid, ok := po.askToken(now, e); ok {
			po.asking, po.tokenTID = true, tid
		} else {
			p.Abandon(now)
		}
	} else {
		p.Fill(now, e.kvStore(), po.send(now, e))
	}
	po.maybeDone(now, e)
}

// askToken asks the node for a write token (BEP 44 get of its own id).
func (po *pushOp) askToken(now time.Time, e *Engine) (uint16, bool) {
	m := e.newQuery(krpc.MethodGet)
	m.A.Has |= krpc.HasTarget
	m.A.Target = po.p.To.ID
	return e.sendQueryTID(now, po.p.To.Addr, po.p.To.ID, po.s.id, forOp)
}

// send sends one dk_store batch, with the node's token.
func (po *pushOp) send(now time.Time, e *Engine) replica.Send {
	return func(x []byte) (uint64, bool) {
		m := e.newQuery(krpc.MethodStore)
		m.A.Has |= krpc.HasX
		if po.token != nil {
			m.A.Has |= krpc.HasToken
			m.A.Token = po.token
		}
		m.A.X = x
		tid, ok := e.sendQueryTID(now, po.p.To.Addr, po.p.To.ID, po.s.id, forOp)
		return uint64(tid), ok
	}
}

// stalled sends a batch, or the token query, once more when it passes its
// soft timeout (replica.Push.Retry).
func (po *pushOp) stalled(now time.Time, e *Engine, q *pending) {
	if po.asking && q.tid == po.tokenTID && !po.tokenTry {
		if tid, ok := po.askToken(now, e); ok {
			po.tokenRe, po.tokenTry = tid, true
		}
		return
	}
	po.p.Retry(e.kvStore(), uint64(q.tid), po.send(now, e))
}

// isToken reports whether q is the token query or its retry.
func (po *pushOp) isToken(q *pending) bool {
	return po.asking && (q.tid == po.tokenTID || po.tokenTry && q.tid == po.tokenRe)
}

func (po *pushOp) response(now time.Time, e *Engine, q *pending, m *krpc.Msg) {
	if po.isToken(q) {
		po.asking = false
		if len(m.R.Token) == 0 {
			po.p.Abandon(now)
		} else {
			po.token = bytes.Clone(m.R.Token)
			po.p.Fill(now, e.kvStore(), po.send(now, e))
		}
	} else {
		po.p.Answer(now, uint64(q.tid), m.R.X, e.kvStore(), po.send(now, e))
	}
	po.maybeDone(now, e)
}

func (po *pushOp) failure(now time.Time, e *Engine, q *pending, err error) {
	if po.isToken(q) {
		if po.tokenTry && q.tid == po.tokenTID && err == ErrTimeout {
			return // its retry may still be answered
		}
		po.asking = false
		po.p.Abandon(now)
	} else {
		po.p.Fail(now, uint64(q.tid), err == ErrTimeout, e.kvStore(), po.send(now, e))
	}
	po.maybeDone(now, e)
}

func (po *pushOp) maybeDone(now time.Time, e *Engine) {
	if _, live := e.ops[po.s.id]; live && !po.asking && po.p.Done() {
		e.finish(now, po.s, nil)
	}
}

// replicaSet returns the nodes that should hold target by our table, and
// whether we are one of them: the Replicas closest of our contacts and us.
func (e *Engine) replicaSet(target id.ID) (others []krpc.NodeInfo, self bool) {
	n := e.cfg.replicas()
	e.contacts = e.table.Closest(target, n, e.contacts[:0])
	for _, c := range e.contacts {
		if !self && id.CompareDistance(target, e.self, c.ID) < 0 {
			self = true
		}
		if len(others)+boolInt(self) == n {
			break
		}
		others = append(others, krpc.NodeInfo{ID: c.ID, Addr: c.Addr})
	}
	if !self && len(others) < n {
		self = true
	}
	return others, self
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// placement answers the replication layer's question by the routing
// table.
type placement struct{ e *Engine }

func (p placement) Replicas(t id.ID) ([]krpc.NodeInfo, bool) { return p.e.replicaSet(t) }

// syncTree returns the node's hash tree, made on first use.
func (e *Engine) syncTree() *replica.Tree { return replica.LazyTree(&e.tree, e.kvStore()) }

// sync runs one anti-entropy walk.
func (e *Engine) sync(now time.Time) {
	st := e.cfg.Store
	if st == nil || e.table.Len() == 0 {
		return
	}
	if e.syncTree().Prepare(now) != nil {
		return
	}
	// The walk reads the store's index (keys and versions), never values:
	// a node holding gigabytes must not read them all every round.
	plan, err := replica.MakePlan(st, placement{e}, maxHandoffPerSync)
	if err != nil {
		return
	}
	for _, pp := range plan.Peers {
		e.startRound(now, pp)
	}
	// Records we should not hold: hand them to their replicas, then drop
	// each one once every replica has confirmed it holds it.
	e.purge(now, plan.Foreign)
}

// purge hands the records this node should no longer hold to the nodes
// that should (replica.Handover), and drops each once all of them hold it.
func (e *Engine) purge(now time.Time, foreign []replica.Foreign) {
	h := replica.NewHandover()
	for _, f := range foreign {
		h.Add(f.Entry, f.To)
	}
	h.Drop = func(_ time.Time, r store.Record) {
		_ = e.kvStore().Remove(r.Key, r.Version)
		e.syncTree().Invalidate()
	}
	for _, p := range h.Pushes() {
		e.push(now, p, nil)
	}
}

// syncRound is an internal operation: one round of the tree exchange with
// a neighbour (replica.Round); the pushes and pulls it leads to run as
// operations of their own. It carries the round: replica.RoundLink.
type syncRound struct {
	e *Engine
	s *opState
	r *replica.Round
}

func (e *Engine) startRound(now time.Time, pp replica.PeerPlan) {
	sr := &syncRound{e: e, r: replica.NewRound(pp.Peer, e.syncTree(), placement{e}, pp.Shared)}
	sr.s = e.internalOp(now, sr)
	sr.r.Step(now, sr)
}

func (sr *syncRound) SendSync(now time.Time, x []byte) (uint64, bool) {
	m := sr.e.newQuery(krpc.MethodSync)
	m.A.Has |= krpc.HasX
	m.A.X = x
	tid, ok := sr.e.sendQueryTID(now, sr.r.Peer.Addr, sr.r.Peer.ID, sr.s.id, forOp)
	return uint64(tid), ok
}
func (sr *syncRound) Push(now time.Time, p *replica.Push) { sr.e.push(now, p, nil) }
func (sr *syncRound) Pull(now time.Time, keys []string)   { sr.e.pullRecords(now, sr.r.Peer, keys) }
func (sr *syncRound) Finish(now time.Time)                { sr.e.finish(now, sr.s, nil) }

func (sr *syncRound) failure(now time.Time, _ *Engine, p *pending, _ error) {
	sr.r.Failed(now, uint64(p.tid), sr)
}

func (sr *syncRound) response(now time.Time, e *Engine, p *pending, m *krpc.Msg) {
	if sr.r.Answered(now, uint64(p.tid), m.R.X, sr) != nil {
		e.stats.Malformed++
	}
}

// pull is an internal operation that fetches records from one node and
// stores the ones that are newer than ours.
type pull struct{ s *opState }

func (e *Engine) pullRecords(now time.Time, from krpc.NodeInfo, keys []string) {
	p := &pull{}
	s := e.internalOp(now, p)
	p.s = s
	m := e.newQuery(krpc.MethodFetch)
	m.A.Has |= krpc.HasX
	e.xbuf = replica.AppendFetch(e.xbuf[:0], keys...)
	m.A.X = e.xbuf
	if !e.sendQuery(now, from.Addr, from.ID, s.id, forOp) {
		e.finish(now, s, errBusy)
	}
}

func (p *pull) response(now time.Time, e *Engine, _ *pending, m *krpc.Msg) {
	defer e.finish(now, p.s, nil)
	_ = replica.Pulled(now, e.kvStore(), m.R.X, e.clock.Observe, e.changed)
}

func (p *pull) failure(now time.Time, e *Engine, _ *pending, err error) {
	e.finish(now, p.s, err)
}

// startHandover pushes every record to the other nodes that should hold
// it (replica.Handover), then says goodbye.
func (e *Engine) startHandover(now time.Time, s *opState) {
	st := e.cfg.Store
	if st == nil {
		e.sayGoodbye(now)
		e.finish(now, s, nil)
		return
	}
	h := replica.NewHandover()
	var to []krpc.NodeInfo
	// Keys and versions only: values are read as their batches go out.
	_ = st.Bucket(0, 0, func(en store.Entry) bool {
		e.contacts = e.handoverTo(store.KeyTarget(en.Key), e.contacts[:0])
		to = to[:0]
		for _, c := range e.contacts {
			to = append(to, krpc.NodeInfo{ID: c.ID, Addr: c.Addr})
		}
		h.Add(en, to)
		return true
	})
	pushes := h.Pushes()
	if _, total := h.Held(); len(pushes) == 0 {
		e.sayGoodbye(now)
		if total > 0 {
			e.finish(now, s, ErrNoContacts)
			return
		}
		e.finish(now, s, nil)
		return
	}
	h.Done = func(now time.Time) {
		s.result.Acks, _ = h.Held()
		e.sayGoodbye(now)
		e.finish(now, s, h.Err())
	}
	for _, p := range pushes {
		e.push(now, p, nil)
	}
}

// sayGoodbye tells every contact that this node is leaving (dk_bye), so
// that they drop it at once; a standard peer answers 204 and forgets it in
// its own time.
func (e *Engine) sayGoodbye(now time.Time) {
	for _, b := range e.table.Buckets() {
		for _, c := range b.Contacts {
			e.newQuery(krpc.MethodBye)
			e.sendQuery(now, c.Addr, c.ID, 0, forTablePing)
		}
	}
}
