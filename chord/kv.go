package chord

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/kademlia"
	"github.com/dhtkit/dhtkit/krpc"
	"github.com/dhtkit/dhtkit/replica"
	"github.com/dhtkit/dhtkit/store"
)

// maxPayload bounds the records of one dk_fetch answer so that the
// datagram stays within kademlia.MaxDatagram.
const maxPayload = replica.MaxPayload

// kvStore returns the node's store, making an in-memory one on first use.
func (e *Engine) kvStore() store.Store {
	if e.cfg.Store == nil {
		e.cfg.Store = store.NewMemory(store.Config{})
	}
	return e.cfg.Store
}

// quorum is the replication layer's quorum rule with this node's settings.
func (e *Engine) quorum() replica.Quorum {
	return replica.Quorum{Replicas: e.cfg.Replicas, Write: e.cfg.WriteQuorum, Read: e.cfg.ReadQuorum, Alone: e.cfg.Alone}
}

// startKV validates a KVPut or KVGet and looks up the key's successor.
func (e *Engine) startKV(now time.Time, s *opState, key string) {
	if key == "" {
		e.finish(now, s, kademlia.ErrNoKey)
		return
	}
	if len(store.BaseKey(key)) > store.DefaultMaxKeySize {
		e.finish(now, s, fmt.Errorf("%w: the key is %d bytes, at most %d", store.ErrTooLarge, len(key), store.DefaultMaxKeySize))
		return
	}
	if put, ok := s.op.(kademlia.KVPut); ok && len(put.Value) > kademlia.MaxRecordValue {
		e.finish(now, s, fmt.Errorf("%w: %d bytes, at most %d", kademlia.ErrTooLarge, len(put.Value), kademlia.MaxRecordValue))
		return
	}
	e.startLookup(now, s, store.KeyTarget(key), nil)
}

// kvOp is a KVPut or KVGet past its lookup: the replication layer's
// quorum count (replica.Op) and what Chord sends.
type kvOp struct {
	s    *opState
	rec  store.Record // KVPut: the record written
	q    replica.Op
	vals *replica.Values // KVGet with All: every value's answers
	// tids holds the transaction of the query each member was asked:
	// only its answer counts (an earlier attempt's, reissue.go, does not).
	tids []uint16
}

// kvReplicas takes the key's replica set (replicaSet) and writes to or
// reads from each member that is not down.
func (e *Engine) kvReplicas(now time.Time, s *opState, a answer) {
	op := &kvOp{s: s}
	switch o := s.op.(type) {
	case kademlia.KVPut:
		op.q.Key, op.q.Put = o.Key, true
		ttl := o.TTL
		if ttl <= 0 {
			ttl = e.cfg.DefaultTTL
		}
		op.rec = store.Record{Key: o.Key, Version: o.Version, Deleted: o.Delete, Source: o.Source}
		if op.rec.Version.IsZero() {
			op.rec.Version = e.clock.Now(now)
			s.reissues.Clocked = true
		} else if err := e.clock.Observe(now, o.Version); err != nil {
			e.finish(now, s, err)
			return
		}
		if !o.Delete {
			op.rec.Value = o.Value
			op.rec.Expires = now.Add(ttl)
			if !o.Expires.IsZero() {
				op.rec.Expires = o.Expires
			}
		}
	case kademlia.KVGet:
		op.q.Key, op.q.AllowPartial = o.Key, o.Partial
		// A plain read asks its read quorum, itself first (Kademlia's
		// too); a partial one (and Where) and a read of every value hear
		// every member.
		op.q.Lean = !o.Partial && !o.All
	}
	var down []bool
	op.q.Members, down = e.replicaSet(now, store.KeyTarget(op.q.Key), a)
	op.tids = make([]uint16, len(op.q.Members))
	s.kv = op
	if g, ok := s.op.(kademlia.KVGet); ok && g.All {
		op.vals = replica.NewValues(len(op.q.Members))
	}
	// Too few of the replica set reachable to reach the quorum: a put is
	// refused before anything is written, rather than leave a write the
	// majority never sees; a get will be short of its read quorum.
	if err := op.q.Begin(e.quorum(), down); err != nil {
		e.finish(now, s, err)
		return
	}
	if op.q.Lean {
		op.askMore(now, e)
		op.check(now, e)
		return
	}
	for i := range op.q.Members {
		if down[i] {
			continue // failed by Begin
		}
		op.ask(now, e, i)
	}
	op.check(now, e)
}

