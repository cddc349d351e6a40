package chord

import (
	"cmp"
	"errors"
	"maps"
	"net/netip"
	"slices"
	"time"

	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/kademlia"
	"github.com/dhtkit/dhtkit/krpc"
	"github.com/dhtkit/dhtkit/replica"
)

// ErrUnsupported is the Result of an operation Chord does not have
// (get_peers, announce, BEP 44 items, sample_infohashes).
var ErrUnsupported = errors.New("chord: operation not supported by the Chord engine (use --protocol kademlia)")

var errBadAddr = errors.New("chord: invalid address")

// opState is an operation in progress.
type opState struct {
	id       kademlia.OpID
	op       kademlia.Op // nil for the engine's own lookups
	internal bool        // started by the engine itself: its Result is not reported
	started  time.Time
	lk       *lookup
	kv       *kvOp
	cas      *casOp        // a conditional write past its lookup (cas.go)
	lo       *listenOp     // a KVListen, its lookups included (listen.go)
	push     *replica.Push // a push of records to one node (kv.go)
	round    *syncRound    // a round of anti-entropy (sync.go)
	pull     bool          // a dk_fetch of records a round found newer elsewhere
	fix      *fingerLookup
	off      *handOff         // the lookup of a hand-off from a holder that is no replica (sync.go)
	join     bool             // the lookup of our own successor through the bootstrap nodes
	load     bool             // a kademlia.Load: the answer is a dk_load payload
	reissues replica.Reissues // a put's attempts (reissue.go)
	result   kademlia.Result
}

// answer is what a lookup's answer says of the target's replica set.
type answer struct {
	nodes []krpc.NodeInfo // the target's successor and the nodes after it
	gone  []krpc.NodeInfo // "l": members its answerer lost (wire.go)
	short bool            // a partial answer: it does not name the nodes after its last
	// blind: a partial answer that names only a node to ask (blind.go):
	// it vouches for no member.
	blind bool
}

// fingerLookup is the engine's own lookup of finger slot's start.
type fingerLookup struct {
	slot   int
	target id.ID
}

// Start begins an operation; its Result comes out of Ready. Chord does
// Ping, FindNode, Bootstrap, KVPut, KVGet, KVCas, KVListen and Handover; any other
// operation ends at once with ErrUnsupported.
func (e *Engine) Start(now time.Time, op kademlia.Op) kademlia.OpID {
	e.begin()
	if e.closed {
		e.lastOp++
		e.results = append(e.results, kademlia.Result{Op: e.lastOp, Err: kademlia.ErrClosed})
		return e.lastOp
	}
	return e.startOp(now, op, false)
}

func (e *Engine) newOp(now time.Time, op kademlia.Op, internal bool) *opState {
	e.lastOp++
	s := &opState{id: e.lastOp, op: op, internal: internal, started: now}
	e.ops[s.id] = s
	return s
}

func (e *Engine) startOp(now time.Time, op kademlia.Op, internal bool) kademlia.OpID {
	s := e.newOp(now, op, internal)
	switch op := op.(type) {
	case kademlia.Ping:
		if !op.Addr.IsValid() || op.Addr.Port() == 0 {
			e.finish(now, s, errBadAddr)
			break
		}
		e.newQuery(mPing)
		if !e.sendQuery(now, mPing, op.Addr, id.ID{}, s.id, forOp) {
			e.finish(now, s, errBadAddr)
		}
	case kademlia.Load:
		s.load = true
		e.newQuery(mLoad)
		if !e.sendQuery(now, mLoad, op.Addr, id.ID{}, s.id, forOp) {
			e.finish(now, s, errBadAddr)
		}
	case kademlia.FindNode:
		e.startLookup(now, s, op.Target, nil)
	case kademlia.Bootstrap:
		e.boot.start(now, e, s, op.Addrs)
	case kademlia.KVPut:
		e.startKV(now, s, op.Key)
	case kademlia.KVGet:
		e.startKV(now, s, op.Key)
	case kademlia.KVCas:
		e.startCAS(now, s, op)
	case kademlia.KVListen:
		e.startListen(now, s, op.Key)
	case kademlia.Handover:
		e.startHandover(now, s)
	default:
		e.finish(now, s, ErrUnsupported)
	}
	return s.id
}

