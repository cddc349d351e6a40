package kademlia

import (
	"bytes"
	"fmt"
	"slices"
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

// push is an internal operation that writes records to one node in
// dk_store batches, at most pushWindow batches in flight, and reports each
// record's fate. Records may be given without their values (lazy): they
// are read from the store as their batch is sent, so that handing over a
// large store does not hold it all in memory.
type push struct {
	s        *opState
	to       krpc.NodeInfo
	token    []byte
	tokenTID uint16
	tokenRe  uint16                // the token query asked again, when tokenTry
	tokenTry bool                  // the token query was asked twice
	asking   bool                  // waiting for a write token
	todo     []pushItem            // not sent yet
	batches  map[uint16]*pushBatch // by transaction: a retried batch is there twice
	inflight int                   // batches sent and not settled
	onAck    func(now time.Time, r store.Record, ok bool)
	onDone   func(now time.Time)
}

type pushItem struct {
	rec  store.Record
	lazy bool // read rec's value from the store when it is sent
}

// pushBatch is one dk_store in flight. It keeps what it needs to be sent
// again: the records given with their values, the others by key and
// version.
type pushBatch struct {
	items   []pushItem
	tids    [2]uint16 // the query, and its retry when retried
	retried bool
}

// records is what the acknowledgement reports on: keys and versions.
func (b *pushBatch) records() []store.Record {
	out := make([]store.Record, len(b.items))
	for i, it := range b.items {
		out[i] = it.rec
		out[i].Value = nil
	}
	return out
}

// pushWindow is how many dk_store batches one push keeps in flight.
const pushWindow = 8

// pushRecords stores recs on node `to`; onAck (may be nil) learns which
// records it holds afterwards. Without a token it first asks `to` for one
// with a BEP 44 get: a write must prove its source address, whether or
// not the receiver knows us.
func (e *Engine) pushRecords(now time.Time, to krpc.NodeInfo, token []byte, recs []store.Record, onAck func(time.Time, store.Record, bool), onDone func(time.Time)) {
	items := make([]pushItem, len(recs))
	for i, r := range recs {
		items[i] = pushItem{rec: r}
	}
	e.push(now, to, token, items, onAck, onDone)
}

// pushKeys is pushRecords for records named by key and version, read
// from the store as they are sent.
func (e *Engine) pushKeys(now time.Time, to krpc.NodeInfo, entries []store.Entry, onAck func(time.Time, store.Record, bool), onDone func(time.Time)) {
	items := make([]pushItem, len(entries))
	for i, en := range entries {
		items[i] = pushItem{rec: store.Record{Key: en.Key, Version: en.Version, Deleted: en.Deleted}, lazy: true}
	}
	e.push(now, to, nil, items, onAck, onDone)
}

func (e *Engine) push(now time.Time, to krpc.NodeInfo, token []byte, items []pushItem, onAck func(time.Time, store.Record, bool), onDone func(time.Time)) {
	e.lastOp++
	s := &opState{id: e.lastOp, op: Handover{}, internal: true, started: now}
	p := &push{s: s, to: to, token: token, todo: items, batches: make(map[uint16]*pushBatch), onAck: onAck, onDone: onDone}
	s.kv = p
	e.ops[s.id] = s
	if token == nil {
		m := e.newQuery(krpc.MethodGet)
		m.A.Has |= krpc.HasTarget
		m.A.Target = to.ID
		tid, ok := e.sendQueryTID(now, to.Addr, to.ID, s.id, forOp)
		if !ok {
			p.abandon(now)
			p.maybeDone(now, e)
			return
		}
		p.asking, p.tokenTID = true, tid
		return
	}
	p.fill(now, e)
}

// fill sends batches while the window has room.
func (p *push) fill(now time.Time, e *Engine) {
	for p.inflight < pushWindow && len(p.todo) > 0 {
		b := &pushBatch{}
		var batch []store.Record
		size := 0
		for len(p.todo) > 0 {
			it := p.todo[0]
			r, ok := p.current(now, e, it)
			if !ok {
				p.todo = p.todo[1:]
				continue
			}
			n := len(r.Value) + len(r.Key) + 64
			if len(batch) > 0 && size+n >= maxPayload {
				break
			}
			batch = append(batch, r)
			b.items = append(b.items, it)
			size += n
			p.todo = p.todo[1:]
		}
		if len(batch) == 0 {
			break
		}
		tid, ok := p.send(now, e, batch)
		if !ok {
			p.report(now, b.records(), nil)
			continue
		}
		b.tids[0] = tid
		p.batches[tid] = b
		p.inflight++
	}
	p.maybeDone(now, e)
}

// current returns the record an item stands for, its value read from the
// store when the item is lazy. A lazy record gone or rewritten since is
// reported and skipped: a newer version travels by its own way (sync, or
// the write itself).
func (p *push) current(now time.Time, e *Engine, it pushItem) (store.Record, bool) {
	if !it.lazy {
		return it.rec, true
	}
	cur, ok, err := e.kvStore().Get(it.rec.Key)
	if err != nil || !ok || cur.Version != it.rec.Version {
		p.reportOne(now, it.rec, err == nil && ok && cur.Version.Newer(it.rec.Version))
		return store.Record{}, false
	}
	return cur, true
}

// send sends one dk_store batch.
func (p *push) send(now time.Time, e *Engine, batch []store.Record) (uint16, bool) {
	m := e.newQuery(krpc.MethodStore)
	m.A.Has |= krpc.HasX
	if p.token != nil {
		m.A.Has |= krpc.HasToken
		m.A.Token = p.token
	}
	e.xbuf = encodeRecords(e.xbuf[:0], "recs", batch)
	m.A.X = e.xbuf
	return e.sendQueryTID(now, p.to.Addr, p.to.ID, p.s.id, forOp)
}

// stalled sends a batch, or the token query, once more when it passes its
// soft timeout: one lost datagram should not hold a hand-over up for the
// hard timeout. The first answer to either query counts.
func (p *push) stalled(now time.Time, e *Engine, q *pending) {
	if p.asking && q.tid == p.tokenTID && !p.tokenTry {
		m := e.newQuery(krpc.MethodGet)
		m.A.Has |= krpc.HasTarget
		m.A.Target = p.to.ID
		if tid, ok := e.sendQueryTID(now, p.to.Addr, p.to.ID, p.s.id, forOp); ok {
			p.tokenRe, p.tokenTry = tid, true
		}
		return
	}
	b := p.batches[q.tid]
	if b == nil || b.retried {
		return
	}
	var batch []store.Record
	for _, it := range b.items {
		if !it.lazy {
			batch = append(batch, it.rec)
		} else if cur, ok, err := e.kvStore().Get(it.rec.Key); err == nil && ok && cur.Version == it.rec.Version {
			batch = append(batch, cur)
		}
	}
	if len(batch) != len(b.items) {
		// A record changed since: the answer's flags would not line up
		// with the batch. The first query's fate decides.
		return
	}
	if tid, ok := p.send(now, e, batch); ok {
		b.tids[1], b.retried = tid, true
		p.batches[tid] = b
	}
}

// settle removes a batch that was answered or failed for good.
func (p *push) settle(b *pushBatch) {
	delete(p.batches, b.tids[0])
	if b.retried {
		delete(p.batches, b.tids[1])
	}
	p.inflight--
}

// isToken reports whether q is the token query or its retry.
func (p *push) isToken(q *pending) bool {
	return p.asking && (q.tid == p.tokenTID || p.tokenTry && q.tid == p.tokenRe)
}

func (p *push) reportOne(now time.Time, r store.Record, ok bool) {
	if p.onAck != nil {
		p.onAck(now, r, ok)
	}
}

func (p *push) report(now time.Time, batch []store.Record, ok []bool) {
	for i, r := range batch {
		p.reportOne(now, r, i < len(ok) && ok[i])
	}
}

// abandon reports every record not sent yet as not stored.
func (p *push) abandon(now time.Time) {
	for _, it := range p.todo {
		p.reportOne(now, it.rec, false)
	}
	p.todo = nil
}

func (p *push) response(now time.Time, e *Engine, q *pending, m *krpc.Msg) {
	if p.isToken(q) {
		p.asking = false
		if len(m.R.Token) == 0 {
			p.abandon(now)
			p.maybeDone(now, e)
			return
		}
		p.token = bytes.Clone(m.R.Token)
		p.fill(now, e)
		return
	}
	b := p.batches[q.tid]
	if b == nil {
		return
	}
	p.settle(b)
	p.report(now, b.records(), replica.ParseAcks(m.R.X))
	p.fill(now, e)
}

func (p *push) failure(now time.Time, e *Engine, q *pending, err error) {
	if p.isToken(q) {
		if p.tokenTry && q.tid == p.tokenTID && err == ErrTimeout {
			return // its retry may still be answered
		}
		p.asking = false
		p.abandon(now)
		p.maybeDone(now, e)
		return
	}
	b := p.batches[q.tid]
	if b == nil {
		return
	}
	if b.retried && q.tid == b.tids[0] && err == ErrTimeout {
		delete(p.batches, q.tid) // its retry may still be answered
		return
	}
	p.settle(b)
	p.report(now, b.records(), nil)
	p.fill(now, e)
}

func (p *push) maybeDone(now time.Time, e *Engine) {
	if p.inflight == 0 && len(p.todo) == 0 && !p.asking {
		if _, live := e.ops[p.s.id]; !live {
			return
		}
		e.finish(now, p.s, nil)
		if p.onDone != nil {
			p.onDone(now)
		}
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
func (e *Engine) syncTree() *replica.Tree {
	if e.tree == nil {
		e.tree = replica.NewTree(e.kvStore())
	}
	return e.tree
}

// sync runs one anti-entropy walk.
func (e *Engine) sync(now time.Time) {
	st := e.cfg.Store
	if st == nil || e.table.Len() == 0 {
		return
	}
	if _, err := st.Expire(now); err != nil {
		return
	}
	tree := e.syncTree()
	if err := tree.Refresh(now); err != nil {
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
	if len(plan.Foreign) == 0 {
		return
	}
	// Records we should not hold: hand them to their replicas, then drop
	// each one once every replica has confirmed it holds it. (A write
	// quorum would do for a put, but dropping our copy then would leave
	// the key on fewer than Replicas nodes until a later round repairs
	// it; a replica that does not confirm leaves our copy for next time.)
	foreign := make(map[id.ID][]store.Entry) // replica -> records we should not hold
	handTo := make(map[string]int)           // key -> replicas it is handed to
	infos := make(map[id.ID]krpc.NodeInfo)
	for _, f := range plan.Foreign {
		handTo[f.Entry.Key] = len(f.To)
		for _, o := range f.To {
			foreign[o.ID] = append(foreign[o.ID], f.Entry)
			infos[o.ID] = o
		}
	}
	acks := make(map[string]int)
	onAck := func(now time.Time, r store.Record, ok bool) {
		if !ok {
			return
		}
		acks[r.Key]++
		if acks[r.Key] == handTo[r.Key] {
			_ = st.Remove(r.Key, r.Version)
			e.syncTree().Invalidate()
		}
	}
	ids := make([]id.ID, 0, len(foreign))
	for x := range foreign {
		ids = append(ids, x)
	}
	slices.SortFunc(ids, func(a, b id.ID) int { return id.Compare(a, b) })
	for _, x := range ids {
		e.pushKeys(now, infos[x], foreign[x], onAck, nil)
	}
}

// syncRound is an internal operation: one round of the tree exchange with
// a neighbour, and the pushes and pulls it leads to.
type syncRound struct {
	s *opState
	r *replica.Round
}

func (e *Engine) startRound(now time.Time, pp replica.PeerPlan) {
	e.lastOp++
	s := &opState{id: e.lastOp, op: Handover{}, internal: true, started: now}
	sr := &syncRound{s: s, r: replica.NewRound(pp.Peer, e.syncTree(), placement{e}, pp.Shared)}
	s.kv = sr
	e.ops[s.id] = s
	sr.next(now, e)
}

// next sends what the round asks for, starts the repairs its answers call
// for, and ends the round once it is done.
func (sr *syncRound) next(now time.Time, e *Engine) {
	peer := sr.r.Peer
	sr.r.Next(func(x []byte) (uint64, bool) {
		m := e.newQuery(krpc.MethodSync)
		m.A.Has |= krpc.HasX
		m.A.X = x
		tid, ok := e.sendQueryTID(now, peer.Addr, peer.ID, sr.s.id, forOp)
		return uint64(tid), ok
	})
	push, pulls := sr.r.Repairs()
	if len(push) > 0 {
		e.pushKeys(now, peer, push, nil, nil)
	}
	for _, ks := range pulls {
		e.pullRecords(now, peer, ks)
	}
	if sr.r.Done() {
		e.finish(now, sr.s, nil)
	}
}

func (sr *syncRound) failure(now time.Time, e *Engine, p *pending, _ error) {
	sr.r.Fail(uint64(p.tid))
	sr.next(now, e)
}

func (sr *syncRound) response(now time.Time, e *Engine, p *pending, m *krpc.Msg) {
	if err := sr.r.Answer(now, uint64(p.tid), m.R.X); err != nil {
		e.stats.Malformed++
	}
	sr.next(now, e)
}

// pull is an internal operation that fetches records from one node and
// stores the ones that are newer than ours.
type pull struct{ s *opState }

func (e *Engine) pullRecords(now time.Time, from krpc.NodeInfo, keys []string) {
	e.lastOp++
	s := &opState{id: e.lastOp, op: Handover{}, internal: true, started: now}
	s.kv = &pull{s: s}
	e.ops[s.id] = s
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
	recs, err := replica.ParseRecords(m.R.X)
	if err != nil {
		return
	}
	observe := func(v store.Version) error { return e.clock.Observe(now, v) }
	replica.Apply(now, e.kvStore(), recs, observe, func(r store.Record) { e.changed(now, r) })
}

func (p *pull) failure(now time.Time, e *Engine, _ *pending, err error) {
	e.finish(now, p.s, err)
}

// handover pushes every record to the other nodes that should hold it.
type handover struct {
	s       *opState
	pending int
	acks    map[string]int
}

func (e *Engine) startHandover(now time.Time, s *opState) {
	st := e.cfg.Store
	if st == nil {
		e.sayGoodbye(now)
		e.finish(now, s, nil)
		return
	}
	h := &handover{s: s, acks: make(map[string]int)}
	byNode := make(map[id.ID][]store.Entry)
	infos := make(map[id.ID]krpc.NodeInfo)
	total := 0
	// Keys and versions only: values are read as their batches go out.
	_ = st.Bucket(0, 0, func(en store.Entry) bool {
		total++
		e.contacts = e.handoverTo(store.KeyTarget(en.Key), e.contacts[:0])
		for _, c := range e.contacts {
			byNode[c.ID] = append(byNode[c.ID], en)
			infos[c.ID] = krpc.NodeInfo{ID: c.ID, Addr: c.Addr}
		}
		h.acks[en.Key] = 0
		return true
	})
	if total == 0 || len(byNode) == 0 {
		e.sayGoodbye(now)
		s.result.Acks = 0
		if total > 0 {
			e.finish(now, s, ErrNoContacts)
			return
		}
		e.finish(now, s, nil)
		return
	}
	ids := make([]id.ID, 0, len(byNode))
	for x := range byNode {
		ids = append(ids, x)
	}
	slices.SortFunc(ids, func(a, b id.ID) int { return id.Compare(a, b) })
	h.pending = len(ids)
	for _, x := range ids {
		e.pushKeys(now, infos[x], byNode[x], h.ack, func(now time.Time) { h.done(now, e) })
	}
}

func (h *handover) ack(_ time.Time, r store.Record, ok bool) {
	if ok {
		h.acks[r.Key]++
	}
}

// done is called as each node's push ends; the last one ends the handover.
func (h *handover) done(now time.Time, e *Engine) {
	h.pending--
	if h.pending > 0 {
		return
	}
	held := 0
	for _, n := range h.acks {
		if n > 0 {
			held++
		}
	}
	h.s.result.Acks = held
	e.sayGoodbye(now)
	if lost := len(h.acks) - held; lost > 0 {
		e.finish(now, h.s, fmt.Errorf("%w: %d of %d values reached no other node", ErrQuorum, lost, len(h.acks)))
		return
	}
	e.finish(now, h.s, nil)
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
