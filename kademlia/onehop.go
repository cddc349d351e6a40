package kademlia

import (
	"net/netip"
	"time"

	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/krpc"
	"github.com/dhtkit/dhtkit/replica"
	"github.com/dhtkit/dhtkit/routing"
	"github.com/dhtkit/dhtkit/store"
)

// One-hop key-value operations (Dynamo's "zero-hop" routing): when this
// node's routing table covers a key's neighbourhood, a KVPut or KVGet goes
// straight to the replicas the table names, with no lookup, which saves
// the lookup's round trip and about half of a put's datagrams. Two checks
// make that safe:
//
//   - The coordinator knows (oneHopCovered). A node closer to the target
//     than the Replicas-th closest node the table knows lies in the prefix
//     subtree of the target of length L, the common prefix of the target
//     and that node (XOR: d(x,t) < d(y,t) implies x shares at least L
//     leading bits with t). A BEP 5 bucket that is not full holds every
//     node the table has heard of in its range (newcomers that answered or
//     queried are never turned away from a bucket with room), so when no
//     full bucket meets that subtree, the table holds every node it has
//     heard of that could be a replica. In a network of fewer than about K
//     nodes per bucket (a cluster of a few dozen with K = 8) that is every
//     key. Every member must also have been heard from directly (an
//     answer or a query) within oneHopFresh and not be bad: a node only
//     others named, or one quiet lately, is for a lookup to find out about.
//   - Each replica confirms. A one-hop query carries the target
//     (krpc.HasTarget on dk_store and dk_fetch); a node answers it only if
//     its own table puts it among the target's Replicas closest, else it
//     refuses with codeNotReplica. A node that joined next to the key and
//     that the coordinator has not heard of yet is known to its
//     neighbours, which are the other replicas: the write is acknowledged
//     only by nodes that are replicas by their own table, exactly what a
//     lookup's last hop would have trusted. A batch of writes or reads
//     to one replica carries no target: the replica checks each record's
//     or key's target and refuses one by one (storebatch.go,
//     fetchbatch.go).
//
// Whatever the one-hop attempt does not settle (a write short of its
// quorum, a read with no quorum of answers, a refusal among them) starts
// again with a lookup (oneHopFallback), as every operation did before. A
// replica that does not know the coordinator (its token check fails) also
// refuses, and the lookup that follows hands out the tokens. A put that
// made its quorum in one hop all the same writes again to a member that
// refused either way (putrest.go).

// codeNotReplica is the error a node answers a one-hop query with when its
// own table does not count it among the target's replicas.
const codeNotReplica = 249

// oneHopFresh is how recently every member must have been heard from
// (an answer or a query) for an operation to skip the lookup. A busy
// cluster hears from its members all the time; after a quiet spell the
// first operation looks up, and its answers make the next ones one hop.
// A lookup is also the liveness check that lets a put refuse before it
// writes anything: within this window of a partition's start a one-hop
// put that ends short of its quorum may leave its record on the members
// it reached (an indeterminate write, as any write that times out).
const oneHopFresh = 5 * time.Second

// oneHopRefresh is how often the summary of full buckets is recomputed. A
// table changes slowly; a replica's own check covers what a stale summary
// misses.
const oneHopRefresh = time.Second

// oneHop is the engine's one-hop state.
type oneHop struct {
	off     bool // tests: always look up
	at      time.Time
	full    []routing.Bucket // the full buckets, contacts left out
	scratch []routing.Contact
}

// kvOneHop starts s (a KVPut or KVGet) without a lookup when the table
// covers target, and reports whether it did.
func (e *Engine) kvOneHop(now time.Time, s *opState, target id.ID) bool {
	if !e.oneHopCovered(now, target) {
		return false
	}
	s.onehop = true
	e.stats.OneHops++
	e.kvReplicas(now, s, nil)
	return true
}

