package chord

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/kademlia"
	"github.com/dhtkit/dhtkit/krpc"
	"github.com/dhtkit/dhtkit/store"
)

// maxPayload bounds the records of one dk_store or dk_fetch so that the
// datagram stays within kademlia.MaxDatagram.
const maxPayload = 12 << 10

// kvStore returns the node's store, making an in-memory one on first use.
func (e *Engine) kvStore() store.Store {
	if e.cfg.Store == nil {
		e.cfg.Store = store.NewMemory(store.Config{})
	}
	return e.cfg.Store
}

func expired(r *store.Record, now time.Time) bool {
	return !r.Deleted && !r.Expires.IsZero() && !r.Expires.After(now)
}

// startKV validates a KVPut or KVGet and looks up the key's successor.
func (e *Engine) startKV(now time.Time, s *opState, key string) {
	if key == "" {
		e.finish(now, s, kademlia.ErrNoKey)
		return
	}
	if len(key) > store.DefaultMaxKeySize {
		e.finish(now, s, fmt.Errorf("%w: the key is %d bytes, at most %d", store.ErrTooLarge, len(key), store.DefaultMaxKeySize))
		return
	}
	if put, ok := s.op.(kademlia.KVPut); ok && len(put.Value) > kademlia.MaxRecordValue {
		e.finish(now, s, fmt.Errorf("%w: %d bytes, at most %d", kademlia.ErrTooLarge, len(put.Value), kademlia.MaxRecordValue))
		return
	}
	e.startLookup(now, s, id.FromString(key), nil)
}

// replica is one node of a key's replica set.
type replica struct {
	info  krpc.NodeInfo
	self  bool
	done  bool
	err   error
	rec   *store.Record // KVGet: what it holds
	acked bool
}

// kvOp is a KVPut or KVGet past its lookup.
type kvOp struct {
	s        *opState
	put      bool
	key      string
	rec      store.Record // KVPut: the record written
	replicas []replica
	need     int
	acks     int
	answered int
	returned int
	best     *store.Record
	reported bool
}

