package chord

import (
	"net/netip"
	"slices"
	"time"

	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/kademlia"
	"github.com/dhtkit/dhtkit/krpc"
	"github.com/dhtkit/dhtkit/replica"
	"github.com/dhtkit/dhtkit/routing"
	"github.com/dhtkit/dhtkit/store"
)

// ring is the node's view of its neighbourhood: successor list,
// predecessor and fingers, with the timers that maintain them.
type ring struct {
	self    id.ID
	r       int
	succs   []krpc.NodeInfo // nearest first; never self, no duplicates
	pred    krpc.NodeInfo
	hasPred bool
	// left: the node said goodbye (a hand-over): it no longer notifies
	// its successor, which would take it back as its predecessor.
	left bool
	// blindFirst: the arc to the first successor may hold nodes the node
	// never heard of; blindAt: the first entry past such an arc, as the
	// successor said (blind.go).
	blindFirst bool
	blindAt    id.ID
	// reach is the last entry of the last successor list known whole
	// (nothing blind in it); lostPreds the predecessor lost last and the
	// one before it, as the predecessor check last heard (pred2): how a
	// node and its fallback successor tell what lies between them
	// (blind.go).
	reach     id.ID
	pred2     krpc.NodeInfo
	lostPreds []krpc.NodeInfo
	// fingers holds the distinct nodes of the finger table, sorted by
	// clockwise distance from self. Finger i is the first of them at or
	// after self+2^i; keeping nodes rather than 160 slots costs log N
	// entries instead of 160 and makes a stale entry easy to drop.
	fingers []krpc.NodeInfo

	nextStabilize, nextFix, nextCheck time.Time
	stabilizing, checking             bool
	// lastEarly is the last stabilize brought forward by a hint, early
	// that the next one is (hint.go).
	lastEarly time.Time
	early     bool
	// handOver waits for a new predecessor to prove its address.
	handOver handOver
	// told is the successor list as the predecessor, toldTo, was last
	// hinted of it.
	told    []krpc.NodeInfo
	toldTo  id.ID
	fixSlot int           // the next finger to refresh, counting down from 159
	fixing  kademlia.OpID // the finger lookup in flight
	filling bool          // first pass after a join: refresh fingers back to back

	lost []lostNode // neighbours that stopped answering, probed until they do (probe.go)
	// suspects counts the unanswered queries in a row of ring entries
	// and remembered nodes that have not missed routing.BadFails yet
	// (failed); bounded by those, since forget drops a node's count with
	// it.
	suspects map[id.ID]int
	// members are the nodes heard from, or listed by a successor, within
	// Config.DownFor: they count in replica sets (members.go).
	members map[id.ID]member
}

func (r *ring) init(self id.ID, n int) {
	r.self, r.r = self, n
	r.fixSlot = id.Bits - 1
}

// successor is the first successor, or false when the node is alone.
func (r *ring) successor() (krpc.NodeInfo, bool) {
	if len(r.succs) == 0 {
		return krpc.NodeInfo{}, false
	}
	return r.succs[0], true
}

// dist is the clockwise distance from the node to x.
func (r *ring) dist(x id.ID) id.ID { return id.RingDistance(r.self, x) }

// setSuccs makes first, then rest, the successor list: the node itself
// ends it (beyond it the list would repeat), duplicates and nodes out of
// ring order are skipped, and it is cut at r entries.
func (r *ring) setSuccs(first []krpc.NodeInfo, rest []krpc.NodeInfo) bool {
	old, had := r.successor()
	out := make([]krpc.NodeInfo, 0, r.r)
	var last id.ID // the previous entry's distance: entries must go clockwise
	for _, list := range [][]krpc.NodeInfo{first, rest} {
		for _, n := range list {
			if len(out) == r.r {
				break
			}
			if n.ID == r.self || n.ID.IsZero() || !n.Addr.IsValid() {
				if n.ID == r.self {
					goto done
				}
				continue
			}
			d := r.dist(n.ID)
			if len(out) > 0 && id.Compare(d, last) <= 0 {
				continue
			}
			out = append(out, n)
			last = d
		}
	}
done:
	r.succs = out
	now, has := r.successor()
	return had != has || now.ID != old.ID
}

