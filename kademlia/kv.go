package kademlia

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/krpc"
	"github.com/dhtkit/dhtkit/replica"
	"github.com/dhtkit/dhtkit/routing"
	"github.com/dhtkit/dhtkit/store"
)

// The key-value store: every string key maps to the target SHA-1(key), and
// its record lives on the Replicas nodes closest to that target. Writes
// carry a hybrid-logical-clock version (store.Version); the newest version
// wins everywhere, and a delete is a tombstone version that beats older
// writes. A put succeeds once WriteQuorum replicas hold it; a get asks
// every replica, answers with the newest version among at least
// ReadQuorum of them, and writes that version back to replicas that
// answered with an older one (read repair). With the default majorities,
// WriteQuorum + ReadQuorum > Replicas, so a get sees the newest
// acknowledged put. Replicas compare digests periodically (see sync.go)
// to restore lost copies, hand keys to joining nodes and drop what they no
// longer should hold.

// KVPut writes Key on its replicas. With Delete it writes a tombstone.
// TTL 0 means Config.DefaultTTL. Source names the writer for per-source
// quotas (the HTTP client's IP, say). Version and Expires, when set,
// replace the node's clock and TTL: a value signed by its owner carries
// the version and expiry its owner signed (package owner).
type KVPut struct {
	Key     string
	Value   []byte
	TTL     time.Duration
	Delete  bool
	Source  string
	Version store.Version
	Expires time.Time
}

// KVGet reads Key from its replicas: Result.Record is the newest version,
// Result.Holders what each replica answered. It fails with ErrQuorum
// when fewer than ReadQuorum of the key's replica set (counted among all
// the nodes known, as a put's) answered, unless Partial allows the best
// answer of fewer, marked Result.Partial. With All it reads every value
// of Key (store.ValueKey) instead: Result.Records and Result.Fetch
// (replica.Values).
type KVGet struct {
	Key     string
	Partial bool
	All     bool
}

// Handover pushes every stored record to the other nodes that should hold
// it: what a node does before leaving so that nothing is lost.
type Handover struct{}

// With returns p writing version v, and expiring at expires unless it
// is a delete: a put started over (a one-hop put's fallback lookup, a
// reissue: replica/reissue.go) writes what it began with, or the same
// write under a newer version.
func (p KVPut) With(v store.Version, expires time.Time) KVPut {
	p.Version = v
	if !p.Delete {
		p.Expires = expires
	}
	return p
}

func (KVPut) isOp()    {}
func (KVGet) isOp()    {}
func (Handover) isOp() {}

// Holder is one replica's answer to a KVGet.
type Holder = replica.Holder

// Errors of the key-value operations.
var (
	ErrQuorum   = replica.ErrQuorum
	ErrNoKey    = errors.New("kademlia: empty key")
	ErrTooLarge = errors.New("kademlia: value too large for one record")
)

// MaxRecordValue is the largest value one record carries: it must fit a
// datagram with room to spare. Larger values are split into chunks by the
// caller (package dhtkit stores files that way).
const MaxRecordValue = 8 << 10

func (c *Config) replicas() int { return min(c.Replicas, c.K) }

// quorum is the replication layer's quorum rule with this node's settings.
func (c *Config) quorum() replica.Quorum {
	return replica.Quorum{Replicas: c.replicas(), Write: c.WriteQuorum, Read: c.ReadQuorum, Alone: c.Alone}
}

// queueWrite queues a write for the next commit (replica.Commits), which
// Ready makes before it hands out the acknowledgements.
func (e *Engine) queueWrite(now time.Time, recs []store.Record, done replica.Done) {
	e.commits.Queue(now, recs, done)
}

// AsyncCommits tells the engine that its driver runs the batches Ready
// hands out (Ready.Commit) off the engine's lock and gives each back
// through Committed, so that the engine serves while a batch is synced.
// It takes effect only for a store that syncs to disk (store.Durable): an
// in-memory commit costs less than the hand-off.
func (e *Engine) AsyncCommits() {
	e.commits.Async = store.Durable(e.kvStore())
}

// Committed takes back a batch of Ready.Commit once it has Run: the
// writes in it are on disk, and their acknowledgements go out now.
func (e *Engine) Committed(now time.Time, b *replica.Batch) {
	if e.closed {
		return
	}
	e.begin()
	e.commits.Finish(now, b, e.changed)
}