// askMore reads from the members a lean get has yet to ask
// (replica.Op.Ask).
func (op *kvOp) askMore(now time.Time, e *Engine) {
	var buf [4]int
	for ids := op.q.Ask(buf[:0]); len(ids) > 0; ids = op.q.Ask(buf[:0]) {
		for _, i := range ids {
			op.ask(now, e, i)
		}
	}
}

// ask sends member i the operation's dk_store or dk_fetch, or applies it
// to this node's own store.
func (op *kvOp) ask(now time.Time, e *Engine, i int) {
	r := &op.q.Members[i]
	if r.Self {
		e.kvLocal(now, op, i)
		return
	}
	m := mFetch
	if op.q.Put {
		m = mStore
		q := e.newQuery(mStore)
		q.A.Has |= krpc.HasX
		if op.s.reissues.Clocked {
			// Marked as ours, so that a replica holding a newer version
			// says which (replica.Held).
			e.xbuf = replica.AppendOwnWrite(e.xbuf[:0], op.rec)
		} else {
			e.xbuf = replica.AppendRecords(e.xbuf[:0], []store.Record{op.rec})
		}
		q.A.X = e.xbuf
	} else {
		q := e.newQuery(mFetch)
		q.A.Has |= krpc.HasX
		if op.vals != nil {
			e.xbuf = replica.AppendValuesQuery(e.xbuf[:0], op.q.Key)
		} else {
			e.xbuf = replica.AppendFetch(e.xbuf[:0], op.q.Key)
		}
		q.A.X = e.xbuf
	}
	tid, ok := e.sendQueryTID(now, m, r.Node.Addr, r.Node.ID, op.s.id, forOp)
	if !ok {
		op.q.Fail(i, errBadAddr)
	}
	op.tids[i] = tid
}

// replicaSet picks the replica set of target: the first Replicas nodes
// at or after it on the ring among every node this one knows to exist:
// the lookup's answer (the key's successor and the nodes after it), its
// own successors, fingers and predecessor, and itself, reachable as far
// as it knows, and the lost neighbours still in the
// probe set that went silent less than Config.DownFor ago, down. A down
// member is in the set but not asked: it counts against the quorum, so
// that a node cut off with part of the ring counts the quorum among the
// real replicas, never among the ones it happens to reach (the quorum
// rule, docs/architecture.md). A node that said goodbye is not lost, and
// one lost longer than DownFor gives way to the next. Taking the lookup's
// answer alone misplaced writes while a ring re-formed: a node whose
// predecessor pointer skipped live nodes answered for keys they own, the
// write went to nodes after them, and repair, which runs from a key's
// primary, never moved it back. The answerer's members left out of its
// answer (answer.gone) are down too, unless this node knows them
// otherwise: a node far from the key may never have heard of them, and
// without them it counted the quorum among the nodes on its own side of
// a split. After a partial answer, the nodes this node knows past the
// answer's last stand in for nodes the answer could not name: they count
// down, so that a member this node never heard of cannot be replaced by
// one on its own side.
func (e *Engine) replicaSet(now time.Time, target id.ID, a answer) ([]replica.Member, []bool) {
	nodes := a.nodes
	type cand struct {
		m    replica.Member
		down bool
	}
	cs := []cand{{m: replica.Member{Node: krpc.NodeInfo{ID: e.self}, Self: true}}}
	seen := map[id.ID]bool{e.self: true}
	r := &e.ring
	var pred []krpc.NodeInfo
	if r.hasPred {
		pred = []krpc.NodeInfo{r.pred}
	}
	for _, list := range [][]krpc.NodeInfo{nodes, r.succs, r.fingers, pred, r.remembered(now, e.cfg.DownFor)} {
		for _, n := range list {
			if !seen[n.ID] && !n.ID.IsZero() {
				seen[n.ID] = true
				cs = append(cs, cand{m: replica.Member{Node: n}})
			}
		}
	}
	for _, l := range e.ring.lost {
		if !seen[l.info.ID] && now.Sub(l.since) < e.cfg.DownFor {
			seen[l.info.ID] = true
			cs = append(cs, cand{m: replica.Member{Node: l.info}, down: true})
		}
	}
	for _, n := range a.gone {
		if !seen[n.ID] && !n.ID.IsZero() {
			seen[n.ID] = true
			cs = append(cs, cand{m: replica.Member{Node: n}, down: true})
		}
	}
	if a.blind {
		// The answer vouched for no member: none counts (blind.go).
		for i := range cs {
			cs[i].down = true
		}
	} else if a.short && len(nodes) > 0 {
		last := id.RingDistance(target, nodes[len(nodes)-1].ID)
		for i := range cs {
			if !cs[i].m.Self && id.Compare(id.RingDistance(target, cs[i].m.Node.ID), last) > 0 && !slices.ContainsFunc(a.gone, func(n krpc.NodeInfo) bool { return n.ID == cs[i].m.Node.ID }) {
				cs[i].down = true
			}
		}
	}
	slices.SortStableFunc(cs, func(a, b cand) int {
		return id.Compare(id.RingDistance(target, a.m.Node.ID), id.RingDistance(target, b.m.Node.ID))
	})
	cs = cs[:min(e.cfg.Replicas, len(cs))]
	ms, down := make([]replica.Member, len(cs)), make([]bool, len(cs))
	for i, c := range cs {
		ms[i], down[i] = c.m, c.down
	}
	return ms, down
}