// addFinger records n in the finger set.
func (r *ring) addFinger(n krpc.NodeInfo) {
	if n.ID == r.self || n.ID.IsZero() || !n.Addr.IsValid() {
		return
	}
	d := r.dist(n.ID)
	i, found := slices.BinarySearchFunc(r.fingers, d, func(f krpc.NodeInfo, d id.ID) int {
		return id.Compare(r.dist(f.ID), d)
	})
	if found {
		r.fingers[i] = n // same id: the newest address wins
		return
	}
	r.fingers = slices.Insert(r.fingers, i, n)
}

// setFinger records that s is the successor of start: no live node lies
// in [start, s), so fingers there are stale.
func (r *ring) setFinger(start id.ID, s krpc.NodeInfo) {
	r.fingers = slices.DeleteFunc(r.fingers, func(f krpc.NodeInfo) bool {
		return f.ID == start || id.Between(f.ID, start, s.ID) && f.ID != s.ID
	})
	r.addFinger(s)
}

// finger returns finger i: the first known node at or after self+2^i.
func (r *ring) finger(i int) (krpc.NodeInfo, bool) {
	if i < 0 || i >= id.Bits {
		return krpc.NodeInfo{}, false
	}
	start := id.AddPow2(r.self, i)
	best, ok := krpc.NodeInfo{}, false
	var bd id.ID
	consider := func(n krpc.NodeInfo) {
		if n.ID != start && !id.Between(n.ID, start, r.self) {
			return // before start
		}
		d := id.RingDistance(start, n.ID)
		if !ok || id.Compare(d, bd) < 0 {
			best, bd, ok = n, d, true
		}
	}
	for _, n := range r.succs {
		consider(n)
	}
	for _, n := range r.fingers {
		consider(n)
	}
	return best, ok
}

// failed records that x left a query unanswered. A neighbour that
// misses routing.BadFails queries in a row is dropped from the successor
// list, the fingers and the predecessor, and kept in the lost set, to be
// probed until it answers again (probe.go); before that it is only
// suspect (SWIM's suspicion, Kademlia's questionable), so that one lost
// datagram does not cost a live successor its place: under 10% loss,
// dropping at the first timeout kept the successor lists, and so the
// replica sets, wrong much of the time. Any answer clears the suspicion
// (heard). The caller that needs an answer now (stabilize) asks again,
// and the second silence drops it.
func (r *ring) failed(now time.Time, x id.ID, e *Engine) {
	n, ok := r.known(x)
	if !ok {
		// A remembered node (members.go) that stops answering is lost as
		// a ring entry is, so that it counts as down, not asked again.
		var m member
		m, ok = r.members[x]
		n = m.info
	}
	if !ok {
		r.forget(x, e)
		return
	}
	if r.suspects[x]+1 < routing.BadFails {
		if r.suspects == nil {
			r.suspects = make(map[id.ID]int)
		}
		r.suspects[x]++
		return
	}
	delete(r.suspects, x)
	e.lose(now, n)
	r.forget(x, e)
}

// loseSkipped records as lost the nodes of the successor list before
// that the one after (taken from our successor's list) skips although
// they lie within it (or anywhere, when whole says the new list holds the
// whole ring we know): our successor no longer holds them alive, so they
// are lost, to be probed and to count as down members of their keys'
// replica sets for DownFor, not silently forgotten. Forgetting them let a
// node cut off with a minority of the ring drop the other side from
// everything it knew, and then count its quorum among the nodes it still
// reached. A live one answers its first probe and is back at once.
func (e *Engine) loseSkipped(now time.Time, before, after []krpc.NodeInfo, whole bool) {
	r := &e.ring
	var last id.ID
	if len(after) > 0 {
		last = r.dist(after[len(after)-1].ID)
	}
	for _, n := range before {
		if slices.ContainsFunc(after, func(a krpc.NodeInfo) bool { return a.ID == n.ID }) {
			continue
		}
		if whole || len(after) > 0 && id.Compare(r.dist(n.ID), last) < 0 {
			if _, still := r.known(n.ID); !still {
				e.lose(now, n)
			}
		}
	}
}

