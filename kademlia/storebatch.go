package kademlia

import (
	"bytes"
	"errors"
	"net/netip"
	"time"

	"github.com/dhtkit/dhtkit/krpc"
	"github.com/dhtkit/dhtkit/replica"
	"github.com/dhtkit/dhtkit/store"
)

// Batched one-hop writes. Under load many puts are started between two
// calls of Ready, and with a few nodes most of them write to the same
// replicas: one dk_store per put per replica made the kernel's loopback
// path nearly half of a put's CPU (BENCHMARKS.md, issue 15). So a one-hop
// put does not send its writes at once: it queues them, and Ready sends
// the writes bound for one replica as one dk_store (flushStores), as many
// records as maxStoreBatch and one datagram allow. A write queued alone
// goes as before, with its target.
//
// A batch names no single target (krpc.HasTarget): it asks the replica to
// check each record's key instead ("c", replica.AppendOwnWrites), and the
// replica answers per record, with 1 (held), 0 (refused) or the error
// code a single write would have drawn, codeNotReplica among them
// (storeEach). The token or contact check applies to the whole message,
// as to any dk_store. The batch is one query, one transaction id, under
// an internal operation of its own (storeBatch); its answer, its retry at
// the soft timeout and its failure are dispatched to each put it carries,
// which counts them as it counts the answers of its own queries.

// maxStoreBatch bounds the records of a batch: a replica checks each one
// against its table, and a hostile datagram must not make it do more than
// that many checks.
const maxStoreBatch = 16

// errWriteRefused: a replica refused one write of a batch without saying
// why (its version too far ahead of the replica's clock).
var errWriteRefused = errors.New("kademlia: replica refused the write")

// memberWait is member i's query of a one-hop operation (a put's write,
// a get's read), queued for Ready to send with the others bound for the
// same node (flushQueue).
type memberWait struct {
	op *kvOp
	i  int
}

// batchable reports whether member i's write may wait for flushStores: a
// one-hop put's own write (an owner's signed version travels unmarked, on
// its own), to a member we hold no token for (a one-hop put has none).
func (op *kvOp) batchable(e *Engine, i int) bool {
	return op.q.Put && op.s.onehop && op.rec.Version.Writer == e.clock.Writer && op.sent[i].token == nil
}

// live reports whether w's operation still waits for w's member: not
// finished, not fallen back to a lookup, the member not yet counted.
func (w memberWait) live(e *Engine) bool {
	s := w.op.s
	return e.ops[s.id] == s && s.kv == w.op && !w.op.q.Members[w.i].Done
}

// settle counts err (nil: a write acknowledged) as w's member's answer.
func (w memberWait) settle(now time.Time, e *Engine, err error) {
	if !w.live(e) {
		return
	}
	if err == nil {
		w.op.q.Ack(w.i)
	} else {
		w.op.q.Fail(w.i, err)
	}
	w.op.check(now, e)
}

// queueStore queues member i's write for the next Ready.
func (e *Engine) queueStore(now time.Time, op *kvOp, i int) {
	e.storeQ = append(e.storeQ, memberWait{op: op, i: i})
	e.storeAt = now
}

// flushStores sends the queued writes, those bound for one replica
// together, in the order they were queued.
func (e *Engine) flushStores() {
	e.flushQueue(&e.storeQ, e.storeAt, maxStoreBatch, func(w memberWait) int { return replica.RecordSize(&w.op.rec) }, e.sendBatch)
}

// flushQueue sends the queries queued in *qp as of now: one alone as
// any (kvOp.send), several bound for one node together by batch, at most
// max of them and size bytes of payload each, in the order they were
// queued. What the sends queue meanwhile waits for the next Ready.
func (e *Engine) flushQueue(qp *[]memberWait, now time.Time, max int, size func(memberWait) int, batch func(time.Time, krpc.NodeInfo, []memberWait)) {
	q := *qp
	*qp = nil
	var group []memberWait
	for j := range q {
		w := q[j]
		if w.op == nil || !w.live(e) {
			continue
		}
		to := w.op.q.Members[w.i].Node
		group = append(group[:0], w)
		total := size(w)
		for k := j + 1; k < len(q) && len(group) < max; k++ {
			x := q[k]
			if x.op == nil || x.op.q.Members[x.i].Node != to {
				continue
			}
			if !x.live(e) {
				q[k].op = nil
				continue
			}
			if s := size(x); total+s <= maxPayload {
				total += s
				group = append(group, x)
				q[k].op = nil
			}
		}
		if len(group) == 1 {
			if !w.op.send(now, e, w.i) {
				w.op.check(now, e)
			}
			continue
		}
		batch(now, to, group)
	}
	if *qp == nil {
		clear(q)
		*qp = q[:0]
	}
}

// batchQuery is one query carrying the queries of several operations to
// one node, under an internal operation of its own whose query's fate
// each of them counts: sent once more at the soft timeout, as a member
// is asked again (kvOp.stalled), and failed when neither is answered.
type batchQuery struct {
	s       *opState
	to      krpc.NodeInfo
	method  krpc.Method
	x       []byte // the payload, sent again at the soft timeout
	tid     uint16
	retry   uint16
	retried bool
	waiting uint8        // queries still pending: the first one's timeout does not end a retry
	ws      []memberWait // the puts' writes or the gets' reads it carries
}

