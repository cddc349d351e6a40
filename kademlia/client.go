package kademlia

import (
	"net/netip"
	"time"

	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/krpc"
	"github.com/dhtkit/dhtkit/routing"
)

// pending is a query of ours awaiting its answer (the engine's record in
// routing.InFlight, which draws its random transaction id).
type pending struct {
	tid     uint16
	to      netip.AddrPort
	nodeID  id.ID // who we think answers; zero when unknown (bootstrap, ping)
	method  krpc.Method
	sent    time.Time
	hard    time.Time // the query fails at this time
	stalled bool      // past its soft timeout: no longer counted as in flight
	op      OpID      // 0 for the table's own pings
	purpose purpose
}

type purpose uint8

const (
	forOp        purpose = iota // a query of an operation (lookup, ping, ...)
	forTablePing                // ping-before-evict
	forBootstrap                // a probe of a bootstrap address
	forNotify                   // dk_notify to a listener
)

// rttEstimator keeps a smoothed round-trip time and its variance over all
// responses (RFC 6298), from which per-query soft timeouts are derived:
// a query that takes longer than most stops holding up a lookup.
type rttEstimator struct {
	srtt, rttvar time.Duration
	samples      int
}

func (r *rttEstimator) init(initial time.Duration) {
	r.srtt = initial / 4
	r.rttvar = initial / 8
}

func (r *rttEstimator) add(sample time.Duration) {
	if sample <= 0 {
		sample = time.Microsecond
	}
	if r.samples == 0 {
		r.srtt, r.rttvar = sample, sample/2
	} else {
		diff := r.srtt - sample
		if diff < 0 {
			diff = -diff
		}
		r.rttvar = (3*r.rttvar + diff) / 4
		r.srtt = (7*r.srtt + sample) / 8
	}
	r.samples++
}

// softTimeout is how long a query may take before the lookup moves on
// without it, for a contact whose own RTT is rtt (0 when unknown).
func (e *Engine) softTimeout(rtt time.Duration) time.Duration {
	t := e.rtt.srtt + 4*e.rtt.rttvar
	if rtt > 0 && 2*rtt > t {
		t = 2 * rtt
	}
	return min(max(t, e.cfg.MinQueryTimeout), e.cfg.QueryTimeout)
}

// query builds the query in e.out around the given method and sends it;
// the caller fills e.out.A after newQuery and before sendQuery.
func (e *Engine) newQuery(method krpc.Method) *krpc.Msg {
	m := &e.out
	m.Reset()
	m.Y = krpc.Query
	m.Q = method
	m.A.Has = krpc.HasID
	m.A.ID = e.self
	m.V = e.cfg.Version
	m.RO = e.cfg.ReadOnly
	return m
}

// sendQuery sends e.out to `to` and tracks it. It returns false when every
// transaction id is in use.
func (e *Engine) sendQuery(now time.Time, to netip.AddrPort, nodeID id.ID, op OpID, why purpose) bool {
	_, ok := e.sendQueryTID(now, to, nodeID, op, why)
	return ok
}

// sendQueryTID is sendQuery that also returns the transaction id.
func (e *Engine) sendQueryTID(now time.Time, to netip.AddrPort, nodeID id.ID, op OpID, why purpose) (uint16, bool) {
	slot, ok := e.inflight.Start(e.rng.Uint32, to)
	if !ok {
		return 0, false
	}
	tid := slot.TID
	var rtt time.Duration
	if !nodeID.IsZero() {
		if c, ok := e.table.Get(nodeID); ok {
			rtt = c.RTT
		}
	}
	p := &slot.Q
	*p = pending{
		tid: tid, to: to, nodeID: nodeID, method: e.out.Q,
		sent: now, hard: now.Add(e.cfg.QueryTimeout), op: op, purpose: why,
	}
	soft := now.Add(e.softTimeout(rtt))
	if !soft.Before(p.hard) {
		p.stalled = true
		soft = p.hard
	}
	e.inflight.Wake(tid, soft)
	e.out.T = routing.AppendTID(e.tid[:0], tid)
	if !e.send(to) {
		e.release(p) // over MaxDatagram: its timers find it gone
		return 0, false
	}
	e.stats.QueriesOut[e.out.Q]++
	return tid, true
}

func (e *Engine) release(p *pending) { e.inflight.Release(p.tid) }

