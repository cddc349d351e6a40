package kademlia

import (
	"net/netip"
	"slices"
	"time"

	"github.com/dhtkit/dhtkit/krpc"
)

// Back-off between probes of one bootstrap address: doubling from the
// first to the last, with jitter so that many nodes started together do
// not probe in lockstep.
const (
	bootBackoffMin = time.Second
	bootBackoffMax = time.Minute
)

// bootstrapper joins the network. It probes every bootstrap address with
// find_node(self), retrying each with back-off until one answers; then it
// looks up our own id, seeded with what that node returned, to fill the
// nearby buckets, and refreshes every other bucket once. When the table
// empties later, it starts over.
type bootstrapper struct {
	addrs   []bootAddr
	probing bool
	// checkAt is when a probing bootstrapper next looks whether nodes
	// that reached us meanwhile fill the table (bootTableCheck).
	checkAt time.Time
	self    OpID   // the self-lookup in progress, 0 if none
	waiting []OpID // Bootstrap operations waiting for the join to finish
	joined  bool
}

type bootAddr struct {
	addr     netip.AddrPort
	next     time.Time
	backoff  time.Duration
	inflight bool
	pending  uint8     // probes to it awaiting an answer or their timeout
	resent   uint8     // probes sent again in this round
	resendAt time.Time // when the round's probe is sent again
}

// A probe of the first round after a start or a rejoin is sent again
// bootResends times, bootResendMin after it and then at doubling
// intervals, while it has no answer. Nodes started together probe a
// bootstrap node that is not listening yet: waiting out the hard timeout
// (2 s) and then a back-off made a new cluster take 3–4 s to join, where
// a resent probe finds the node a quarter of a second after it listens.
// Later rounds back off as before.
const (
	bootResends   = 3
	bootResendMin = 250 * time.Millisecond
)

// bootTableCheck is how often a bootstrapper whose addresses stay silent
// looks at its table: a node restarted from a data directory whose saved
// contacts are all gone (the others moved to new ports) is still reached
// by the nodes that know it, and those queries put them in its table. It
// joins through them once every address has let a probe time out, rather
// than wait, probing dead addresses with a back-off, while it refuses
// every read and write as not joined (up to dhtkit.JoinWait).
const bootTableCheck = 250 * time.Millisecond

func (b *bootstrapper) start(now time.Time, e *Engine, s *opState, addrs []netip.AddrPort) {
	for _, a := range addrs {
		if !a.IsValid() || a.Port() == 0 {
			continue
		}
		if !slices.ContainsFunc(b.addrs, func(x bootAddr) bool { return x.addr == a }) {
			b.addrs = append(b.addrs, bootAddr{addr: a})
		}
	}
	if len(b.addrs) == 0 && e.table.Len() == 0 {
		e.finish(now, s, ErrNoContacts)
		return
	}
	b.waiting = append(b.waiting, s.id)
	if b.self != 0 {
		return // a join is under way; this op finishes with it
	}
	if len(b.addrs) == 0 {
		b.selfLookup(now, e, nil)
		return
	}
	b.probing = true
	for i := range b.addrs {
		if !b.addrs[i].inflight {
			b.addrs[i].next = now
		}
	}
	b.tick(now, e)
}

// rejoin starts over when the table has emptied.
func (b *bootstrapper) rejoin(now time.Time, e *Engine) {
	if len(b.addrs) == 0 || b.probing || b.self != 0 {
		return
	}
	b.probing = true
	for i := range b.addrs {
		b.addrs[i].next = now
		b.addrs[i].backoff = 0
	}
	b.tick(now, e)
}

// next is when the next probe is due.
func (b *bootstrapper) next() (time.Time, bool) {
	if !b.probing {
		return time.Time{}, false
	}
	t, ok := b.checkAt, !b.checkAt.IsZero()
	for _, a := range b.addrs {
		at := a.next
		if a.inflight {
			if !a.resends() {
				continue
			}
			at = a.resendAt
		}
		if !ok || at.Before(t) {
			t, ok = at, true
		}
	}
	return t, ok
}

// resends reports whether a's probe in flight is to be sent again.
func (a *bootAddr) resends() bool { return a.backoff == 0 && a.resent < bootResends }