// known returns the ring's entry for x, if it holds one.
func (r *ring) known(x id.ID) (krpc.NodeInfo, bool) {
	if r.hasPred && r.pred.ID == x {
		return r.pred, true
	}
	for _, list := range [][]krpc.NodeInfo{r.succs, r.fingers} {
		if i := slices.IndexFunc(list, func(n krpc.NodeInfo) bool { return n.ID == x }); i >= 0 {
			return list[i], true
		}
	}
	return krpc.NodeInfo{}, false
}

// addrOf returns the address the node knows x at: from its ring, its
// lost set or the nodes it remembers.
func (r *ring) addrOf(x id.ID) (netip.AddrPort, bool) {
	if n, ok := r.known(x); ok {
		return n.Addr, true
	}
	if i := r.findLost(x); i >= 0 {
		return r.lost[i].info.Addr, true
	}
	if m, ok := r.members[x]; ok {
		return m.info.Addr, true
	}
	return netip.AddrPort{}, false
}

// forget drops x from the successor list, the fingers and the
// predecessor: a node that failed, or one that said goodbye.
func (r *ring) forget(x id.ID, e *Engine) {
	delete(r.suspects, x)
	first, had := r.successor()
	r.succs = slices.DeleteFunc(r.succs, func(n krpc.NodeInfo) bool { return n.ID == x })
	r.fingers = slices.DeleteFunc(r.fingers, func(n krpc.NodeInfo) bool { return n.ID == x })
	if r.hasPred && r.pred.ID == x {
		r.hasPred = false
		r.lostPreds = append(r.lostPreds[:0], r.pred)
		if !r.pred2.ID.IsZero() && r.pred2.ID != r.self {
			r.lostPreds = append(r.lostPreds, r.pred2)
		}
	}
	if now, has := r.successor(); had && (!has || now.ID != first.ID) {
		e.stats.SuccessorChanges++
		e.headMoved()
	}
}

// owns reports whether the node is the successor of t as far as it knows:
// t lies in (pred, self].
func (r *ring) owns(t id.ID) bool {
	if t == r.self {
		return true
	}
	return r.hasPred && id.Between(t, r.pred.ID, r.self)
}

// preceding appends to dst up to n known nodes that lie strictly between
// the node and t, the closest predecessors of t first: the next hops of a
// lookup of t.
func (r *ring) preceding(t id.ID, n int, dst []krpc.NodeInfo) []krpc.NodeInfo {
	base := len(dst)
	add := func(c krpc.NodeInfo) {
		if c.ID == t || !id.Between(c.ID, r.self, t) {
			return
		}
		for _, d := range dst[base:] {
			if d.ID == c.ID {
				return
			}
		}
		dst = append(dst, c)
	}
	for _, c := range r.succs {
		add(c)
	}
	for _, c := range r.fingers {
		add(c)
	}
	if r.hasPred {
		add(r.pred)
	}
	cands := dst[base:]
	slices.SortFunc(cands, func(a, b krpc.NodeInfo) int {
		return id.Compare(id.RingDistance(a.ID, t), id.RingDistance(b.ID, t))
	})
	return dst[:base+min(n, len(cands))]
}