// handleReply matches a response or error to the query it answers.
func (e *Engine) handleReply(now time.Time, from netip.AddrPort, m *krpc.Msg) {
	slot, tid, ok := e.inflight.Match(m.T, from)
	if !ok {
		// Not a query in flight to that address; perhaps one that timed
		// out lately (probe.go), whose answer still refutes a failure.
		if sender, ok := m.SenderID(); slot == nil && m.Y == krpc.Response && ok && e.lateReply(now, tid, from, sender, m.RO) {
			return
		}
		e.stats.Unsolicited++
		return
	}
	p := &slot.Q
	if m.Y == krpc.Error {
		e.stats.ErrorsIn++
		pc := *p
		e.release(p)
		e.onError(now, &pc, m)
		return
	}
	orig, pc := p, *p // orig goes back to the free list; handlers may send and reuse it
	p = &pc
	e.stats.ResponsesIn++
	sender, ok := m.SenderID()
	if !ok || sender == e.self {
		e.stats.Malformed++
		return // not an answer we can use; let it time out (orig stays pending)
	}
	if !p.nodeID.IsZero() && p.nodeID != sender {
		// The address answers with another id: the reply is forged (an
		// off-path attacker who guessed the transaction), or the node
		// restarted with a new id. Either way it is not the answer we
		// wait for: count it and let the query run on. The real node's
		// answer still counts, so a forger can neither fail nor evict it
		// (issue 11); a node that did restart never answers as itself,
		// times out, and goes bad as any silent contact does.
		e.stats.Malformed++
		return
	}
	rtt := now.Sub(p.sent)
	e.rtt.add(rtt)
	e.votes.add(m.IP)
	if !m.RO {
		e.observe(now, sender, from, routing.Responded, rtt)
	}
	e.silent.forget(sender)
	e.release(orig)
	switch p.purpose {
	case forTablePing:
		delete(e.pinging, p.nodeID)
	case forBootstrap:
		e.boot.answered(now, e, from, sender, m)
	case forNotify:
		e.listeners.Answered(p.tid)
	case forOp:
		e.onResponse(now, p, sender, m)
	}
}

// onStalled is called when a query passes its soft timeout.
func (e *Engine) onStalled(now time.Time, p *pending) {
	if p.purpose != forOp {
		return
	}
	// Routed as answers are (onResponse): once a lookup has handed over
	// to the replicas (op.kv), its late queries are no longer its to
	// judge; ended a second time, it would start its writes again.
	op := e.ops[p.op]
	switch {
	case op == nil:
	case op.kv != nil:
		if lo, ok := op.kv.(*listenOp); ok && !lo.own(p) {
			if lo.lookupReply(p) {
				op.lookup.stalled(now, e, p)
			}
			return
		}
		// Replica reads and writes, and pushes, ask once more.
		if kv, ok := op.kv.(interface {
			stalled(now time.Time, e *Engine, p *pending)
		}); ok {
			kv.stalled(now, e, p)
		}
	case op.lookup != nil && p.method == op.lookup.method:
		op.lookup.stalled(now, e, p)
	}
}

// onTimeout is called when a query passes its hard timeout.
func (e *Engine) onTimeout(now time.Time, p *pending) {
	e.stats.Timeouts++
	pc := *p
	p = &pc
	e.inflight.Release(pc.tid)
	e.timedOut(now, p)
	if !p.nodeID.IsZero() {
		e.table.Failed(now, p.nodeID)
		if c, ok := e.table.Get(p.nodeID); !ok || !c.LastSeen.After(p.sent) {
			e.silent.mark(now, p.nodeID) // not heard from since we asked
		}
	}
	switch p.purpose {
	case forTablePing:
		delete(e.pinging, p.nodeID)
	case forBootstrap:
		e.boot.timedOut(now, e, p.to)
	case forNotify:
		// Keep the registration and send the change again: a lost
		// datagram is no reason to stop, and a dead listener's
		// registration expires on its own.
		if n, again := e.listeners.TimedOut(p.tid); again {
			e.notify(now, n)
		}
	case forOp:
		e.onFailure(now, p, ErrTimeout)
	}
}

// onError handles a KRPC error reply to one of our queries.
func (e *Engine) onError(now time.Time, p *pending, m *krpc.Msg) {
	err := &RemoteError{Code: m.E.Code, Msg: string(m.E.Msg)}
	if !p.nodeID.IsZero() {
		// An error reply still proves the node is alive at that address.
		e.table.Observe(now, p.nodeID, p.to, routing.Responded, now.Sub(p.sent))
	}
	switch p.purpose {
	case forTablePing:
		delete(e.pinging, p.nodeID)
	case forBootstrap:
		// It answered, even if with an error: it is alive, but gave us no
		// nodes. Keep trying the others.
		e.boot.timedOut(now, e, p.to)
	case forNotify:
		e.listeners.Refused(p.tid, err.Code)
	case forOp:
		e.onFailure(now, p, err)
	}
}

// observe tells the table about a node and sends the ping it asks for.
func (e *Engine) observe(now time.Time, nodeID id.ID, addr netip.AddrPort, how routing.Source, rtt time.Duration) {
	if e.cfg.SecureIDs && !id.IsSecure(nodeID, addr.Addr()) {
		return
	}
	c, ping := e.table.Observe(now, nodeID, addr, how, rtt)
	if ping {
		e.tablePing(now, c.ID, c.Addr)
	}
}

// tablePing pings a contact for the table's sake, once at a time.
func (e *Engine) tablePing(now time.Time, x id.ID, addr netip.AddrPort) {
	if e.pinging[x] {
		return
	}
	if e.pinging == nil {
		e.pinging = make(map[id.ID]bool)
	}
	e.pinging[x] = true
	e.newQuery(krpc.MethodPing)
	e.sendQuery(now, addr, x, 0, forTablePing)
}