// kvStore returns the node's store, making an in-memory one on first use
// so that engines that never store anything (a simulated million) pay
// nothing for it.
func (e *Engine) kvStore() store.Store {
	if e.cfg.Store == nil {
		e.cfg.Store = store.NewMemory(store.Config{})
	}
	return e.cfg.Store
}

// Store is the node's record store.
func (e *Engine) Store() store.Store { return e.kvStore() }

// kvHandler receives the replies to the queries of a key-value operation.
type kvHandler interface {
	response(now time.Time, e *Engine, p *pending, m *krpc.Msg)
	failure(now time.Time, e *Engine, p *pending, err error)
}

// sent is what Kademlia keeps of the query it asked one member of a
// key's replica set.
type sent struct {
	token []byte
	tid   uint16 // the query asked of it: only its answer (or its retry's) counts
	// down: it did not answer the lookup, or the table holds it bad. It
	// stays in the replica set but is not asked: it counts as failed.
	down bool
	// retry is the transaction of the query asked again at the first
	// one's soft timeout, when retried; waiting counts the queries still
	// pending, so that the first one's timeout does not end a retry.
	retry   uint16
	retried bool
	waiting uint8
	// mended: a written put wrote to it again after it refused (restOf).
	mended bool
}

// kvOp is a KVPut or KVGet past its lookup: the replication layer's
// quorum count (replica.Op) and the queries Kademlia sent.
type kvOp struct {
	s    *opState
	rec  store.Record // KVPut: the record written
	q    replica.Op
	sent []sent          // by member
	vals *replica.Values // KVGet with All: every value's answers
	// written: a put decided Written, its Result out; restOf follows the
	// members still to answer.
	written bool
}

// startKV validates a KVPut or KVGet and starts the lookup of its replicas.
func (e *Engine) startKV(now time.Time, s *opState, key string) {
	if key == "" {
		e.finish(now, s, ErrNoKey)
		return
	}
	if len(store.BaseKey(key)) > store.DefaultMaxKeySize {
		// Every replica would refuse it: say so before any round trip.
		e.finish(now, s, fmt.Errorf("%w: the key is %d bytes, at most %d", store.ErrTooLarge, len(key), store.DefaultMaxKeySize))
		return
	}
	if put, ok := s.op.(KVPut); ok && len(put.Value) > MaxRecordValue {
		e.finish(now, s, fmt.Errorf("%w: %d bytes, at most %d", ErrTooLarge, len(put.Value), MaxRecordValue))
		return
	}
	if put, ok := s.op.(KVPut); ok && !put.Version.IsZero() {
		if err := e.clock.Observe(now, put.Version); err != nil {
			e.finish(now, s, err)
			return
		}
	}
	target := store.KeyTarget(key)
	if e.table.Len() == 0 {
		// Alone: this node is the whole replica set.
		e.kvReplicas(now, s, nil)
		return
	}
	if e.kvOneHop(now, s, target) {
		return
	}
	e.startLookup(now, s, krpc.MethodGet, target, nil)
}

// kvReplicas picks the replica set from a finished lookup's answered
// candidates and ourselves, and sends the writes or reads.
func (e *Engine) kvReplicas(now time.Time, s *opState, l *lookup) {
	op := &kvOp{s: s}
	switch o := s.op.(type) {
	case KVPut:
		op.q.Key, op.q.Put = o.Key, true
		ttl := o.TTL
		if ttl <= 0 {
			ttl = e.cfg.DefaultTTL
		}
		op.rec = store.Record{Key: o.Key, Version: o.Version, Deleted: o.Delete, Source: quotaSource(o.Source)}
		if op.rec.Version.IsZero() {
			op.rec.Version = e.clock.Now(now)
			s.reissues.Clocked = true
		}
		if !o.Delete {
			op.rec.Value = o.Value
			op.rec.Expires = now.Add(ttl)
			if !o.Expires.IsZero() {
				op.rec.Expires = o.Expires
			}
		}
	case KVGet:
		op.q.Key, op.q.AllowPartial = o.Key, o.Partial
		// A plain read asks its read quorum, itself first; a partial one
		// (and Where) and a read of every value hear every member.
		op.q.Lean = !o.Partial && !o.All
	}
	op.q.Members, op.sent = e.replicasFound(now, store.KeyTarget(op.q.Key), l, true)
	s.kv = op
	if g, ok := s.op.(KVGet); ok && g.All {
		op.vals = replica.NewValues(len(op.q.Members))
	}
	down := make([]bool, len(op.sent))
	for i := range op.sent {
		down[i] = op.sent[i].down
	}
	// Too few of the replica set reachable to reach the quorum: a put is
	// refused before anything is written, rather than leave a write the
	// majority never sees; a get will be short of its read quorum.
	if err := op.q.Begin(e.cfg.quorum(), down); err != nil {
		e.finish(now, s, err)
		return
	}
	if op.q.Lean {
		op.askMore(now, e)
		op.check(now, e)
		return
	}
	for i, r := range op.q.Members {
		if op.sent[i].down {
			continue // failed by Begin
		}
		if r.Self {
			e.kvLocal(now, op, i)
			continue
		}
		if op.batchable(e, i) {
			e.queueStore(now, op, i) // sent at Ready, with the others to that replica
			continue
		}
		op.send(now, e, i)
	}
	op.check(now, e)
}