// answer appends to dst what the node knows of the successor of t and the
// nodes after it, up to k, and reports whether that is the full answer:
// t lies in (pred, self] (the node itself comes first) or at the head of
// the successor list. When t falls among the last entries of the list,
// too few nodes follow it: the entries are a partial answer (partial
// true, done false), and succs[i-1], whose own list starts at t's
// successor, is the better node to ask. A list shorter than the ring's
// Successors holds the whole ring only while the node has lost no one
// (within DownFor): one cut off with part of the ring holds a short list
// of its own side, and the nodes after t that it never listed are then
// members of t's replica set it cannot name. Its answer is partial, so
// that the asker goes on to t's successor (lookup.next).
func (e *Engine) answer(now time.Time, t id.ID, k int, dst []krpc.NodeInfo) (nodes []krpc.NodeInfo, done, partial, blind bool) {
	r := &e.ring
	mark, isBlind := e.blindFrom(now)
	owns := r.owns(t)
	if owns && e.predBlind(now, t) || len(r.succs) == 0 && e.lostWithin(now) {
		// Nodes this node never heard of may own t (blind.go), or it lost
		// every successor and is not alone: it names itself only as the
		// node to ask, and vouches for nothing.
		return append(dst, krpc.NodeInfo{ID: e.self}), false, true, true
	}
	if owns || len(r.succs) == 0 {
		dst = append(dst, krpc.NodeInfo{ID: e.self})
		for _, s := range r.succs {
			if len(dst) == k {
				break
			}
			if isBlind && r.beyondBlind(s.ID, mark) {
				return dst, false, true, false // the rest lie past a blind arc (blind.go)
			}
			dst = append(dst, s)
		}
		return dst, true, false, false
	}
	prev := e.self
	for i, s := range r.succs {
		if id.Between(t, prev, s.ID) {
			base := len(dst)
			for _, x := range r.succs[i:] {
				if len(dst) == k {
					break
				}
				if isBlind && r.beyondBlind(x.ID, mark) {
					// t's members from here on may be nodes this node never
					// heard of. When that is all of them, it names the first
					// only, as the node to ask, and vouches for nothing.
					if len(dst) == base {
						return append(dst, x), false, true, true
					}
					return dst, false, true, false
				}
				dst = append(dst, x)
			}
			whole := len(r.succs) < r.r && !e.lostWithin(now)
			if whole {
				// The list holds the whole ring: go on around it, through
				// this node, so that a small ring still gives k nodes.
				if len(dst) < k {
					dst = append(dst, krpc.NodeInfo{ID: e.self})
				}
				for _, x := range r.succs[:i] {
					if len(dst) == k {
						break
					}
					dst = append(dst, x)
				}
			}
			if len(r.succs)-i < k && !whole {
				return dst, false, true, false
			}
			return dst, true, false, false
		}
		prev = s.ID
	}
	return dst, false, false, false
}

// stabilize asks the successor for its predecessor and successor list.
func (e *Engine) stabilize(now time.Time) {
	r := &e.ring
	if r.stabilizing {
		return
	}
	succ, ok := r.successor()
	if !ok {
		// Alone, or every successor failed: fall back on whatever else we
		// know, nearest first; a node that was notified by someone while
		// alone takes that node as its successor (the two-node ring).
		var cands []krpc.NodeInfo
		cands = append(cands, r.fingers...)
		if r.hasPred {
			cands = append(cands, r.pred)
		}
		if len(cands) == 0 {
			// Nobody left to ask: join again through the bootstrap
			// nodes, if there are any.
			e.boot.rejoin(now, e)
			return
		}
		slices.SortFunc(cands, func(a, b krpc.NodeInfo) int { return id.Compare(r.dist(a.ID), r.dist(b.ID)) })
		r.setSuccs(cands[:1], nil)
		e.fellBack(now)
		e.stats.SuccessorChanges++
		succ = r.succs[0]
	}
	e.newQuery(mGetPredecessor)
	if e.sendQuery(now, mGetPredecessor, succ.Addr, succ.ID, 0, forStabilize) {
		r.stabilizing = true
	}
}