// startFinger starts the engine's own lookup of a finger. (It is no
// kademlia.Op: that interface is closed to other packages.)
func (e *Engine) startFinger(now time.Time, fl fingerLookup) {
	s := e.newOp(now, nil, true)
	s.fix = &fl
	// Marked in flight before it starts: a lookup the node answers
	// itself, or with no one to ask, ends within startLookup, and its
	// end (fingerFixed) clears the mark. Set after, the mark would name
	// an ended lookup, and the node would never fix a finger again.
	e.ring.fixing = s.id
	e.startLookup(now, s, fl.target, nil)
}

// Cancel ends an operation early; its Result carries kademlia.ErrCanceled.
func (e *Engine) Cancel(now time.Time, op kademlia.OpID) {
	e.begin()
	if s := e.ops[op]; s != nil {
		e.finish(now, s, kademlia.ErrCanceled)
	}
}

// onResponse routes a response to the operation that asked.
func (e *Engine) onResponse(now time.Time, p *pending, sender id.ID, m *krpc.Msg) {
	s := e.ops[p.op]
	if s == nil {
		return
	}
	switch {
	case s.lo != nil:
		s.lo.response(now, e, p, sender, m)
	case s.cas != nil:
		s.cas.response(now, e, p, sender, m)
	case s.kv != nil:
		s.kv.response(now, e, p, sender, m)
	case s.push != nil:
		e.pushAnswered(now, s, p, m, nil)
	case s.round != nil:
		s.round.response(now, e, s, p, m)
	case s.pull:
		e.pulled(now, s, m)
	case s.lk != nil:
		s.lk.response(now, e, s, p, sender, m)
	case s.load:
		s.result.ID = sender
		s.result.Stats.Queries, s.result.Stats.Responses, s.result.Stats.Hops = 1, 1, 1
		l, err := krpc.ParseLoad(m.R.X)
		if err != nil {
			e.stats.Malformed++
			e.finish(now, s, err)
			return
		}
		s.result.Load = l
		e.finish(now, s, nil)
	default: // ping
		s.result.ID = sender
		s.result.Stats.Queries, s.result.Stats.Responses, s.result.Stats.Hops = 1, 1, 1
		e.finish(now, s, nil)
	}
}

// failure routes a timeout or an error reply to the operation.
func (s *opState) failure(now time.Time, e *Engine, p *pending, err error) {
	switch {
	case s.lo != nil:
		s.lo.failure(now, e, p, err)
	case s.cas != nil:
		s.cas.failure(now, e, p, err)
	case s.kv != nil:
		s.kv.failure(now, e, p, err)
	case s.push != nil:
		e.pushAnswered(now, s, p, nil, err)
	case s.round != nil:
		s.round.failure(now, e, s, p)
	case s.pull:
		e.finish(now, s, err)
	case s.lk != nil:
		s.lk.failed(now, e, s, p, err)
	default:
		s.result.Stats.Queries = 1
		if err == kademlia.ErrTimeout {
			s.result.Stats.Timeouts = 1
		}
		e.finish(now, s, err)
	}
}

// finish ends an operation and reports its Result.
func (e *Engine) finish(now time.Time, s *opState, err error) {
	if _, ok := e.ops[s.id]; !ok {
		return
	}
	delete(e.ops, s.id)
	s.result.Op = s.id
	s.result.Err = err
	s.result.Stats.Duration = now.Sub(s.started)
	if s.lk != nil {
		s.lk.stats(&s.result)
	}
	switch {
	case s.lo != nil:
		e.listenDone(s.lo)
	case s.fix != nil:
		e.fingerFixed(now, *s.fix, &s.result)
	case s.join:
		e.boot.joinDone(now, e, &s.result)
	}
	if !s.internal {
		e.results = append(e.results, s.result)
	}
}

// sortedOps lists the operations in the order they started, so that
// Close ends them in an order that repeats.
func (e *Engine) sortedOps() []*opState {
	ops := slices.Collect(maps.Values(e.ops))
	slices.SortFunc(ops, func(a, b *opState) int { return cmp.Compare(a.id, b.id) })
	return ops
}

