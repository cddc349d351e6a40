package replica

import (
	"time"

	"github.com/dhtkit/dhtkit/krpc"
	"github.com/dhtkit/dhtkit/store"
)

// PushWindow is how many dk_store batches one Push keeps in flight, so
// that a node that lacks a whole range is not sent it in one burst its
// socket buffer would drop.
const PushWindow = 8

// Push writes records to one node in dk_store batches, sans I/O: read
// repair, anti-entropy's pushes, the join share, hand-over on leave and
// purge all go through it, in both engines. Each batch fits MaxPayload;
// at most PushWindow are in flight; every record's fate is reported to
// OnAck once (held by the node afterwards, or not). Records given by key
// and version (NewPushKeys) are read from the store as their batch is
// sent, so that handing over a large store does not hold it in memory.
//
// The engine sends the payloads Fill (and Retry) hand it as dk_store to
// To, under a handle of its choosing (its transaction id), and gives the
// answers to Answer or Fail; the push is over once Done.
type Push struct {
	To krpc.NodeInfo
	// OnAck, if set, learns each record's fate: ok when the node
	// acknowledged it (stored, or holds something newer).
	OnAck func(now time.Time, r store.Record, ok bool)
	// OnDone, if set, is called once, when the last batch is settled.
	OnDone func(now time.Time)

	todo     []pushItem
	batches  map[uint64]*pushBatch // by handle: a retried batch is there twice
	inflight int
	done     bool
	buf      []byte
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
	handles [2]uint64 // the query, and its retry when retried
	retried bool
}

// NewPush pushes recs, values included, to `to`.
func NewPush(to krpc.NodeInfo, recs []store.Record) *Push {
	p := &Push{To: to, batches: make(map[uint64]*pushBatch), todo: make([]pushItem, len(recs))}
	for i, r := range recs {
		p.todo[i] = pushItem{rec: r}
	}
	return p
}

// NewPushKeys pushes the records named by key and version, their values
// read from the store as they are sent.
func NewPushKeys(to krpc.NodeInfo, entries []store.Entry) *Push {
	p := &Push{To: to, batches: make(map[uint64]*pushBatch), todo: make([]pushItem, len(entries))}
	for i, en := range entries {
		p.todo[i] = pushItem{rec: store.Record{Key: en.Key, Version: en.Version, Deleted: en.Deleted}, lazy: true}
	}
	return p
}

// Send sends one dk_store payload and returns the handle its answer will
// come back under, or false when it could not be sent.
type Send func(x []byte) (handle uint64, ok bool)

// Fill sends batches while the window has room.
func (p *Push) Fill(now time.Time, st store.Store, send Send) {
	for p.inflight < PushWindow && len(p.todo) > 0 {
		b := &pushBatch{}
		var batch []store.Record
		size := 0
		for len(p.todo) > 0 {
			it := p.todo[0]
			r, ok := p.current(now, st, it)
			if !ok {
				p.todo = p.todo[1:]
				continue
			}
			n := RecordSize(&r)
			if len(batch) > 0 && size+n >= MaxPayload {
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
		p.buf = AppendRecords(p.buf[:0], batch)
		h, ok := send(p.buf)
		if !ok {
			p.report(now, b, nil)
			continue
		}
		b.handles[0] = h
		p.batches[h] = b
		p.inflight++
	}
	p.settled(now)
}

// current returns the record an item stands for, its value read from the
// store when the item is lazy. A lazy record gone or rewritten since is
// reported and skipped: a newer version travels by its own way (sync, or
// the write itself); one expired needs no new home.
func (p *Push) current(now time.Time, st store.Store, it pushItem) (store.Record, bool) {
	if !it.lazy {
		return it.rec, true
	}
	cur, ok, err := st.Get(it.rec.Key)
	if err != nil || !ok || cur.Version != it.rec.Version || Expired(&cur, now) {
		p.reportOne(now, it.rec, err == nil && ok && (cur.Version.Newer(it.rec.Version) || Expired(&cur, now)))
		return store.Record{}, false
	}
	return cur, true
}

// Retry sends batch h once more, when the engine finds it stalled (past
// its soft timeout): one lost datagram should not hold a hand-over up
// for the hard timeout. The first answer to either query counts.
func (p *Push) Retry(st store.Store, h uint64, send Send) {
	b := p.batches[h]
	if b == nil || b.retried {
		return
	}
	var batch []store.Record
	for _, it := range b.items {
		if !it.lazy {
			batch = append(batch, it.rec)
		} else if cur, ok, err := st.Get(it.rec.Key); err == nil && ok && cur.Version == it.rec.Version {
			batch = append(batch, cur)
		}
	}
	if len(batch) != len(b.items) {
		// A record changed since: the answer's flags would not line up
		// with the batch. The first query's fate decides.
		return
	}
	p.buf = AppendRecords(p.buf[:0], batch)
	if h2, ok := send(p.buf); ok {
		b.handles[1], b.retried = h2, true
		p.batches[h2] = b
	}
}

// Answer takes the dk_store answer x to batch h.
func (p *Push) Answer(now time.Time, h uint64, x []byte, st store.Store, send Send) {
	b := p.batches[h]
	if b == nil {
		return
	}
	p.settle(b)
	p.report(now, b, ParseAcks(x))
	p.Fill(now, st, send)
}

// Fail takes the failure of batch h; timeout says it timed out (rather
// than was refused), so that a retry still pending may yet be answered.
func (p *Push) Fail(now time.Time, h uint64, timeout bool, st store.Store, send Send) {
	b := p.batches[h]
	if b == nil {
		return
	}
	if b.retried && h == b.handles[0] && timeout {
		delete(p.batches, h) // its retry may still be answered
		return
	}
	p.settle(b)
	p.report(now, b, nil)
	p.Fill(now, st, send)
}

// Abandon reports every record not sent yet as not stored: the engine
// cannot reach the node (Kademlia got no write token).
func (p *Push) Abandon(now time.Time) {
	for _, it := range p.todo {
		p.reportOne(now, it.rec, false)
	}
	p.todo = nil
	p.settled(now)
}

// Done reports whether every record is sent and every batch settled.
func (p *Push) Done() bool { return p.inflight == 0 && len(p.todo) == 0 }

// settle removes a batch that was answered or failed for good.
func (p *Push) settle(b *pushBatch) {
	delete(p.batches, b.handles[0])
	if b.retried {
		delete(p.batches, b.handles[1])
	}
	p.inflight--
}

func (p *Push) settled(now time.Time) {
	if p.Done() && !p.done {
		p.done = true
		if p.OnDone != nil {
			p.OnDone(now)
		}
	}
}

func (p *Push) reportOne(now time.Time, r store.Record, ok bool) {
	if p.OnAck != nil {
		r.Value = nil
		p.OnAck(now, r, ok)
	}
}

// report reports a batch's records, acknowledged where ok says so.
func (p *Push) report(now time.Time, b *pushBatch, ok []bool) {
	for i, it := range b.items {
		p.reportOne(now, it.rec, i < len(ok) && ok[i])
	}
}