// onStabilize applies the successor's answer: adopt its predecessor if
// that one lies between us, else take its successor list and notify it.
func (e *Engine) onStabilize(now time.Time, p *pending, sender id.ID, m *krpc.Msg) {
	r := &e.ring
	r.stabilizing = false
	succ, ok := r.successor()
	if !ok || succ.ID != sender {
		return // the list changed meanwhile
	}
	nb, err := decodeNeighbors(m.R.X, sender, p.to)
	if err != nil {
		e.stats.Malformed++
		return
	}
	if !nb.pred.ID.IsZero() && nb.pred.ID != e.self && nb.pred.ID != succ.ID && id.Between(nb.pred.ID, e.self, succ.ID) {
		// A node joined between us: it is our successor now, provided it
		// answers. Ask it at once rather than a period later.
		r.setSuccs([]krpc.NodeInfo{nb.pred}, r.succs)
		e.stats.SuccessorChanges++
		e.stabilize(now)
		return
	}
	old := slices.Clone(r.succs)
	for _, n := range nb.succs {
		r.remember(now, n)
	}
	r.setSuccs([]krpc.NodeInfo{succ}, nb.succs)
	e.sawList(now, nb)
	e.loseSkipped(now, old, r.succs, len(r.succs) < r.r)
	if r.left {
		return // a node that said goodbye claims no place again
	}
	e.newQuery(mNotify)
	e.sendQuery(now, mNotify, succ.Addr, succ.ID, 0, forNotify)
}

// onNotifyReply handles the successor's answer to our notify: its
// predecessor after it considered us. If that lies between us, we are not
// its predecessor and the node in between is our successor: move to it at
// once. Without this, nodes that join the same gap together line up one
// per stabilize period; with it, within a few round trips.
func (e *Engine) onNotifyReply(now time.Time, p *pending, sender id.ID, m *krpc.Msg) {
	r := &e.ring
	succ, ok := r.successor()
	if !ok || succ.ID != sender || m.R.Has&krpc.HasX == 0 {
		return
	}
	nb, err := decodeNeighbors(m.R.X, sender, p.to)
	if err != nil {
		e.stats.Malformed++
		return
	}
	if nb.pred.ID.IsZero() || nb.pred.ID == e.self || nb.pred.ID == succ.ID || !id.Between(nb.pred.ID, e.self, succ.ID) {
		return
	}
	r.setSuccs([]krpc.NodeInfo{nb.pred}, r.succs)
	e.stats.SuccessorChanges++
	e.stabilize(now)
}

// notified handles n's claim to be our predecessor; proven says n's
// address answered us before (or showed a token).
func (e *Engine) notified(now time.Time, n krpc.NodeInfo, proven bool) {
	r := &e.ring
	if r.hasPred && r.pred.ID == n.ID {
		r.pred = n
		return
	}
	if r.hasPred && !id.Between(n.ID, r.pred.ID, e.self) {
		return
	}
	old, had := r.pred, r.hasPred
	r.pred, r.hasPred = n, true
	if len(r.succs) == 0 {
		// Alone until now: n is our successor too, and it learns that we
		// are its predecessor from our first stabilize, which is now.
		r.setSuccs([]krpc.NodeInfo{n}, nil)
		e.fellBack(now)
		e.stats.SuccessorChanges++
		e.stabilizeSoon(now)
	}
	if had {
		// n took over (old, n] from us: hand it those records, and tell
		// old that n is its successor now. The records go once n's
		// address has proven itself: anyone can send a ch_notify from a
		// forged source, and a hand-over is up to replica.PushWindow
		// datagrams of records, which a victim's address would receive
		// for one small query. The predecessor check asks n at once; its
		// answer is the proof (onCheck).
		e.hint(now, old)
		r.handOver = handOver{lo: old.ID, to: n.ID}
		if proven {
			e.handOverNow(now)
		} else {
			e.checkPredecessor(now)
		}
	}
}

// handOver is the range (lo, to] that a new predecessor, to, took over
// from the node, waiting to be pushed to it; to zero when none waits.
type handOver struct{ lo, to id.ID }

// handOverNow pushes the waiting hand-over to the predecessor, if it is
// still the node it was for.
func (e *Engine) handOverNow(now time.Time) {
	r := &e.ring
	h := r.handOver
	r.handOver = handOver{}
	if !h.to.IsZero() && r.hasPred && r.pred.ID == h.to {
		e.pushRange(now, h.lo, r.pred)
	}
}