// lostWithin reports whether the node lost a neighbour less than DownFor
// ago: its successor list may then be its own side's of a split.
func (e *Engine) lostWithin(now time.Time) bool {
	for _, l := range e.ring.lost {
		if now.Sub(l.since) < e.cfg.DownFor {
			return true
		}
	}
	return false
}

// goneAmong returns, for nodes, an answer for t, the members of t's
// replica set by the quorum rule that the answer leaves out: the lost
// neighbours (within DownFor) that rank among the first k nodes at or
// after t, and the remembered nodes (members.go) that rank before the
// answer's last node. What the answer says in "l" (wire.go). A node that
// lost its predecessor answers for the keys before it, and only its
// remembered second predecessor names a member of theirs it lists
// nowhere else.
func (e *Engine) goneAmong(now time.Time, t id.ID, nodes []krpc.NodeInfo, k int) []krpc.NodeInfo {
	if !e.lostWithin(now) {
		return nil
	}
	type cand struct {
		n     krpc.NodeInfo
		extra bool
	}
	cs := make([]cand, 0, len(nodes)+len(e.ring.lost))
	for _, n := range nodes {
		cs = append(cs, cand{n: n})
	}
	in := func(x id.ID) bool {
		return x == e.self || slices.ContainsFunc(cs, func(c cand) bool { return c.n.ID == x })
	}
	for _, l := range e.ring.lost {
		if now.Sub(l.since) < e.cfg.DownFor && !in(l.info.ID) {
			cs = append(cs, cand{n: l.info, extra: true})
		}
	}
	if len(nodes) > 0 {
		last := id.RingDistance(t, nodes[len(nodes)-1].ID)
		for _, m := range e.ring.remembered(now, e.cfg.DownFor) {
			if !in(m.ID) && id.Compare(id.RingDistance(t, m.ID), last) < 0 {
				cs = append(cs, cand{n: m, extra: true})
			}
		}
	}
	slices.SortStableFunc(cs, func(a, b cand) int {
		return id.Compare(id.RingDistance(t, a.n.ID), id.RingDistance(t, b.n.ID))
	})
	var out []krpc.NodeInfo
	for _, c := range cs[:min(k, len(cs))] {
		if c.extra {
			out = append(out, c.n)
		}
	}
	return out
}

// catchUp keeps a node that restarted with records from answering reads
// from its own disk before repair has brought them up to date: what it
// holds is what it held when it went down, and every write acknowledged
// meanwhile went to the other replicas. Until its own first round and its
// predecessors' rounds have run, about one SyncInterval after it rejoins
// (1.5 of it, for their jitter), it answers a key's dk_fetch with an
// error and fails its own member of a get, so that a read counts only
// the replicas that stayed up, and refuses rather than read stale when
// too few of them answer. It still takes writes, and its repair pulls.
type catchUp struct {
	on    bool
	since time.Time // when it was first heard from after its rejoin
}

var errCatchingUp = errors.New("chord: restarted, catching up: no reads from this replica until its repair rounds ran")