// lookup is an iterative find_successor: the asker itself walks towards
// the target, one node at a time, each answering either with the target's
// successor or with the nodes it knows that most closely precede the
// target. A node that does not answer is skipped for the next best one.
type lookup struct {
	target id.ID
	cands  []cand // sorted: unknown ids (bootstrap addresses) first, then closest predecessors of target first
	asked  int    // queries sent
	resps  int
	touts  int
	hops   int
	// partial is the latest partial answer, the fall-back when no
	// candidate is left to ask.
	partial     []krpc.NodeInfo
	partialGone []krpc.NodeInfo
	partialHops int
	// partialBlind: the partial answer vouches for no member (blind.go)
	partialBlind bool
	// succAsked: the partial answer's first node, the target's
	// successor, was asked before the lookup settled on the answer.
	succAsked bool
	trace     bool // a FindNode with Trace: every answer goes into the Result
}

type cand struct {
	info   krpc.NodeInfo
	state  uint8 // 0 fresh, 1 asked, 2 answered or failed
	noID   bool  // a bootstrap address: id unknown
	viaHop int   // hops of the chain that led to it
}

// step is the number of candidates a node returns when it does not know
// the answer: the best and two fall-backs, should it be dead.
const step = 3

// startLookup looks up the successor of target. boot, if given, are the
// addresses to start from (a join); otherwise the node starts from what it
// knows and may answer at once.
func (e *Engine) startLookup(now time.Time, s *opState, target id.ID, boot []netip.AddrPort) {
	l := &lookup{target: target}
	if fn, ok := s.op.(kademlia.FindNode); ok {
		l.trace = fn.Trace
	}
	s.lk = l
	if boot == nil {
		nodes, done, partial, blind := e.route(now, target, e.cfg.K, nil)
		if done {
			e.lookupDone(now, s, answer{nodes: nodes})
			return
		}
		if partial {
			l.addPartial(nodes, nil, 0, blind)
		}
		for _, n := range e.nextHops(target, 2*step, nil) {
			l.cands = append(l.cands, cand{info: n})
		}
	} else {
		for _, a := range boot {
			l.cands = append(l.cands, cand{info: krpc.NodeInfo{Addr: a}, noID: true})
		}
	}
	l.next(now, e, s)
}

// lookupDone ends a lookup with its answer.
func (e *Engine) lookupDone(now time.Time, s *opState, a answer) {
	if len(a.nodes) > e.cfg.K {
		a.nodes = a.nodes[:e.cfg.K]
	}
	if s.off != nil {
		e.handOffTo(now, s, a)
		return
	}
	switch s.op.(type) {
	case kademlia.KVPut, kademlia.KVGet:
		e.kvReplicas(now, s, a)
		return
	case kademlia.KVCas:
		e.casReplicas(now, s, a)
		return
	case kademlia.KVListen:
		s.lo.register(now, e, a)
		return
	}
	s.result.Nodes = a.nodes
	e.finish(now, s, nil)
}

// next sends the query to the best candidate not asked yet, or ends the
// lookup when none is left.
func (l *lookup) next(now time.Time, e *Engine, s *opState) {
	for i := range l.cands {
		c := &l.cands[i]
		if c.state != 0 {
			continue
		}
		c.state = 1
		q := e.newQuery(mFindSuccessor)
		q.A.Has |= krpc.HasX
		e.xbuf = encodeX(e.xbuf[:0], map[string]any{"t": l.target[:]})
		q.A.X = e.xbuf
		if !e.sendQuery(now, mFindSuccessor, c.info.Addr, c.info.ID, s.id, forOp) {
			c.state = 2
			continue
		}
		l.asked++
		return
	}
	if l.partial != nil {
		// Before settling on a partial answer, ask the target's successor
		// itself: it knows the nodes after it, or lost them, which a node
		// cut off before it may never have heard of (ring.answer).
		if succ := l.partial[0]; !l.succAsked && !succ.ID.IsZero() && succ.ID != e.self && succ.Addr.IsValid() {
			l.succAsked = true
			if !slices.ContainsFunc(l.cands, func(c cand) bool { return c.info.ID == succ.ID }) {
				l.cands = append(l.cands, cand{info: succ, viaHop: l.partialHops})
				l.next(now, e, s)
				return
			}
		}
		l.hops = l.partialHops
		e.lookupDone(now, s, answer{nodes: l.partial, gone: l.partialGone, short: true, blind: l.partialBlind})
		return
	}
	if s.lo != nil {
		s.lo.register(now, e, answer{}) // a listener keeps going, with the nodes it knows
		return
	}
	err := kademlia.ErrTimeout
	if len(l.cands) == 0 {
		err = kademlia.ErrNoContacts
	}
	e.finish(now, s, err)
}