// checkPredecessor asks the predecessor for its neighbours: an answer
// proves it alive, and names its own predecessor, which this node
// remembers (members.go). A node is a replica of the keys up to its
// Replicas-th predecessor, and the quorum rule counts those keys' replica
// sets among the nodes it knows to exist: knowing only the predecessor,
// a node that lost it to a split claimed the keys before it and counted
// their replica sets without the second predecessor, a member it had
// never heard of. One that does not answer twice is lost (onFailure).
func (e *Engine) checkPredecessor(now time.Time) {
	r := &e.ring
	if !r.hasPred || r.checking {
		return
	}
	e.newQuery(mGetPredecessor)
	if e.sendQuery(now, mGetPredecessor, r.pred.Addr, r.pred.ID, 0, forCheck) {
		r.checking = true
	}
}

// onCheck applies the predecessor's answer to checkPredecessor.
func (e *Engine) onCheck(now time.Time, sender id.ID, m *krpc.Msg, from netip.AddrPort) {
	r := &e.ring
	r.checking = false
	if !r.hasPred || r.pred.ID != sender {
		if !r.handOver.to.IsZero() {
			// The check answered was of the predecessor before: ask the
			// new one, whose hand-over waits for its answer.
			e.checkPredecessor(now)
		}
		return
	}
	e.handOverNow(now) // its answer proves its address
	if m.R.Has&krpc.HasX == 0 {
		return
	}
	nb, err := decodeNeighbors(m.R.X, sender, from)
	if err != nil {
		e.stats.Malformed++
		return
	}
	r.remember(now, nb.pred)
	r.pred2 = nb.pred
}

// fixFingers refreshes the next finger that the successor list does not
// already answer, by a lookup of its start.
func (e *Engine) fixFingers(now time.Time) {
	r := &e.ring
	if r.fixing != 0 || len(r.succs) == 0 {
		return
	}
	last := r.succs[len(r.succs)-1]
	start := id.AddPow2(e.self, r.fixSlot)
	if r.fixSlot < 0 || id.Between(start, e.self, last.ID) {
		// This finger and all lower ones fall within the successor list:
		// the pass is over; start the next from the top.
		r.fixSlot = id.Bits - 1
		r.filling = false
		start = id.AddPow2(e.self, r.fixSlot)
		if id.Between(start, e.self, last.ID) {
			return // a ring of at most r+1 nodes: the list is the table
		}
	}
	slot := r.fixSlot
	r.fixSlot--
	e.startFinger(now, fingerLookup{slot: slot, target: start})
}

// fingerFixed records the outcome of a finger lookup.
func (e *Engine) fingerFixed(now time.Time, fl fingerLookup, res *kademlia.Result) {
	r := &e.ring
	r.fixing = 0
	if res.Err == nil && len(res.Nodes) > 0 && res.Nodes[0].ID != e.self {
		s := res.Nodes[0]
		// Fingers in [target, s) are stale: no live node lies there, as far
		// as the lookup saw. Those are lost, not forgotten.
		var skipped []krpc.NodeInfo
		for _, f := range r.fingers {
			if f.ID != s.ID && (f.ID == fl.target || id.Between(f.ID, fl.target, s.ID)) {
				skipped = append(skipped, f)
			}
		}
		r.setFinger(fl.target, s)
		for _, n := range skipped {
			if _, still := r.known(n.ID); !still {
				e.lose(now, n)
			}
		}
	}
	if r.filling {
		r.nextFix = now
	}
}

// pushRange hands the records whose target lies in (lo, to.ID] to `to`.
func (e *Engine) pushRange(now time.Time, lo id.ID, to krpc.NodeInfo) {
	if e.cfg.Store == nil {
		return
	}
	var recs []store.Record
	_ = e.cfg.Store.Each(func(rec store.Record) bool {
		if t := rec.Target(); id.Between(t, lo, to.ID) && !replica.Expired(&rec, now) {
			recs = append(recs, rec)
		}
		return true
	})
	e.pushRecords(now, to, recs)
}