// send starts the batch as h's operation and reports whether it went
// out; one that could not fails every write or read it carries.
func (b *batchQuery) send(now time.Time, e *Engine, h kvHandler) bool {
	if !b.start(now, e, h) {
		b.settle(now, e, errBusy)
		return false
	}
	return true
}

// settle counts err as the answer of every write or read of the batch,
// and ends it.
func (b *batchQuery) settle(now time.Time, e *Engine, err error) {
	e.finish(now, b.s, nil)
	for _, w := range b.ws {
		w.settle(now, e, err)
	}
}

// start registers the batch as an internal operation of h and sends it,
// and reports whether it went out.
func (b *batchQuery) start(now time.Time, e *Engine, h kvHandler) bool {
	b.s = e.internalOp(now, h)
	tid, ok := b.ask(now, e)
	b.tid = tid
	return ok
}

// ask sends the batch's query.
func (b *batchQuery) ask(now time.Time, e *Engine) (uint16, bool) {
	m := e.newQuery(b.method)
	m.A.Has |= krpc.HasX
	m.A.X = b.x
	tid, ok := e.sendQueryTID(now, b.to.Addr, b.to.ID, b.s.id, forOp)
	if ok {
		b.waiting++
	}
	return tid, ok
}

func (b *batchQuery) mine(p *pending) bool {
	return p.tid == b.tid || b.retried && p.tid == b.retry
}

func (b *batchQuery) stalled(now time.Time, e *Engine, p *pending) {
	if !b.mine(p) || b.retried {
		return
	}
	if tid, ok := b.ask(now, e); ok {
		b.retry, b.retried = tid, true
	}
}

// lost reports whether failure err of p ends the batch: p is its query
// or its retry, and no other is still pending.
func (b *batchQuery) lost(p *pending, err error) bool {
	if !b.mine(p) {
		return false
	}
	b.waiting--
	return b.waiting == 0 || err != ErrTimeout
}

// storeBatch is one dk_store carrying the writes of several puts to one
// replica.
type storeBatch struct{ batchQuery }

// sendBatch sends ws, the writes of several puts to node to, as one
// dk_store.
func (e *Engine) sendBatch(now time.Time, to krpc.NodeInfo, ws []memberWait) {
	recs := make([]*store.Record, len(ws))
	for j, w := range ws {
		recs[j] = &w.op.rec
	}
	b := &storeBatch{batchQuery{to: to, method: krpc.MethodStore, x: replica.AppendOwnWrites(nil, recs), ws: append([]memberWait(nil), ws...)}}
	if b.send(now, e, b) {
		e.stats.StoreBatches++
		e.stats.BatchedWrites += uint64(len(ws))
	}
}

func (b *storeBatch) response(now time.Time, e *Engine, p *pending, m *krpc.Msg) {
	if !b.mine(p) {
		return
	}
	e.finish(now, b.s, nil)
	codes := replica.AckCodes(m.R.X)
	for _, h := range replica.ParseHeld(m.R.X) {
		if h.I < len(b.ws) {
			if w := b.ws[h.I]; w.live(e) {
				w.op.q.Held(h.Version)
			}
		}
	}
	for j, w := range b.ws {
		var err error
		switch {
		case j < len(codes) && codes[j] == 1:
		case j < len(codes) && codes[j] > 1:
			err = &RemoteError{Code: int(codes[j]), Msg: "dk_store: record refused"}
		default:
			err = errWriteRefused
		}
		w.settle(now, e, err)
	}
}

func (b *storeBatch) failure(now time.Time, e *Engine, p *pending, err error) {
	if b.lost(p, err) {
		b.settle(now, e, err)
	}
}

// storeEach serves a batch of writes (replica.ParseStoreEach's "c"): each
// record this node is not a replica of by its table is refused with
// codeNotReplica, the others are applied as any write, and the answer,
// sent at the commit, gives each record's fate in order.
func (e *Engine) storeEach(now time.Time, from netip.AddrPort, q *krpc.Msg, recs []store.Record) {
	codes := make([]int, len(recs)) // 0: refused
	idx := make([]int, 0, len(recs))
	valid := recs[:0]
	for i := range recs {
		switch {
		case !e.isReplica(store.KeyTarget(recs[i].Key)):
			codes[i] = codeNotReplica
		case e.clock.Observe(now, recs[i].Version) != nil:
		default:
			recs[i].Source = e.writer(from, q, &recs[i])
			idx = append(idx, i)
			valid = append(valid, recs[i])
		}
	}
	tid := bytes.Clone(q.T)
	e.queueWrite(now, valid, func(now time.Time, errs []error, applied []bool) {
		for j, err := range errs {
			codes[idx[j]] = 1
			if err != nil {
				codes[idx[j]] = storeErrCode(err)
			}
		}
		m := e.newResponse(from, tid)
		m.R.Has |= krpc.HasX
		e.xbuf = replica.AppendAckCodes(e.xbuf[:0], codes, replica.Superseded(e.kvStore(), valid, idx, errs, applied))
		m.R.X = e.xbuf
		e.send(from)
	})
}