// joinedNow is told that the node heard from the ring: the first time
// after a restart starts the catch-up's clock and a repair round at once.
func (e *Engine) joinedNow(now time.Time) {
	if c := &e.catch; c.on && c.since.IsZero() && e.Joined() {
		c.since = now
		e.nextSync = now
	}
}

// caughtUp reports whether the node may answer reads (catchUp).
func (e *Engine) caughtUp(now time.Time) bool {
	c := &e.catch
	if !c.on {
		return true
	}
	if c.since.IsZero() || now.Sub(c.since) < e.cfg.SyncInterval*3/2 {
		return false
	}
	c.on = false
	return true
}

// kvLocal applies the operation to our own store, as member i.
func (e *Engine) kvLocal(now time.Time, op *kvOp, i int) {
	if op.q.Put {
		// Counted once committed, at the next Ready.
		e.commits.Queue(now, []store.Record{op.rec}, op.q.Committed(i, e.kvStore(), func(now time.Time) { op.check(now, e) }))
		return
	}
	if !e.caughtUp(now) {
		op.q.Fail(i, errCatchingUp)
		return
	}
	op.q.AnswerLocal(i, e.kvStore(), op.vals, now)
}

// find returns the member a query went to, or -1.
func (op *kvOp) find(p *pending) int {
	for i, r := range op.q.Members {
		if !r.Self && !r.Done && r.Node.ID == p.nodeID && op.tids[i] == p.tid && op.q.Asked(i) {
			return i
		}
	}
	return -1
}

func (op *kvOp) response(now time.Time, e *Engine, p *pending, sender id.ID, m *krpc.Msg) {
	i := op.find(p)
	if i < 0 {
		return
	}
	if op.q.Put {
		op.q.Stored(i, m.R.X)
	} else if err := op.q.Fetched(i, m.R.X, op.vals, now, func(v store.Version) error { return e.clock.Observe(now, v) }); err != nil {
		e.stats.Malformed++
	}
	op.check(now, e)
}

func (op *kvOp) failure(now time.Time, e *Engine, p *pending, err error) {
	i := op.find(p)
	if i < 0 {
		return
	}
	op.q.Fail(i, err)
	op.check(now, e)
}

// check reports the result once the layer decides it, and repairs the
// replicas a get found behind.
func (op *kvOp) check(now time.Time, e *Engine) {
	if op.q.Lean {
		op.askMore(now, e)
	}
	out, ok := op.q.Decide(op.rec.Version)
	if !ok || out.Kind == replica.Written && e.reissue(now, op) {
		return
	}
	var m replica.Merged
	if op.vals != nil {
		m = op.vals.Merge()
		op.s.result.Records, op.s.result.Fetch = m.Records, m.Fetch
	}
	e.finish(now, op.s, kademlia.Outcome(&op.s.result, out, e.quorum(), op.q.Need))
	switch {
	case op.vals != nil:
		for i, recs := range m.Repairs {
			if r := op.q.Members[i]; r.Self {
				for _, rec := range recs {
					if applied, _ := e.kvStore().Put(rec); applied {
						e.changed(now, rec)
					}
				}
			} else {
				e.pushRecords(now, r.Node, recs)
			}
		}
	case !op.q.Put:
		op.repair(now, e)
	}
}

// repair writes the newest version to the replicas that answered with an
// older one or none (read repair).
func (op *kvOp) repair(now time.Time, e *Engine) {
	best := op.q.Best()
	for _, i := range op.q.Stale() {
		r := op.q.Members[i]
		if r.Self {
			if applied, _ := e.kvStore().Put(*best); applied {
				e.changed(now, *best)
			}
			continue
		}
		e.pushRecords(now, r.Node, []store.Record{*best})
	}
}

// pushRecords stores recs on `to` (read repair, the join share).
func (e *Engine) pushRecords(now time.Time, to krpc.NodeInfo, recs []store.Record) {
	e.push(now, replica.NewPush(to, recs))
}

// push is an internal operation that carries p (replica.Push: dk_store
// batches, a window of them in flight) to its node.
func (e *Engine) push(now time.Time, p *replica.Push) {
	s := e.newOp(now, nil, true)
	s.push = p
	p.Fill(now, e.kvStore(), e.pushSend(now, s))
	e.pushed(now, s)
}