// oneHopCovered reports whether the table holds every node it has heard of
// that could be one of target's replicas (see above).
func (e *Engine) oneHopCovered(now time.Time, target id.ID) bool {
	t, ok := e.table.(*routing.BEP5)
	if !ok || e.onehop.off {
		return false
	}
	n := e.cfg.replicas()
	if n <= 1 {
		return false
	}
	if now.Sub(e.onehop.at) >= oneHopRefresh || e.onehop.at.IsZero() || now.Before(e.onehop.at) {
		e.onehop.at = now
		e.onehop.full = e.onehop.full[:0]
		for _, b := range t.Buckets() {
			if len(b.Contacts) >= t.K() {
				e.onehop.full = append(e.onehop.full, routing.Bucket{Prefix: b.Prefix, PrefixLen: b.PrefixLen})
			}
		}
	}
	cs := t.ClosestAll(target, n, e.onehop.scratch[:0])
	e.onehop.scratch = cs
	// The n-th closest among the contacts and ourselves.
	far, known := id.ID{}, 0
	selfIn := false
	for _, c := range cs {
		if !selfIn && id.CompareDistance(target, e.self, c.ID) < 0 {
			selfIn = true
			if known++; known == n {
				far = e.self
				break
			}
		}
		if c.State == routing.Bad || c.LastSeen.IsZero() || now.Sub(c.LastSeen) > oneHopFresh {
			// Silent, quiet lately, or only others named it: a lookup
			// finds out whether it is there, and who stands in for it.
			return false
		}
		if known++; known == n {
			far = c.ID
			break
		}
	}
	if known < n && !selfIn {
		if known++; known == n {
			far = e.self
		}
	}
	l := 0 // fewer than n known: any node anywhere could be a replica
	if known == n {
		l = id.CommonPrefixLen(target, far)
	}
	for _, b := range e.onehop.full {
		if id.CommonPrefixLen(target, b.Prefix) >= min(l, b.PrefixLen) {
			return false
		}
	}
	return true
}

// markOneHop makes m, a dk_store or dk_fetch of a one-hop operation, carry
// its target, which asks the replica to check that it is one.
func (op *kvOp) markOneHop(m *krpc.Msg) {
	if op.s.onehop {
		m.A.Has |= krpc.HasTarget
		m.A.Target = store.KeyTarget(op.q.Key)
	}
}

// oneHopFallback starts op again with a lookup when its one-hop attempt
// did not settle it, and reports whether it did.
func (e *Engine) oneHopFallback(now time.Time, op *kvOp, out replica.Outcome) bool {
	s := op.s
	if !s.onehop {
		return false
	}
	switch out.Kind {
	case replica.Written:
		return false
	case replica.Found, replica.NotFound:
		if !out.Partial {
			return false
		}
	}
	s.onehop = false
	s.kv = nil
	// A put goes on with the version (and expiry) it began with: the
	// replicas the one hop reached may hold it already, and one put must
	// make one version, not two (a watcher would see the value change).
	if put, ok := s.op.(KVPut); ok {
		s.op = put.With(op.rec.Version, op.rec.Expires)
	}
	e.stats.OneHopFallbacks++
	e.startLookup(now, s, krpc.MethodGet, store.KeyTarget(op.q.Key), nil)
	return true
}

// notReplica answers a one-hop dk_store or dk_fetch (one that carries a
// target) with codeNotReplica when this node's table does not count it
// among the target's replicas, and reports whether it did.
func (e *Engine) notReplica(now time.Time, from netip.AddrPort, q *krpc.Msg) bool {
	if q.A.Has&krpc.HasTarget == 0 || e.isReplica(q.A.Target) {
		return false
	}
	e.replyError(now, from, q.T, codeNotReplica, "not a replica of that target by my table: look it up")
	return true
}

// isReplica reports whether this node is among target's Replicas closest
// nodes by its table (the contacts that are not bad, and itself).
func (e *Engine) isReplica(target id.ID) bool {
	n := e.cfg.replicas()
	closer := 0
	e.onehop.scratch = e.table.Closest(target, n, e.onehop.scratch[:0])
	for _, c := range e.onehop.scratch {
		if id.CompareDistance(target, c.ID, e.self) < 0 {
			closer++
		}
	}
	return closer < n
}