// send asks member i, or fails it when no query can go out, and reports
// whether it asked.
func (op *kvOp) send(now time.Time, e *Engine, i int) bool {
	tid, ok := op.ask(now, e, i)
	if !ok {
		op.q.Fail(i, errBusy)
	}
	op.sent[i].tid = tid
	return ok
}

// askMore reads from the members a lean get has yet to ask
// (replica.Op.Ask): this node's store at once, the others by dk_fetch,
// a one-hop get's at Ready (fetchbatch.go).
func (op *kvOp) askMore(now time.Time, e *Engine) {
	var buf [4]int
	for ids := op.q.Ask(buf[:0]); len(ids) > 0; ids = op.q.Ask(buf[:0]) {
		for _, i := range ids {
			if op.q.Members[i].Self {
				e.kvLocal(now, op, i)
				continue
			}
			if op.fetchable(i) {
				e.queueFetch(now, op, i) // sent at Ready, with the others to that replica
				continue
			}
			op.send(now, e, i)
		}
	}
}

// ask sends member i the operation's dk_store or dk_fetch.
func (op *kvOp) ask(now time.Time, e *Engine, i int) (uint16, bool) {
	r, sn := &op.q.Members[i], &op.sent[i]
	if op.q.Put {
		m := e.newQuery(krpc.MethodStore)
		m.A.Has |= krpc.HasX
		if sn.token != nil {
			m.A.Has |= krpc.HasToken
			m.A.Token = sn.token
		}
		if op.rec.Version.Writer == e.clock.Writer {
			e.xbuf = encodeOwnWrite(e.xbuf[:0], op.rec)
		} else {
			// An owner's signed version: its signature, not our id, vouches for it.
			e.xbuf = encodeRecords(e.xbuf[:0], "recs", []store.Record{op.rec})
		}
		m.A.X = e.xbuf
		op.markOneHop(m)
	} else {
		m := e.newQuery(krpc.MethodFetch)
		m.A.Has |= krpc.HasX
		if sn.token != nil {
			// Proves our address, so that a large value is not held to 3×
			// the query's bytes (Engine.reply).
			m.A.Has |= krpc.HasToken
			m.A.Token = sn.token
		}
		if op.vals != nil {
			e.xbuf = replica.AppendValuesQuery(e.xbuf[:0], op.q.Key)
		} else {
			e.xbuf = replica.AppendFetch(e.xbuf[:0], op.q.Key)
		}
		m.A.X = e.xbuf
		op.markOneHop(m)
	}
	tid, ok := e.sendQueryTID(now, r.Node.Addr, r.Node.ID, op.s.id, forOp)
	if ok {
		sn.waiting++
	}
	return tid, ok
}

// stalled asks a replica once more when its query passes the soft
// timeout: a lost datagram is far more common than a dead replica, and
// waiting out the hard timeout would hold the whole operation up. The
// first answer to either query counts.
func (op *kvOp) stalled(now time.Time, e *Engine, p *pending) {
	i := op.find(p)
	if i < 0 || op.sent[i].retried {
		return
	}
	if tid, ok := op.ask(now, e, i); ok {
		op.sent[i].retry, op.sent[i].retried = tid, true
	}
}

// known is a candidate of replicasFound: a member and what was sent to it.
type known struct {
	m  replica.Member
	sn sent
}