// kvReplicas takes the first Replicas nodes of the lookup's answer (the
// key's successor and the nodes after it) and writes to or reads from
// each.
func (e *Engine) kvReplicas(now time.Time, s *opState, nodes []krpc.NodeInfo) {
	op := &kvOp{s: s}
	switch o := s.op.(type) {
	case kademlia.KVPut:
		op.key, op.put = o.Key, true
		ttl := o.TTL
		if ttl <= 0 {
			ttl = e.cfg.DefaultTTL
		}
		op.rec = store.Record{Key: o.Key, Version: o.Version, Deleted: o.Delete, Source: o.Source}
		if op.rec.Version.IsZero() {
			op.rec.Version = e.clock.Now(now)
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
		op.need = e.cfg.WriteQuorum
	case kademlia.KVGet:
		op.key = o.Key
		op.need = e.cfg.ReadQuorum
	}
	for _, n := range nodes {
		if len(op.replicas) == e.cfg.Replicas {
			break
		}
		op.replicas = append(op.replicas, replica{info: n, self: n.ID == e.self})
	}
	op.need = min(op.need, len(op.replicas))
	s.kv = op
	for i := range op.replicas {
		r := &op.replicas[i]
		if r.self {
			e.kvLocal(now, op, r)
			continue
		}
		if op.put {
			q := e.newQuery(mStore)
			q.A.Has |= krpc.HasX
			e.xbuf = kademlia.AppendRecords(e.xbuf[:0], []store.Record{op.rec})
			q.A.X = e.xbuf
		} else {
			q := e.newQuery(mFetch)
			q.A.Has |= krpc.HasX
			e.xbuf = encodeX(e.xbuf[:0], map[string]any{"k": op.key})
			q.A.X = e.xbuf
		}
		m := mFetch
		if op.put {
			m = mStore
		}
		if !e.sendQuery(now, m, r.info.Addr, r.info.ID, s.id, forOp) {
			r.done, r.err = true, errBadAddr
			op.returned++
		}
	}
	op.check(now, e)
}

// kvLocal applies the operation to our own store, as one replica.
func (e *Engine) kvLocal(now time.Time, op *kvOp, r *replica) {
	st := e.kvStore()
	r.done = true
	op.returned++
	if op.put {
		if _, err := st.Put(op.rec); err != nil {
			r.err = err
			return
		}
		r.acked = true
		op.acks++
		return
	}
	rec, ok, err := st.Get(op.key)
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

func (op *kvOp) consider(r *store.Record) {
	if op.best == nil || r.Version.Newer(op.best.Version) {
		op.best = r
	}
}

func (op *kvOp) find(p *pending) *replica {
	for i := range op.replicas {
		r := &op.replicas[i]
		if !r.self && !r.done && r.info.ID == p.nodeID {
			return r
		}
	}
	return nil
}

func (op *kvOp) response(now time.Time, e *Engine, p *pending, sender id.ID, m *krpc.Msg) {
	r := op.find(p)
	if r == nil {
		return
	}
	r.done = true
	op.returned++
	if op.put {
		d, err := decodeX(m.R.X)
		if ok, _ := d["ok"].([]any); err == nil && len(ok) == 1 && ok[0] == int64(1) {
			r.acked = true
			op.acks++
		} else {
			r.err = errors.New("chord: replica refused the write")
		}
		op.check(now, e)
		return
	}
	recs, err := kademlia.ParseRecords(m.R.X)
	if err != nil {
		e.stats.Malformed++
		r.err = err
		op.check(now, e)
		return
	}
	op.answered++
	if len(recs) > 0 && recs[0].Key == op.key && !expired(&recs[0], now) && e.clock.Observe(now, recs[0].Version) == nil {
		r.rec = &recs[0]
		op.consider(r.rec)
	}
	op.check(now, e)
}

func (op *kvOp) failure(now time.Time, e *Engine, p *pending, err error) {
	r := op.find(p)
	if r == nil {
		return
	}
	r.done, r.err = true, err
	op.returned++
	op.check(now, e)
}

// check reports the result once it is known: a put when the write quorum
// acknowledged (or no longer can), a get when every replica answered or
// failed; a get then repairs the replicas that had older data.
func (op *kvOp) check(now time.Time, e *Engine) {
	if op.reported {
		return
	}
	s := op.s
	if op.put {
		switch {
		case op.acks >= op.need && op.need > 0:
			op.reported = true
			s.result.Acks = op.acks
			s.result.Version = op.rec.Version
			e.finish(now, s, nil)
		case op.returned == len(op.replicas):
			op.reported = true
			s.result.Acks = op.acks
			err := fmt.Errorf("%w: %d of %d replicas hold the write, quorum is %d", kademlia.ErrQuorum, op.acks, len(op.replicas), op.need)
			if first := op.firstErr(); first != nil {
				err = fmt.Errorf("%w (%w)", err, first)
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
		h := kademlia.Holder{Node: r.info, Self: r.self, Err: r.err}
		if r.rec != nil {
			h.Has, h.Version, h.Deleted = true, r.rec.Version, r.rec.Deleted
		}
		s.result.Holders = append(s.result.Holders, h)
	}
	s.result.Partial = op.answered < op.need
	switch {
	case op.best != nil && !op.best.Deleted:
		rec := *op.best
		s.result.Record = &rec
		s.result.Version = rec.Version
		e.finish(now, s, nil)
	case op.answered == 0:
		err := fmt.Errorf("%w: no replica answered", kademlia.ErrTimeout)
		if first := op.firstErr(); first != nil {
			err = fmt.Errorf("%w (%w)", err, first)
		}
		e.finish(now, s, err)
		return
	default:
		if op.best != nil {
			s.result.Version = op.best.Version
		}
		e.finish(now, s, kademlia.ErrNotFound)
	}
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
			_, _ = e.kvStore().Put(*op.best)
			continue
		}
		e.pushRecords(now, r.info, []store.Record{*op.best}, 0)
	}
}

// pushRecords sends recs to `to` in dk_store batches that fit a datagram.
// With op set, the answers go to that operation (a hand-over); without,
// they only prove the node alive. It returns the batches sent.
func (e *Engine) pushRecords(now time.Time, to krpc.NodeInfo, recs []store.Record, op kademlia.OpID) int {
	why := forFire
	if op != 0 {
		why = forOp
	}
	sent := 0
	for len(recs) > 0 {
		n, size := 0, 0
		for n < len(recs) && (n == 0 || size+len(recs[n].Key)+len(recs[n].Value)+64 < maxPayload) {
			size += len(recs[n].Key) + len(recs[n].Value) + 64
			n++
		}
		q := e.newQuery(mStore)
		q.A.Has |= krpc.HasX
		e.xbuf = kademlia.AppendRecords(e.xbuf[:0], recs[:n])
		q.A.X = e.xbuf
		if e.sendQuery(now, mStore, to.Addr, to.ID, op, why) {
			sent++
		}
		recs = recs[n:]
	}
	return sent
}

// handleStore answers dk_store: it applies each record (newest version
// wins) and says, per record, whether we now hold it or something newer.
// It leaves the reply in e.out and reports whether there is one.
func (e *Engine) handleStore(now time.Time, from netip.AddrPort, q *krpc.Msg) bool {
	recs, err := kademlia.ParseRecords(q.A.X)
	if err != nil {
		e.stats.Malformed++
		e.replyError(from, q.T, krpc.CodeProtocol, "dk_store: "+err.Error())
		return false
	}
	ok := make([]any, len(recs))
	st := e.kvStore()
	for i := range recs {
		ok[i] = 0
		if e.clock.Observe(now, recs[i].Version) != nil || expired(&recs[i], now) {
			continue
		}
		if _, err := st.Put(recs[i]); err == nil {
			ok[i] = 1 // applied, or refused for an equal or newer version
		}
	}
	e.xbuf = encodeX(e.xbuf[:0], map[string]any{"ok": ok})
	r := e.newResponse(q.T)
	r.R.Has |= krpc.HasX
	r.R.X = e.xbuf
	return true
}

// handleFetch answers dk_fetch {"k": key} with the record held for key.
func (e *Engine) handleFetch(now time.Time, from netip.AddrPort, q *krpc.Msg) bool {
	d, err := decodeX(q.A.X)
	var k []byte
	if err == nil {
		k, _ = d["k"].([]byte)
	}
	if len(k) == 0 {
		e.stats.Malformed++
		e.replyError(from, q.T, krpc.CodeProtocol, "dk_fetch: want x.k")
		return false
	}
	var recs []store.Record
	if rec, found, err := e.kvStore().Get(string(k)); err == nil && found && !expired(&rec, now) {
		recs = append(recs, rec)
	}
	e.xbuf = kademlia.AppendRecords(e.xbuf[:0], recs)
	r := e.newResponse(q.T)
	r.R.Has |= krpc.HasX
	r.R.X = e.xbuf
	return true
}

// handover is a Handover in progress: the node pushes every record it
// holds to its successors, which take over its range, and says goodbye
// to its neighbours.
type handover struct {
	batches int   // dk_store batches awaiting an answer
	first   id.ID // the successor, which takes over our range
	acked   int   // records it acknowledged
}

func (e *Engine) startHandover(now time.Time, s *opState) {
	var recs []store.Record
	if e.cfg.Store != nil {
		_ = e.cfg.Store.Each(func(r store.Record) bool {
			if !expired(&r, now) {
				recs = append(recs, r)
			}
			return true
		})
	}
	h := &handover{}
	s.ho = h
	r := &e.ring
	if succ, ok := r.successor(); ok {
		h.first = succ.ID
	}
	for i, succ := range r.succs {
		if i == e.cfg.Replicas {
			break
		}
		h.batches += e.pushRecords(now, succ, recs, s.id)
	}
	// Goodbye to both neighbours, so that the ring closes over our place
	// now instead of at their next failed stabilize.
	q := e.newQuery(mLeave)
	q.A.Has |= krpc.HasX
	e.xbuf = encodeNeighbors(e.xbuf[:0], r.pred, r.hasPred, r.succs, e.self)
	q.A.X = e.xbuf
	if succ, ok := r.successor(); ok {
		e.sendQuery(now, mLeave, succ.Addr, succ.ID, 0, forFire)
	}
	if r.hasPred {
		if succ, ok := r.successor(); !ok || succ.ID != r.pred.ID {
			e.sendQuery(now, mLeave, r.pred.Addr, r.pred.ID, 0, forFire)
		}
	}
	if h.batches == 0 {
		e.finish(now, s, nil)
	}
}

func (h *handover) done(now time.Time, e *Engine, s *opState, p *pending, m *krpc.Msg) {
	h.batches--
	if m != nil && p.nodeID == h.first {
		if d, err := decodeX(m.R.X); err == nil {
			ok, _ := d["ok"].([]any)
			for _, v := range ok {
				if v == int64(1) {
					h.acked++
				}
			}
		}
	}
	if h.batches == 0 {
		s.result.Acks = h.acked
		e.finish(now, s, nil)
	}
}