func (b *bootstrapper) tick(now time.Time, e *Engine) {
	if !b.probing {
		return
	}
	if b.self == 0 && !b.checkAt.After(now) {
		if e.contacts = e.table.Closest(e.self, 1, e.contacts[:0]); len(e.contacts) > 0 && b.allSilent() {
			b.probing, b.checkAt = false, time.Time{}
			b.selfLookup(now, e, nil) // seeded from the table
			return
		}
		b.checkAt = now.Add(bootTableCheck)
	}
	for i := range b.addrs {
		a := &b.addrs[i]
		switch {
		case a.inflight && a.resends() && !a.resendAt.After(now):
			a.resent++
			a.resendAt = now.Add(bootResendMin << a.resent)
			b.send(now, e, a)
		case a.inflight || a.next.After(now):
		default:
			a.resent = 0
			a.resendAt = now.Add(bootResendMin)
			if b.send(now, e, a) {
				a.inflight = true
			}
		}
	}
}

// allSilent reports whether every bootstrap address has let a probe time
// out: only then does the table stand in for them (a live address given
// to merge networks is always heard).
func (b *bootstrapper) allSilent() bool {
	for _, a := range b.addrs {
		if a.backoff == 0 {
			return false
		}
	}
	return true
}

// send probes a with find_node(self).
func (b *bootstrapper) send(now time.Time, e *Engine, a *bootAddr) bool {
	m := e.newQuery(krpc.MethodFindNode)
	m.A.Has |= krpc.HasTarget
	m.A.Target = e.self
	if !e.sendQuery(now, a.addr, [20]byte{}, 0, forBootstrap) {
		return false
	}
	a.pending++
	return true
}

func (b *bootstrapper) find(addr netip.AddrPort) *bootAddr {
	for i := range b.addrs {
		if b.addrs[i].addr == addr {
			return &b.addrs[i]
		}
	}
	return nil
}

// answered is called when a bootstrap address answered our probe.
func (b *bootstrapper) answered(now time.Time, e *Engine, from netip.AddrPort, sender [20]byte, m *krpc.Msg) {
	if a := b.find(from); a != nil {
		a.inflight = false
		a.backoff = 0
		a.pending = max(a.pending, 1) - 1
	}
	b.probing = false
	if b.self != 0 {
		return
	}
	seeds := []krpc.NodeInfo{{ID: sender, Addr: from}}
	if e.cfg.IPv6 {
		seeds = append(seeds, m.R.Nodes6...)
	} else {
		seeds = append(seeds, m.R.Nodes...)
	}
	b.selfLookup(now, e, seeds)
}

// timedOut is called when a probe got no useful answer.
func (b *bootstrapper) timedOut(now time.Time, e *Engine, addr netip.AddrPort) {
	a := b.find(addr)
	if a == nil {
		return
	}
	if a.pending = max(a.pending, 1) - 1; a.pending > 0 && a.inflight {
		return // a probe sent again may still be answered
	}
	a.inflight = false
	a.backoff = min(max(2*a.backoff, bootBackoffMin), bootBackoffMax)
	jitter := time.Duration(e.rng.Int64N(int64(a.backoff / 4)))
	a.next = now.Add(a.backoff + jitter)
}

func (b *bootstrapper) selfLookup(now time.Time, e *Engine, seeds []krpc.NodeInfo) {
	e.lastOp++
	s := &opState{id: e.lastOp, op: FindNode{Target: e.self}, internal: true, started: now}
	e.ops[s.id] = s
	b.self = s.id
	e.startLookup(now, s, krpc.MethodFindNode, e.self, seeds)
}

// finished is told of every operation that ends. When the self-lookup
// ends, the waiting Bootstrap operations end with its result and the
// other buckets are refreshed.
func (b *bootstrapper) finished(now time.Time, e *Engine, s *opState) {
	if _, ok := s.op.(Bootstrap); ok {
		b.waiting = slices.DeleteFunc(b.waiting, func(x OpID) bool { return x == s.id })
		return
	}
	if s.id != b.self {
		return
	}
	b.self = 0
	res := s.result
	if res.Err != nil && e.table.Len() == 0 {
		b.rejoin(now, e) // everyone we heard of vanished: probe again
		return
	}
	b.joined = true
	waiting := b.waiting
	b.waiting = nil
	for _, w := range waiting {
		if ws := e.ops[w]; ws != nil {
			ws.result.Nodes = res.Nodes
			ws.result.Stats = res.Stats
			e.finish(now, ws, nil)
		}
	}
	for _, t := range e.table.Refresh(now, 0, nil) {
		e.startOp(now, FindNode{Target: t}, true)
	}
}