// replicasFound picks a key's replica set: the Replicas nodes closest to
// target among every node this one knows to exist, ourselves included.
// Those are the candidates of a finished lookup (nil: none), answered or
// not, and the routing table's contacts, bad ones included until the
// table evicts them (routing.AllCloser). A member that did not answer the
// lookup is marked down: it is still in the set, so that a node cut off
// with part of the network counts the quorum among the real replicas,
// never among the ones it happens to reach (docs/architecture.md, "quorum
// rule"). A node that does not answer counts only while the table holds
// it and it went silent less than Config.DownFor ago: a node only others
// vouch for, or one long dead, does not hold a key's writes hostage.
// Without withDown, the set is the nearest that answered (a listener
// registers with the nodes it can reach).
func (e *Engine) replicasFound(now time.Time, target id.ID, l *lookup, withDown bool) ([]replica.Member, []sent) {
	n := e.cfg.replicas()
	// The candidates go in a scratch slice the engine keeps (the members
	// are copied out of it); the few members are told apart by a scan,
	// not a map.
	ks := append(e.known[:0], known{m: replica.Member{Node: krpc.NodeInfo{ID: e.self}, Self: true}})
	defer func() { clear(ks[:cap(ks)]); e.known = ks[:0] }() // no token kept alive
	seen := func(x id.ID) bool {
		return slices.ContainsFunc(ks, func(k known) bool { return k.m.Node.ID == x })
	}
	if l != nil {
		for i := range l.cands {
			c := &l.cands[i]
			if c.state == fresh || seen(c.info.ID) || c.state != answered && (!withDown || !e.countsDown(now, c.info.ID)) {
				continue
			}
			ks = append(ks, known{m: replica.Member{Node: c.info}, sn: sent{token: c.token, down: c.state != answered}})
		}
	}
	cs := e.near[:0]
	if all, ok := e.table.(routing.AllCloser); ok && withDown {
		cs = all.ClosestAll(target, n, cs)
	} else if withDown {
		cs = e.table.Closest(target, n, cs)
	}
	defer func() { e.near = cs[:0] }() // reused: the contacts are copied into ks
	for _, c := range cs {
		if seen(c.ID) || c.State == routing.Bad && !e.countsDown(now, c.ID) {
			continue
		}
		// A contact the lookup did not meet: down if the table holds it
		// bad, else asked like any other member.
		ks = append(ks, known{m: replica.Member{Node: krpc.NodeInfo{ID: c.ID, Addr: c.Addr}}, sn: sent{down: c.State == routing.Bad}})
	}
	slices.SortStableFunc(ks, func(a, b known) int { return id.CompareDistance(target, a.m.Node.ID, b.m.Node.ID) })
	ks = ks[:min(n, len(ks))]
	reps, sn := make([]replica.Member, len(ks)), make([]sent, len(ks))
	for i, k := range ks {
		reps[i], sn[i] = k.m, k.sn
	}
	return reps, sn
}

// handoverTo appends to dst the nodes a leaving node hands a record of
// target to: the Replicas nearest among every contact the table holds,
// questionable and bad ones included (a contact that missed a query or
// two under load is likely alive, and is a replica by the quorum rule),
// and, so that a record still reaches live nodes when those are dead,
// the Replicas nearest usable ones.
func (e *Engine) handoverTo(target id.ID, dst []routing.Contact) []routing.Contact {
	n := e.cfg.replicas()
	base := len(dst)
	dst = e.table.Closest(target, n, dst)
	all, ok := e.table.(routing.AllCloser)
	if !ok {
		return dst
	}
	for _, c := range all.ClosestAll(target, n, nil) {
		if !slices.ContainsFunc(dst[base:], func(d routing.Contact) bool { return d.ID == c.ID }) {
			dst = append(dst, c)
		}
	}
	return dst
}

// countsDown reports whether node x, which does not answer, still counts
// in the replica sets: the table holds it, we have heard from it directly
// (an answer, or a query: a bootstrap node may never have asked the nodes
// that joined through it), it did not say it was leaving, and its silence
// began less than Config.DownFor ago. A node only others listed never
// counts once it fails to answer.
func (e *Engine) countsDown(now time.Time, x id.ID) bool {
	if c, ok := e.table.Get(x); !ok || c.LastSeen.IsZero() {
		return false
	}
	d, left, ok := e.silent.downFor(now, x)
	return !ok || !left && d < e.cfg.DownFor
}

// kvLocal applies the operation to our own store, as member i. A write
// counts once it is committed (at the next Ready).
func (e *Engine) kvLocal(now time.Time, op *kvOp, i int) {
	if op.q.Put {
		e.queueWrite(now, []store.Record{op.rec}, op.q.Committed(i, e.kvStore(), func(now time.Time) { op.check(now, e) }))
		return
	}
	op.q.AnswerLocal(i, e.kvStore(), op.vals, now)
}

