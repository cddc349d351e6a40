package kademlia

import (
	"errors"
	"fmt"
	"time"

	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/krpc"
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
// Result.Holders what each replica answered.
type KVGet struct{ Key string }

// Handover pushes every stored record to the other nodes that should hold
// it: what a node does before leaving so that nothing is lost.
type Handover struct{}

func (KVPut) isOp()    {}
func (KVGet) isOp()    {}
func (Handover) isOp() {}

// Holder is one replica's answer to a KVGet.
type Holder struct {
	Node    krpc.NodeInfo
	Self    bool // this node
	Has     bool
	Version store.Version
	Deleted bool
	Err     error // it did not answer
}

// Errors of the key-value operations.
var (
	ErrQuorum   = errors.New("kademlia: too few replicas acknowledged")
	ErrNoKey    = errors.New("kademlia: empty key")
	ErrTooLarge = errors.New("kademlia: value too large for one record")
)

// MaxRecordValue is the largest value one record carries: it must fit a
// datagram with room to spare. Larger values are split into chunks by the
// caller (package dhtkit stores files that way).
const MaxRecordValue = 8 << 10

func (c *Config) replicas() int { return min(c.Replicas, c.K) }

func majority(n int) int { return n/2 + 1 }

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

// replica is one node of a key's replica set, as a KVPut or KVGet sees it.
type replica struct {
	info  krpc.NodeInfo
	self  bool
	token []byte
	done  bool
	err   error
	rec   *store.Record // KVGet: what it holds (nil: nothing)
	acked bool
	tid   uint16 // the query asked of it: only its answer (or its retry's) counts
	// retry is the transaction of the query asked again at the first
	// one's soft timeout, when retried; waiting counts the queries still
	// pending, so that the first one's timeout does not end a retry.
	retry   uint16
	retried bool
	waiting uint8
}

// kvOp is a KVPut or KVGet past its lookup.
type kvOp struct {
	s        *opState
	put      bool
	rec      store.Record // KVPut: the record written
	replicas []replica
	need     int
	acks     int // KVPut: replicas holding rec (or newer)
	answered int // KVGet: replicas that answered
	returned int
	best     *store.Record
	reported bool
}

// startKV validates a KVPut or KVGet and starts the lookup of its replicas.
func (e *Engine) startKV(now time.Time, s *opState, key string) {
	if key == "" {
		e.finish(now, s, ErrNoKey)
		return
	}
	if len(key) > store.DefaultMaxKeySize {
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
	target := id.FromString(key)
	if e.table.Len() == 0 {
		// Alone: this node is the whole replica set.
		e.kvReplicas(now, s, nil)
		return
	}
	e.startLookup(now, s, krpc.MethodGet, target, nil)
}

// kvReplicas picks the replica set from a finished lookup's answered
// candidates and ourselves, and sends the writes or reads.
func (e *Engine) kvReplicas(now time.Time, s *opState, l *lookup) {
	var key string
	op := &kvOp{s: s}
	switch o := s.op.(type) {
	case KVPut:
		key = o.Key
		op.put = true
		ttl := o.TTL
		if ttl <= 0 {
			ttl = e.cfg.DefaultTTL
		}
		op.rec = store.Record{Key: o.Key, Version: o.Version, Deleted: o.Delete, Source: quotaSource(o.Source)}
		if op.rec.Version.IsZero() {
			op.rec.Version = e.clock.Now(now)
		}
		if !o.Delete {
			op.rec.Value = o.Value
			op.rec.Expires = now.Add(ttl)
			if !o.Expires.IsZero() {
				op.rec.Expires = o.Expires
			}
		}
	case KVGet:
		key = o.Key
	}
	op.replicas = e.replicasFound(id.FromString(key), l)
	s.kv = op
	if op.put {
		op.need = e.cfg.WriteQuorum
	} else {
		op.need = e.cfg.ReadQuorum
	}
	op.need = min(op.need, len(op.replicas))
	for i := range op.replicas {
		r := &op.replicas[i]
		if r.self {
			e.kvLocal(now, op, r, key)
			continue
		}
		tid, ok := op.ask(now, e, r)
		if !ok {
			r.done, r.err = true, errBusy
			op.returned++
		}
		r.tid = tid
	}
	op.check(now, e)
}

// ask sends replica r the operation's dk_store or dk_fetch.
func (op *kvOp) ask(now time.Time, e *Engine, r *replica) (uint16, bool) {
	if op.put {
		m := e.newQuery(krpc.MethodStore)
		m.A.Has |= krpc.HasX
		if r.token != nil {
			m.A.Has |= krpc.HasToken
			m.A.Token = r.token
		}
		if op.rec.Version.Writer == e.clock.Writer {
			e.xbuf = encodeOwnWrite(e.xbuf[:0], op.rec)
		} else {
			// An owner's signed version: its signature, not our id, vouches for it.
			e.xbuf = encodeRecords(e.xbuf[:0], "recs", []store.Record{op.rec})
		}
		m.A.X = e.xbuf
	} else {
		m := e.newQuery(krpc.MethodFetch)
		m.A.Has |= krpc.HasX
		if r.token != nil {
			// Proves our address, so that a large value is not held to 3×
			// the query's bytes (Engine.reply).
			m.A.Has |= krpc.HasToken
			m.A.Token = r.token
		}
		e.xbuf = encodeX(e.xbuf[:0], map[string]any{"k": op.key()})
		m.A.X = e.xbuf
	}
	tid, ok := e.sendQueryTID(now, r.info.Addr, r.info.ID, op.s.id, forOp)
	if ok {
		r.waiting++
	}
	return tid, ok
}

// stalled asks a replica once more when its query passes the soft
// timeout: a lost datagram is far more common than a dead replica, and
// waiting out the hard timeout would hold the whole operation up. The
// first answer to either query counts.
func (op *kvOp) stalled(now time.Time, e *Engine, p *pending) {
	r := op.find(p)
	if r == nil || r.retried {
		return
	}
	if tid, ok := op.ask(now, e, r); ok {
		r.retry, r.retried = tid, true
	}
}

// replicasFound picks a key's replica set from the answered candidates of
// a finished lookup (nil: none) and ourselves, nearest first.
func (e *Engine) replicasFound(target id.ID, l *lookup) []replica {
	var reps []replica
	n := e.cfg.replicas()
	selfPlaced := false
	if l != nil {
		for i := range l.cands {
			c := &l.cands[i]
			if c.state != answered {
				continue
			}
			if !selfPlaced && id.CompareDistance(target, e.self, c.info.ID) < 0 {
				reps = append(reps, replica{info: krpc.NodeInfo{ID: e.self}, self: true})
				selfPlaced = true
			}
			if len(reps) == n {
				break
			}
			reps = append(reps, replica{info: c.info, token: c.token})
			if len(reps) == n {
				break
			}
		}
	}
	if !selfPlaced && len(reps) < n {
		reps = append(reps, replica{info: krpc.NodeInfo{ID: e.self}, self: true})
	}
	return reps
}

// kvLocal applies the operation to our own store, as one replica. A
// write counts once it is committed (at the next Ready).
func (e *Engine) kvLocal(now time.Time, op *kvOp, r *replica, key string) {
	st := e.kvStore()
	if op.put {
		e.queueWrite(now, []store.Record{op.rec}, func(now time.Time, errs []error) {
			r.done = true
			op.returned++
			if errs[0] != nil {
				r.err = errs[0]
			} else {
				// Applied, or refused for an equal or newer version: either
				// way this replica holds op.rec or something that beats it.
				r.acked = true
				op.acks++
			}
			op.check(now, e)
		})
		return
	}
	r.done = true
	op.returned++
	rec, ok, err := st.Get(key)
	if err != nil {
		r.err = err
		return
	}
	op.answered++
	if ok && !expired(&rec, now) {
		r.rec = &rec
		op.consider(&rec)
	}
}

func expired(r *store.Record, now time.Time) bool {
	return !r.Deleted && !r.Expires.IsZero() && !r.Expires.After(now)
}

func (op *kvOp) consider(r *store.Record) {
	if op.best == nil || r.Version.Newer(op.best.Version) {
		op.best = r
	}
}

func (op *kvOp) find(p *pending) *replica {
	for i := range op.replicas {
		r := &op.replicas[i]
		// Match the transaction, not just the node: the lookup's own late
		// answers from the same node carry the same operation.
		if !r.self && r.info.ID == p.nodeID && (r.tid == p.tid || r.retried && r.retry == p.tid) && !r.done {
			return r
		}
	}
	return nil
}

func (op *kvOp) response(now time.Time, e *Engine, p *pending, m *krpc.Msg) {
	r := op.find(p)
	if r == nil {
		return
	}
	r.done = true
	op.returned++
	d, err := decodeX(m.R.X)
	if err != nil {
		r.err = err
		op.check(now, e)
		return
	}
	if op.put {
		if ok, _ := d["ok"].([]any); len(ok) == 1 && ok[0] == int64(1) {
			r.acked = true
			op.acks++
		} else {
			r.err = errors.New("replica refused the write")
		}
	} else {
		op.answered++
		recs, err := decodeRecords(d, "recs")
		if err != nil {
			r.err = err
		} else if len(recs) > 0 && recs[0].Key == op.key() && !expired(&recs[0], now) {
			if e.clock.Observe(now, recs[0].Version) == nil {
				r.rec = &recs[0]
				op.consider(r.rec)
			}
		}
	}
	op.check(now, e)
}

func (op *kvOp) failure(now time.Time, e *Engine, p *pending, err error) {
	r := op.find(p)
	if r == nil {
		return
	}
	if r.waiting--; r.waiting > 0 && err == ErrTimeout {
		return // its retry may still be answered
	}
	r.done, r.err = true, err

	op.returned++
	op.check(now, e)
}

func (op *kvOp) key() string {
	switch o := op.s.op.(type) {
	case KVPut:
		return o.Key
	case KVGet:
		return o.Key
	}
	return ""
}

// check reports the result once it is known: a put when the write quorum
// acknowledged (or can no longer), a get when every replica answered or
// failed. A get then repairs the replicas that answered with older data.
func (op *kvOp) check(now time.Time, e *Engine) {
	if op.reported {
		return
	}
	s := op.s
	if op.put {
		switch {
		case op.acks >= op.need:
			op.reported = true
			s.result.Acks = op.acks
			v := op.rec.Version
			s.result.Version = v
			e.finish(now, s, nil)
		case op.returned == len(op.replicas):
			op.reported = true
			s.result.Acks = op.acks
			err := fmt.Errorf("%w: %d of %d replicas hold the write, quorum is %d", ErrQuorum, op.acks, len(op.replicas), op.need)
			if first := op.firstErr(); first != nil {
				err = fmt.Errorf("%w (%w)", err, first) // say why, and let errors.Is see it
			}
			e.finish(now, s, err)
		}
		return
	}
	if op.returned < len(op.replicas) {
		return
	}
	op.reported = true
	for i := range op.replicas {
		r := &op.replicas[i]
		h := Holder{Node: r.info, Self: r.self, Err: r.err}
		if r.rec != nil {
			h.Has, h.Version, h.Deleted = true, r.rec.Version, r.rec.Deleted
		}
		s.result.Holders = append(s.result.Holders, h)
	}
	s.result.Partial = op.answered < op.need
	if op.best == nil || op.best.Deleted {
		if op.answered == 0 {
			err := fmt.Errorf("%w: no replica answered", ErrTimeout)
			if first := op.firstErr(); first != nil {
				err = fmt.Errorf("%w (%w)", err, first)
			}
			e.finish(now, s, err)
			return
		}
		if op.best != nil {
			s.result.Version = op.best.Version
		}
		e.finish(now, s, ErrNotFound)
		op.repair(now, e)
		return
	}
	rec := *op.best
	s.result.Record = &rec
	s.result.Version = rec.Version
	e.finish(now, s, nil)
	op.repair(now, e)
}

func (op *kvOp) firstErr() error {
	for _, r := range op.replicas {
		if r.err != nil {
			return r.err
		}
	}
	return nil
}

// repair writes the newest version to the replicas that answered with an
// older one or none (read repair).
func (op *kvOp) repair(now time.Time, e *Engine) {
	if op.best == nil {
		return
	}
	for i := range op.replicas {
		r := &op.replicas[i]
		if r.err != nil || r.rec != nil && !op.best.Version.Newer(r.rec.Version) {
			continue
		}
		if r.self {
			if applied, err := e.kvStore().Put(*op.best); err == nil && applied {
				e.changed(now, *op.best)
			}
			continue
		}
		e.pushRecords(now, r.info, r.token, []store.Record{*op.best}, nil, nil)
	}
}