// addPartial keeps, of the partial answers heard, the one that names the
// nodes after the target furthest round the ring: every answer lists
// them in order up to its last, and past that the replica set counts
// what it cannot name as down (answer.short), so a shorter answer heard
// later would only count more live members down (the asker's own list,
// past a blind arc, against a node that still lists a member the asker
// lost). What any answerer says it lost counts, whichever answer is kept.
// A blind answer names only a node to ask: any other partial answer
// beats it.
func (l *lookup) addPartial(nodes, gone []krpc.NodeInfo, hops int, blind bool) {
	if len(nodes) == 0 {
		return
	}
	l.partialGone = append(l.partialGone, gone...)
	better := l.partial == nil
	switch {
	case better:
	case blind != l.partialBlind:
		better = !blind
	case !blind:
		last := func(ns []krpc.NodeInfo) id.ID { return id.RingDistance(l.target, ns[len(ns)-1].ID) }
		better = id.Compare(last(nodes), last(l.partial)) > 0
	}
	if better {
		l.partial, l.partialHops, l.partialBlind = nodes, hops, blind
	}
}

// find returns the candidate query p went to; none for another method's
// (a late answer to a reissued put's dk_store, which shares the
// operation: reissue.go).
func (l *lookup) find(p *pending) *cand {
	for i := range l.cands {
		c := &l.cands[i]
		if c.state == 1 && p.method == mFindSuccessor && c.info.Addr == p.to && (c.noID || c.info.ID == p.nodeID) {
			return c
		}
	}
	return nil
}

func (l *lookup) response(now time.Time, e *Engine, s *opState, p *pending, sender id.ID, m *krpc.Msg) {
	c := l.find(p)
	if c == nil {
		return
	}
	c.state = 2
	l.resps++
	r, err := decodeStep(m.R.X, sender, p.to)
	if err != nil {
		e.stats.Malformed++
		l.next(now, e, s)
		return
	}
	hops := c.viaHop + 1
	if l.trace {
		h := kademlia.Hop{Node: krpc.NodeInfo{ID: sender, Addr: p.to}, Depth: c.viaHop, RTT: now.Sub(p.sent), Done: r.done}
		ns := r.nodes // the successor list when done, else the next hops it suggests
		if len(ns) == 0 {
			ns = r.partial
		}
		s.result.Trace = kademlia.TraceHop(s.result.Trace, h, ns, e.cfg.K)
	}
	if r.done {
		l.hops = hops
		e.lookupDone(now, s, answer{nodes: r.nodes, gone: r.gone})
		return
	}
	l.addPartial(r.partial, r.gone, hops, r.blind)
	// Keep only nodes that bring us closer than the responder: anything
	// else is no progress (or a liar's detour).
	added := false
	for _, n := range r.nodes {
		if n.ID == e.self || n.ID == l.target || !id.Between(n.ID, sender, l.target) {
			continue
		}
		if slices.ContainsFunc(l.cands, func(x cand) bool { return x.info.ID == n.ID }) {
			continue
		}
		l.cands = append(l.cands, cand{info: n, viaHop: hops})
		added = true
	}
	if added {
		t := l.target
		slices.SortStableFunc(l.cands, func(a, b cand) int {
			if a.noID != b.noID {
				if a.noID {
					return -1
				}
				return 1
			}
			return id.Compare(id.RingDistance(a.info.ID, t), id.RingDistance(b.info.ID, t))
		})
	}
	l.next(now, e, s)
}

func (l *lookup) failed(now time.Time, e *Engine, s *opState, p *pending, err error) {
	c := l.find(p)
	if c == nil {
		return
	}
	c.state = 2
	if err == kademlia.ErrTimeout {
		l.touts++
	}
	if l.trace {
		s.result.Trace = kademlia.TraceHop(s.result.Trace, kademlia.Hop{Node: c.info, Depth: c.viaHop, Err: err.Error()}, nil, 0)
	}
	l.next(now, e, s)
}

func (l *lookup) stats(r *kademlia.Result) {
	r.Stats.Queries = l.asked
	r.Stats.Responses = l.resps
	r.Stats.Timeouts = l.touts
	r.Stats.Hops = l.hops
}