// find returns the member a query went to, or -1.
func (op *kvOp) find(p *pending) int {
	for i, r := range op.q.Members {
		sn := &op.sent[i]
		// Match the transaction, not just the node: the lookup's own late
		// answers from the same node carry the same operation.
		if !r.Self && r.Node.ID == p.nodeID && (sn.tid == p.tid || sn.retried && sn.retry == p.tid) && !r.Done && op.q.Asked(i) {
			return i
		}
	}
	return -1
}

func (op *kvOp) response(now time.Time, e *Engine, p *pending, m *krpc.Msg) {
	i := op.find(p)
	if i < 0 {
		return
	}
	if op.q.Put {
		op.q.Stored(i, m.R.X)
	} else {
		op.q.Fetched(i, m.R.X, op.vals, now, func(v store.Version) error { return e.clock.Observe(now, v) })
	}
	op.check(now, e)
}

func (op *kvOp) failure(now time.Time, e *Engine, p *pending, err error) {
	i := op.find(p)
	if i < 0 {
		return
	}
	if op.sent[i].waiting--; op.sent[i].waiting > 0 && err == ErrTimeout {
		return // its retry may still be answered
	}
	op.q.Fail(i, err)
	op.check(now, e)
}

// check reports the result once the layer decides it, and repairs the
// replicas a get found behind.
func (op *kvOp) check(now time.Time, e *Engine) {
	if op.written {
		op.restOf(now, e)
		return
	}
	if op.q.Lean {
		op.askMore(now, e)
	}
	out, ok := op.q.Decide(op.rec.Version)
	if !ok || e.oneHopFallback(now, op, out) || out.Kind == replica.Written && e.reissue(now, op) {
		return
	}
	var m replica.Merged
	if op.vals != nil {
		m = op.vals.Merge()
		op.s.result.Records, op.s.result.Fetch = m.Records, m.Fetch
	}
	e.finish(now, op.s, Outcome(&op.s.result, out, e.cfg.quorum(), op.q.Need))
	if out.Kind == replica.Written {
		op.written = true
		op.restOf(now, e)
	}
	switch {
	case op.vals != nil && out.Kind != replica.NoAnswer:
		for i, recs := range m.Repairs {
			op.repairWith(now, e, i, recs)
		}
	case !op.q.Put && out.Kind != replica.NoAnswer:
		op.repair(now, e)
	}
}

// Outcome fills a Result from a decided key-value operation and returns
// its error; the Chord engine, which shares Result, uses it too.
func Outcome(res *Result, out replica.Outcome, q replica.Quorum, need int) error {
	res.Acks, res.Version, res.Record, res.Holders, res.Partial = out.Acks, out.Version, out.Record, out.Holders, out.Partial
	why := func(err error) error {
		if out.FirstErr != nil {
			return fmt.Errorf("%w (%w)", err, out.FirstErr) // say why, and let errors.Is see it
		}
		return err
	}
	switch out.Kind {
	case replica.Short:
		return why(q.Short(out.Acks, need))
	case replica.ShortRead:
		return why(q.ShortRead(out.Answered, need))
	case replica.NoAnswer:
		return why(fmt.Errorf("%w: no replica answered", ErrTimeout))
	case replica.NotFound:
		return ErrNotFound
	}
	return nil
}

// repairWith writes recs to member i (read repair of a key's values).
func (op *kvOp) repairWith(now time.Time, e *Engine, i int, recs []store.Record) {
	r := op.q.Members[i]
	if !r.Self {
		e.pushRecords(now, r.Node, op.sent[i].token, recs)
		return
	}
	for _, rec := range recs {
		if applied, err := e.kvStore().Put(rec); err == nil && applied {
			e.changed(now, rec)
		}
	}
}

// repair writes the newest version to the replicas that answered with an
// older one or none (read repair).
func (op *kvOp) repair(now time.Time, e *Engine) {
	best := op.q.Best()
	for _, i := range op.q.Stale() {
		r := op.q.Members[i]
		if r.Self {
			if applied, err := e.kvStore().Put(*best); err == nil && applied {
				e.changed(now, *best)
			}
			continue
		}
		e.pushRecords(now, r.Node, op.sent[i].token, []store.Record{*best})
	}
}
