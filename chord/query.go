package chord

import (
	"net/netip"
	"time"

	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/kademlia"
	"github.com/dhtkit/dhtkit/krpc"
	"github.com/dhtkit/dhtkit/replica"
	"github.com/dhtkit/dhtkit/routing"
)

// pending is a query of ours awaiting its answer (the engine's record in
// routing.InFlight, which draws its random transaction id, as Kademlia's).
type pending struct {
	tid     uint16
	to      netip.AddrPort
	nodeID  id.ID // who we think answers; zero when unknown (bootstrap, ping)
	method  method
	sent    time.Time
	op      kademlia.OpID // the operation it belongs to, if any
	purpose purpose
	// x is the payload of a dhtkit method (dk_store, dk_fetch, dk_sync),
	// kept so that the query can be asked again with the token of an
	// answer that asks for one (replica.IsAgain); again says it was.
	x     []byte
	again bool
}

type purpose uint8

const (
	forOp        purpose = iota // a query of an operation (lookup, ping, key-value)
	forStabilize                // ch_get_predecessor to the successor
	forCheck                    // ping of the predecessor
	forNotify                   // ch_notify to the successor
	forFire                     // notify, leave, pushes: the answer only proves liveness
	forProbe                    // ping of a lost neighbour (probe.go)
	forListener                 // dk_notify to a listener (listen.go)
)

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
	if !to.IsValid() || to.Port() == 0 {
		return 0, false
	}
	slot, ok := e.inflight.Start(e.rng.Uint32, to)
	if !ok {
		return 0, false
	}
	tid := slot.TID
	p := &slot.Q
	*p = pending{tid: tid, to: to, nodeID: nodeID, method: m, sent: now, op: op, purpose: why}
	if m.own() {
		p.x = append(p.x[:0], e.out.A.X...)
		if tok := e.peers.Token(to); tok != nil {
			e.out.A.Has |= krpc.HasToken
			e.out.A.Token = tok
		}
	}
	e.inflight.Wake(tid, now.Add(e.cfg.QueryTimeout))
	e.out.T = routing.AppendTID(e.tid[:0], tid)
	e.stats.QueriesOut[m]++
	if !e.send(to) {
		e.inflight.Release(tid) // over MaxDatagram: its timer finds it gone
		return 0, false
	}
	return tid, true
}

func (e *Engine) release(p *pending) { e.inflight.Release(p.tid) }

// handleReply matches a response or error to the query it answers.
func (e *Engine) handleReply(now time.Time, from netip.AddrPort, m *krpc.Msg) {
	slot, _, ok := e.inflight.Match(m.T, from)
	if !ok {
		e.stats.Unsolicited++
		return
	}
	p := &slot.Q
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
		// address, or the reply is forged): let the query time out, and
		// leave the node we asked in its place. Its own answer, if it
		// comes, still counts.
		e.stats.Malformed++
		return
	}
	e.peers.Answered(from, sender)
	if replica.IsAgain(m) && !p.again {
		// The node wants proof that we receive at our address before it
		// stores or answers at length: ask again, with its token, under
		// the same transaction.
		e.peers.SetToken(from, m.R.Token)
		e.askAgain(now, p)
		return
	}
	e.stats.ResponsesIn++
	e.release(p)
	e.heard(now, krpc.NodeInfo{ID: sender, Addr: from})
	switch pc.purpose {
	case forStabilize:
		e.onStabilize(now, &pc, sender, m)
	case forCheck:
		e.onCheck(now, sender, m, from)
	case forNotify:
		e.onNotifyReply(now, &pc, sender, m)
	case forOp:
		e.onResponse(now, &pc, sender, m)
	case forListener:
		e.listen.listeners.Answered(pc.tid)
	}
}

// askAgain sends query p once more, with the token its node gave us.
func (e *Engine) askAgain(now time.Time, p *pending) {
	q := e.newQuery(p.method)
	q.A.Has |= krpc.HasX
	q.A.X = p.x
	if tok := e.peers.Token(p.to); tok != nil {
		q.A.Has |= krpc.HasToken
		q.A.Token = tok
	}
	q.T = routing.AppendTID(e.tid[:0], p.tid)
	p.again, p.sent = true, now
	e.inflight.Wake(p.tid, now.Add(e.cfg.QueryTimeout))
	e.stats.QueriesOut[p.method]++
	e.send(p.to)
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
		if r := &e.ring; !r.handOver.to.IsZero() && r.hasPred && r.pred.ID != p.nodeID {
			// That was the predecessor before; the new one's hand-over
			// waits for its answer.
			e.checkPredecessor(now)
			break
		}
		if err == kademlia.ErrTimeout && e.ring.hasPred && e.ring.pred.ID == p.nodeID {
			// Still only suspect (ring.failed): ask again now, and the
			// second silence drops it into the lost set, as a successor.
			// Dropping it at once left it in no list and not lost, so
			// that this node, which answers for its range, no longer
			// named it to askers as a member down ("l", wire.go).
			e.checkPredecessor(now)
		}
	case forOp:
		if s := e.ops[p.op]; s != nil {
			s.failure(now, e, p, err)
		}
	case forListener:
		if re, ok := err.(*kademlia.RemoteError); ok {
			e.listen.listeners.Refused(p.tid, re.Code)
		} else if n, again := e.listen.listeners.TimedOut(p.tid); again {
			e.notify(now, n)
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

// replyError sends a KRPC error, charged to the byte budget of its
// unproven destination as Kademlia's is.
func (e *Engine) replyError(now time.Time, to netip.AddrPort, t []byte, code int, msg string) {
	kademlia.ErrorMsg(&e.out, t, code, msg, e.cfg.Version)
	if start, ok := e.encode(); ok {
		if why := e.box.Charge(now, e.limiter, to, start); why != 0 {
			e.drop(why)
			return
		}
		e.stats.ErrorsOut++
		e.queue(to, start)
	}
}
