package kademlia

import (
	"errors"
	"time"

	"github.com/dhtkit/dhtkit/krpc"
	"github.com/dhtkit/dhtkit/replica"
	"github.com/dhtkit/dhtkit/store"
)

// Batched one-hop reads, as storebatch.go batches writes. A one-hop get
// reads its own store and sends a dk_fetch to each other replica it needs
// for its read quorum; under load a few nodes' gets ask the same replicas,
// and the kernel's loopback path was nearly half of a get's CPU
// (BENCHMARKS.md, issue 15). So a one-hop get's dk_fetch waits for Ready
// (flushFetches), which sends those bound for one replica as one dk_fetch
// of several keys, as many as maxFetchBatch and one datagram allow. A
// read queued alone goes as before, with its target.
//
// A batch names no single target: it asks the replica to check each key
// ({"c": 1, "ks": [...]}, replica.AppendFetchEach), and the replica
// answers per key, with the record, not found, or the error code a fetch
// of that key alone would have drawn, codeNotReplica among them
// (replica.ServeFetchEach); a record that does not fit in the answer is
// fetched alone (replica.CodeFetchAlone). The batch is one query under an
// internal operation of its own (fetchBatch): its answer, its retry at
// the soft timeout and its failure go to each get it carries, which
// counts them as it counts the answer of its own dk_fetch.

// maxFetchBatch bounds the keys of a batch: a replica checks each one
// against its table, and a hostile datagram must not make it do more than
// that many checks.
const maxFetchBatch = 16

// errFetchUnchecked: a replica answered a batch of reads without an
// answer per key (a replica of an older version, which reads the batch as
// a fetch of several keys and neither checks them nor says which it left
// out).
var errFetchUnchecked = errors.New("kademlia: replica answered a batch of reads without per-key answers")

// fetchable reports whether member i's read may wait for flushFetches: a
// one-hop get's read of one key, from a member we hold no token for (a
// one-hop get has none).
func (op *kvOp) fetchable(i int) bool {
	return !op.q.Put && op.vals == nil && op.s.onehop && op.sent[i].token == nil
}

// queueFetch queues member i's read for the next Ready.
func (e *Engine) queueFetch(now time.Time, op *kvOp, i int) {
	e.fetchQ = append(e.fetchQ, memberWait{op: op, i: i})
	e.fetchAt = now
}

// flushFetches sends the queued reads, those bound for one replica
// together, in the order they were queued.
func (e *Engine) flushFetches() {
	e.flushQueue(&e.fetchQ, e.fetchAt, maxFetchBatch, func(w memberWait) int { return replica.FetchKeySize(w.op.q.Key) }, e.sendFetchBatch)
}

// fetchBatch is one dk_fetch carrying the reads of several gets from one
// replica.
type fetchBatch struct{ batchQuery }

// sendFetchBatch sends ws, the reads of several gets from node to, as
// one dk_fetch.
func (e *Engine) sendFetchBatch(now time.Time, to krpc.NodeInfo, ws []memberWait) {
	keys := make([]string, len(ws))
	for j, w := range ws {
		keys[j] = w.op.q.Key
	}
	b := &fetchBatch{batchQuery{to: to, method: krpc.MethodFetch, x: replica.AppendFetchEach(nil, keys), ws: append([]memberWait(nil), ws...)}}
	if b.send(now, e, b) {
		e.stats.FetchBatches++
		e.stats.BatchedReads += uint64(len(ws))
	}
}

func (b *fetchBatch) response(now time.Time, e *Engine, p *pending, m *krpc.Msg) {
	if !b.mine(p) {
		return
	}
	var cbuf [maxFetchBatch]int64
	codes, recs, ok := replica.ParseFetchAnswers(m.R.X, cbuf[:0], make([]store.Record, 0, len(b.ws)))
	if !ok || len(codes) != len(b.ws) {
		b.settle(now, e, errFetchUnchecked)
		return
	}
	e.finish(now, b.s, nil)
	observe := func(v store.Version) error { return e.clock.Observe(now, v) }
	next := 0 // the record of the next key found
	for j, w := range b.ws {
		code := codes[j]
		var rec *store.Record
		if code == 1 {
			rec = &recs[next]
			next++
		}
		if !w.live(e) {
			continue
		}
		switch code {
		case 0, 1:
			w.op.q.FetchedRecord(w.i, rec, now, observe)
			w.op.check(now, e)
		case replica.CodeFetchAlone:
			if !w.op.send(now, e, w.i) {
				w.op.check(now, e)
			}
		default:
			w.settle(now, e, &RemoteError{Code: int(code), Msg: "dk_fetch: key refused"})
		}
	}
}

func (b *fetchBatch) failure(now time.Time, e *Engine, p *pending, err error) {
	if b.lost(p, err) {
		b.settle(now, e, err)
	}
}

// fetchEach serves a batch of reads (replica.ParseFetchEach's keys): each
// key this node is not a replica of by its table is refused with
// codeNotReplica, the others are read as a dk_fetch of that key alone.
func (e *Engine) fetchEach(now time.Time, keys [][]byte) []byte {
	return replica.ServeFetchEach(now, e.kvStore(), e.xbuf[:0], keys, maxPayload, func(k string) int {
		if !e.isReplica(store.KeyTarget(k)) {
			return codeNotReplica
		}
		return 0
	})
}
