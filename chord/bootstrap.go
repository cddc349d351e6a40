package chord

import (
	"net/netip"
	"slices"
	"time"

	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/kademlia"
	"github.com/dhtkit/dhtkit/krpc"
)

// Back-off between join attempts: doubling from the first to the last,
// with jitter so that many nodes started together do not retry in
// lockstep.
const (
	joinBackoffMin = time.Second
	joinBackoffMax = time.Minute
)

// joiner finds the node's place on the ring: a lookup of its own id that
// starts at the bootstrap addresses, each tried in turn. The successor it
// finds becomes the first entry of the successor list; stabilize then
// notifies it, and the node becomes its predecessor. When every attempt
// fails, it tries again with back-off, until one answers.
type joiner struct {
	addrs   []netip.AddrPort
	joined  bool
	lookup  kademlia.OpID   // the join lookup in flight, 0 if none
	waiting []kademlia.OpID // Bootstrap operations waiting for the join
	retryAt time.Time       // zero: no retry scheduled
	backoff time.Duration
}

func (b *joiner) start(now time.Time, e *Engine, s *opState, addrs []netip.AddrPort) {
	for _, a := range addrs {
		if a.IsValid() && a.Port() != 0 && !slices.Contains(b.addrs, a) {
			b.addrs = append(b.addrs, a)
		}
	}
	if len(b.addrs) == 0 {
		if len(e.ring.succs) > 0 {
			s.result.Nodes = e.Successors()
			e.finish(now, s, nil)
			return
		}
		e.finish(now, s, kademlia.ErrNoContacts)
		return
	}
	b.waiting = append(b.waiting, s.id)
	if b.lookup != 0 {
		return // a join is under way; this op finishes with it
	}
	b.attempt(now, e)
}

// attempt starts a join lookup through the bootstrap addresses.
func (b *joiner) attempt(now time.Time, e *Engine) {
	b.retryAt = time.Time{}
	s := e.newOp(now, nil, true)
	s.join = true
	b.lookup = s.id
	// Rotate the list so that each attempt starts with another address.
	addrs := slices.Clone(b.addrs)
	if n := len(addrs); n > 1 {
		k := e.rng.IntN(n)
		addrs = append(addrs[k:], addrs[:k]...)
	}
	e.startLookup(now, s, e.self, addrs)
}

// joinDone handles the end of a join lookup.
func (b *joiner) joinDone(now time.Time, e *Engine, res *kademlia.Result) {
	b.lookup = 0
	// The answer is our id's successor and the nodes after it. A node
	// restarted before the ring noticed it was gone is that successor
	// itself, still listed by the others: its successors are the nodes
	// after it. (setSuccs ends a list at the node itself, so a list
	// starting with it left the node joined with no successor.)
	nodes := res.Nodes
	for len(nodes) > 0 && nodes[0].ID == e.self {
		nodes = nodes[1:]
	}
	if res.Err != nil || len(nodes) == 0 {
		b.backoff = min(max(2*b.backoff, joinBackoffMin), joinBackoffMax)
		b.retryAt = now.Add(e.jitter(b.backoff))
		return
	}
	b.backoff = 0
	if e.ring.setSuccs(nodes, nil) {
		e.stats.SuccessorChanges++
	}
	b.joined = true
	r := &e.ring
	// Stabilize at once (that notifies the successor), then fill the
	// finger table back to back rather than one finger per period.
	r.nextStabilize = now
	r.nextFix = now
	r.fixSlot = id.Bits - 1
	r.filling = true
	waiting := b.waiting
	b.waiting = nil
	for _, op := range waiting {
		if s := e.ops[op]; s != nil {
			s.result.Nodes = append([]krpc.NodeInfo(nil), e.ring.succs...)
			s.result.Stats = res.Stats
			e.finish(now, s, nil)
		}
	}
}

// rejoin joins again when the node has lost every neighbour.
func (b *joiner) rejoin(now time.Time, e *Engine) {
	if len(b.addrs) == 0 || b.lookup != 0 || !b.retryAt.IsZero() {
		return
	}
	b.attempt(now, e)
}

func (b *joiner) next() (time.Time, bool) { return b.retryAt, !b.retryAt.IsZero() }

func (b *joiner) tick(now time.Time, e *Engine) {
	if !b.retryAt.IsZero() && !now.Before(b.retryAt) {
		b.attempt(now, e)
	}
}
