package chord

import (
	"container/heap"
	"net/netip"
	"time"

	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/kademlia"
	"github.com/dhtkit/dhtkit/krpc"
)

// pending is a query of ours awaiting its answer.
type pending struct {
	tid     uint16
	gen     uint32 // distinguishes reuses of this struct, for stale timers
	to      netip.AddrPort
	nodeID  id.ID // who we think answers; zero when unknown (bootstrap, ping)
	method  method
	sent    time.Time
	op      kademlia.OpID // the operation it belongs to, if any
	purpose purpose
}

type purpose uint8

const (
	forOp        purpose = iota // a query of an operation (lookup, ping, key-value)
	forStabilize                // ch_get_predecessor to the successor
	forCheck                    // ping of the predecessor
	forNotify                   // ch_notify to the successor
	forFire                     // notify, leave, pushes: the answer only proves liveness
	forProbe                    // ping of a lost neighbour (probe.go)
)

// timer wakes the engine when a pending query times out.
type timer struct {
	at  time.Time
	tid uint16
	gen uint32
}

type timerHeap []timer

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h timerHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *timerHeap) Push(x any)        { *h = append(*h, x.(timer)) }
func (h *timerHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	*h = old[:len(old)-1]
	return t
}

// newQuery starts the query in e.out; the caller fills A.X and sends it
// with sendQuery.
func (e *Engine) newQuery(m method) *krpc.Msg {
	q := &e.out
	q.Reset()
	q.Y = krpc.Query
	setMethod(q, m)
	q.A.Has = krpc.HasID
	q.A.ID = e.self
	q.V = e.cfg.Version
	return q
}

// sendQuery sends e.out, a query of method m, and tracks it. It returns
// false when every transaction id is in use or the address is unusable.
func (e *Engine) sendQuery(now time.Time, m method, to netip.AddrPort, nodeID id.ID, op kademlia.OpID, why purpose) bool {
	_, ok := e.sendQueryTID(now, m, to, nodeID, op, why)
	return ok
}

// sendQueryTID is sendQuery that also returns the transaction id.
func (e *Engine) sendQueryTID(now time.Time, m method, to netip.AddrPort, nodeID id.ID, op kademlia.OpID, why purpose) (uint16, bool) {
	if !to.IsValid() || to.Port() == 0 || len(e.pending) >= 1<<16-1 {
		return 0, false
	}
	for e.pending[e.nextTID] != nil {
		e.nextTID++
	}
	tid := e.nextTID
	e.nextTID++
	var p *pending
	if n := len(e.free); n > 0 {
		p = e.free[n-1]
		e.free = e.free[:n-1]
	} else {
		p = new(pending)
	}
	gen := p.gen + 1
	*p = pending{tid: tid, gen: gen, to: to, nodeID: nodeID, method: m, sent: now, op: op, purpose: why}
	e.pending[tid] = p
	heap.Push(&e.timers, timer{at: now.Add(e.cfg.QueryTimeout), tid: tid, gen: gen})
	e.tid = [2]byte{byte(tid >> 8), byte(tid)}
	e.out.T = e.tid[:]
	e.stats.QueriesOut[m]++
	e.send(to)
	return tid, true
}

func (e *Engine) release(p *pending) {
	delete(e.pending, p.tid)
	e.free = append(e.free, p)
}

// handleReply matches a response or error to the query it answers.
func (e *Engine) handleReply(now time.Time, from netip.AddrPort, m *krpc.Msg) {
	if len(m.T) != 2 {
		e.stats.Unsolicited++
		return
	}
	tid := uint16(m.T[0])<<8 | uint16(m.T[1])
	p := e.pending[tid]
	// A reply must come from the address we asked: anyone else could be
	// guessing transaction ids to poison our ring.
	if p == nil || p.to != from {
		e.stats.Unsolicited++
		return
	}
	pc := *p
	if m.Y == krpc.Error {
		e.stats.ErrorsIn++
		e.release(p)
		e.onFailure(now, &pc, &kademlia.RemoteError{Code: m.E.Code, Msg: string(m.E.Msg)})
		return
	}
	sender, ok := m.SenderID()
	if !ok || sender == e.self || !pc.nodeID.IsZero() && sender != pc.nodeID {
		// Not an answer we can use (or another node now lives at that
		// address): let the query time out.
		e.stats.Malformed++
		return
	}
	e.stats.ResponsesIn++
	e.release(p)
	e.heard(now, krpc.NodeInfo{ID: sender, Addr: from})
	switch pc.purpose {
	case forStabilize:
		e.onStabilize(now, &pc, sender, m)
	case forCheck:
		e.ring.checking = false
	case forNotify:
		e.onNotifyReply(now, &pc, sender, m)
	case forOp:
		e.onResponse(now, &pc, sender, m)
	}
}

// onTimeout is called when a query gets no answer in time.
func (e *Engine) onTimeout(now time.Time, p *pending) {
	e.stats.Timeouts++
	pc := *p
	e.release(p)
	if !pc.nodeID.IsZero() {
		e.ring.failed(now, pc.nodeID, e)
	}
	e.onFailure(now, &pc, kademlia.ErrTimeout)
}

// onFailure routes a timeout or an error reply.
func (e *Engine) onFailure(now time.Time, p *pending, err error) {
	switch p.purpose {
	case forStabilize:
		e.ring.stabilizing = false
		if err == kademlia.ErrTimeout {
			// failed() dropped the successor; try the next one now rather
			// than wait a period with a broken ring.
			e.stabilize(now)
		}
	case forProbe:
		e.probeFailed(now, p.nodeID)
	case forCheck:
		e.ring.checking = false
		if err == kademlia.ErrTimeout && e.ring.hasPred && e.ring.pred.ID == p.nodeID {
			e.ring.hasPred = false
		}
	case forOp:
		if s := e.ops[p.op]; s != nil {
			s.failure(now, e, p, err)
		}
	}
}

// newResponse starts the response in e.out to the query with transaction
// id t.
func (e *Engine) newResponse(t []byte) *krpc.Msg {
	r := &e.out
	r.Reset()
	r.Y = krpc.Response
	r.T = t
	r.R.Has = krpc.HasID
	r.R.ID = e.self
	r.V = e.cfg.Version
	return r
}

func (e *Engine) replyError(to netip.AddrPort, t []byte, code int, msg string) {
	r := &e.out
	r.Reset()
	r.Y = krpc.Error
	r.T = t
	r.E.Code = code
	r.E.Msg = []byte(msg)
	r.V = e.cfg.Version
	e.stats.ErrorsOut++
	e.send(to)
}