// pushSend sends one dk_store batch of s's push.
func (e *Engine) pushSend(now time.Time, s *opState) replica.Send {
	return func(x []byte) (uint64, bool) {
		q := e.newQuery(mStore)
		q.A.Has |= krpc.HasX
		q.A.X = x
		tid, ok := e.sendQueryTID(now, mStore, s.push.To.Addr, s.push.To.ID, s.id, forOp)
		return uint64(tid), ok
	}
}

// pushAnswered takes the answer to, or failure of (m nil), a batch of
// s's push.
func (e *Engine) pushAnswered(now time.Time, s *opState, p *pending, m *krpc.Msg, err error) {
	if m != nil {
		s.push.Answer(now, uint64(p.tid), m.R.X, e.kvStore(), e.pushSend(now, s))
	} else {
		s.push.Fail(now, uint64(p.tid), err == kademlia.ErrTimeout, e.kvStore(), e.pushSend(now, s))
	}
	e.pushed(now, s)
}

func (e *Engine) pushed(now time.Time, s *opState) {
	if s.push.Done() {
		e.finish(now, s, nil)
	}
}

// startHandover pushes every record the node holds to its successors,
// which take over its range (replica.Handover), and says goodbye to its
// neighbours.
func (e *Engine) startHandover(now time.Time, s *opState) {
	h := replica.NewHandover()
	if e.cfg.Store != nil {
		to := e.handoverTo(now)
		// Keys and versions only: values are read as their batches go out.
		_ = e.cfg.Store.Bucket(0, 0, func(en store.Entry) bool {
			h.Add(en, to)
			return true
		})
	}
	pushes := h.Pushes()
	h.Done = func(now time.Time) {
		s.result.Acks, _ = h.Held()
		e.finish(now, s, h.Err())
	}
	for _, p := range pushes {
		e.push(now, p)
	}
	// Goodbye to both neighbours, so that the ring closes over our place
	// now instead of at their next failed stabilize, and to every other
	// node we know: the predecessors whose successor lists hold us
	// would otherwise find us skipped in their successor's list and
	// take us for lost (loseSkipped), and the nodes that remember us
	// would count us in replica sets, down, for DownFor.
	r := &e.ring
	r.left = true
	x := encodeNeighbors(nil, e.neighbors(now, true), e.self)
	for _, n := range e.goodbyeTo(now) {
		q := e.newQuery(mLeave)
		q.A.Has |= krpc.HasX
		q.A.X = x
		e.sendQuery(now, mLeave, n.Addr, n.ID, 0, forFire)
	}
	if len(pushes) == 0 {
		e.finish(now, s, nil)
	}
}

// goodbyeTo returns the nodes a leaving node says goodbye to, each
// once: its successors and predecessor first, then the fingers and the
// nodes it remembers (at most maxMembers of those).
func (e *Engine) goodbyeTo(now time.Time) []krpc.NodeInfo {
	r := &e.ring
	var out []krpc.NodeInfo
	seen := map[id.ID]bool{e.self: true}
	add := func(ns ...krpc.NodeInfo) {
		for _, n := range ns {
			if !seen[n.ID] && !n.ID.IsZero() && n.Addr.IsValid() {
				seen[n.ID] = true
				out = append(out, n)
			}
		}
	}
	add(r.succs...)
	if r.hasPred {
		add(r.pred)
	}
	add(r.pred2)
	add(r.fingers...)
	add(r.remembered(now, e.cfg.DownFor)...)
	return out
}

// handoverTo returns the nodes a leaving node hands its records to: its
// first Replicas successors, which take over its range, and the lost
// neighbours (within Config.DownFor) that lie among the first Replicas
// nodes after it by the quorum rule's count (replicaSet): a neighbour
// that missed a few queries is likely alive and a replica.
func (e *Engine) handoverTo(now time.Time) []krpc.NodeInfo {
	r := &e.ring
	out := slices.Clone(r.succs[:min(e.cfg.Replicas, len(r.succs))])
	ms, _ := e.replicaSet(now, id.AddPow2(e.self, 0), answer{nodes: r.succs})
	for _, m := range ms {
		if !m.Self && !slices.ContainsFunc(out, func(n krpc.NodeInfo) bool { return n.ID == m.Node.ID }) {
			out = append(out, m.Node)
		}
	}
	return out
}
