// Package chord is the Chord protocol engine (Stoica et al., SIGCOMM 2001),
// written, like package kademlia, as a deterministic state machine that
// does no I/O and reads no clock. It has exactly the driver contract of
// kademlia.Engine (Receive, Start, Cancel, Tick, Ready, Deadline, Close,
// with kademlia's Op, Result and Ready types), so the UDP runtime, the
// simulator and every test harness drive either protocol unchanged.
//
// Each node keeps a successor list of r nodes, its predecessor and a
// finger table; it joins by looking up its own successor through a
// bootstrap node, and keeps the ring correct with periodic stabilize,
// notify, fix_fingers and check_predecessor. Lookups are iterative: the
// asker walks the ring itself, each step halving the remaining distance,
// so it can route around a node that does not answer. Following Zave
// ("Reasoning about identifier spaces", 2012), a node adopts its
// successor's list only after that successor answered, never lists
// itself, and falls back to the next live successor at once when one
// fails, instead of waiting for the next round.
//
// Key-value records live on the successor of SHA-1(key) and the
// Replicas-1 nodes after it, newest version winning (store.Version), with
// read repair, a push of the keys a new predecessor takes over, periodic
// replica maintenance (sync.go), and a hand-over to the successors when a
// node leaves.
package chord

import (
	"bytes"
	mrand "math/rand/v2"
	"net/netip"
	"time"

	"github.com/dhtkit/dhtkit/guard"
	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/kademlia"
	"github.com/dhtkit/dhtkit/krpc"
	"github.com/dhtkit/dhtkit/replica"
	"github.com/dhtkit/dhtkit/routing"
	"github.com/dhtkit/dhtkit/store"
)

// Stats are the engine's counters since it started.
type Stats struct {
	QueriesIn   [numMethods]uint64 // by method; index 0 counts unknown methods
	QueriesOut  [numMethods]uint64
	ResponsesIn uint64
	ErrorsIn    uint64
	ErrorsOut   uint64 // error replies sent
	Malformed   uint64 // packets or payloads that failed to decode or validate
	ForeignNet  uint64 // messages dropped for carrying another network name
	Unsolicited uint64 // responses that matched no query of ours
	Timeouts    uint64 // queries of ours that got no answer
	BytesIn     uint64
	BytesOut    uint64
	Oversize    uint64 // messages not sent for exceeding kademlia.MaxDatagram
	// Drops counts what the engine dropped, by package guard's reason
	// (rate limits, byte budgets, the 3× rule), as Kademlia's Stats.Drops.
	Drops [guard.NumDropReasons]uint64
	// SuccessorChanges counts changes of the first successor: high while
	// the ring converges, then low.
	SuccessorChanges uint64
	// Probes counts pings of lost neighbours, to see whether they are back.
	Probes uint64
	// Reissues counts the puts issued again past a newer version a
	// replica kept over them (reissue.go).
	Reissues uint64
}

// MethodName names the methods Stats counts by index.
func MethodName(i int) string {
	if i < 0 || i >= int(numMethods) {
		return "unknown"
	}
	return method(i).String()
}

// Engine is one Chord node's protocol state. It is not safe for concurrent
// use: its driver serializes calls.
type Engine struct {
	cfg   Config
	self  id.ID
	net   []byte
	rng   *mrand.Rand
	stats Stats

	ring ring

	// Outgoing queries awaiting an answer, by transaction id.
	inflight routing.InFlight[pending]

	// Abuse bounds, shared with Kademlia (package guard): the limiter of
	// queries and reply bytes, the write tokens we hand out, and the
	// nodes that answered us (proven at their address) with the tokens
	// they handed us.
	limiter *guard.Limiter
	tokens  guard.Tokens
	peers   guard.Known
	inLen   int // bytes of the datagram being handled

	ops    map[kademlia.OpID]*opState
	lastOp kademlia.OpID
	boot   joiner

	clock    store.Clock
	xbuf     []byte
	tree     *replica.Tree   // the store's hash tree for anti-entropy, made on first use
	commits  replica.Commits // writes waiting for the next commit (group commit)
	nextSync time.Time       // the next round of replica maintenance
	catch    catchUp         // a restarted node's reads wait for repair (kv.go)
	// acceptor answers conditional writes (cas.go), made on first use;
	// restarted: the store held records at start (replica.NewAcceptor).
	acceptor  *replica.Acceptor
	restarted bool
	listen    listening // KVListen, ours and others' (listen.go)

	// Scratch space.
	in     krpc.Msg
	out    krpc.Msg
	tid    [2]byte
	tokBuf [guard.TokenLen]byte

	// Output, handed to the driver by Ready.
	box     kademlia.Outbox
	results []kademlia.Result
	drained bool
	closed  bool
}

// New returns an engine for cfg, started at now.
func New(cfg Config, now time.Time) *Engine {
	cfg = cfg.withDefaults()
	rng := kademlia.NewRand(cfg.Rand)
	if cfg.ID.IsZero() {
		cfg.ID = id.Random(kademlia.RandReader{R: rng})
	}
	e := &Engine{
		cfg:     cfg,
		self:    cfg.ID,
		net:     []byte(cfg.Network),
		rng:     rng,
		ops:     make(map[kademlia.OpID]*opState),
		limiter: guard.NewLimiter(cfg.Guard),
	}
	e.tokens.Init(now, tokenRotation, func(b []byte) { kademlia.RandReader{R: rng}.Read(b) })
	e.ring.init(e.self, cfg.Successors)
	e.clock.Writer = store.WriterID(e.self)
	if cfg.Store != nil {
		_ = cfg.Store.Each(func(r store.Record) bool {
			e.clock.Restore(r.Version.Time)
			e.catch.on = true // restarted with records: see catchUp
			e.restarted = true
			return true
		})
	}
	e.ring.nextStabilize = now.Add(e.jitter(cfg.StabilizeInterval))
	e.ring.nextFix = now.Add(e.jitter(cfg.FixFingersInterval))
	e.ring.nextCheck = now.Add(e.jitter(cfg.CheckPredecessorInterval))
	e.nextSync = now.Add(e.jitter(cfg.SyncInterval))
	if len(cfg.Bootstrap) > 0 {
		e.startOp(now, kademlia.Bootstrap{Addrs: cfg.Bootstrap}, true)
	}
	return e
}

// jitter returns d scaled by a random factor in [0.75, 1.25).
func (e *Engine) jitter(d time.Duration) time.Duration {
	return d*3/4 + time.Duration(e.rng.Int64N(int64(d/2)+1))
}

// ID is the node's id.
func (e *Engine) ID() id.ID { return e.self }

// Stats returns the engine's counters.
func (e *Engine) Stats() Stats {
	st := e.stats
	st.Drops[guard.DropListenerEvicted] = e.listen.listeners.Evicted()
	return st
}

// Successors returns a copy of the successor list, nearest first. It never
// holds the node itself; it is empty while the node is alone.
func (e *Engine) Successors() []krpc.NodeInfo { return append([]krpc.NodeInfo(nil), e.ring.succs...) }

// Predecessor returns the predecessor, if the node knows one.
func (e *Engine) Predecessor() (krpc.NodeInfo, bool) { return e.ring.pred, e.ring.hasPred }

// Finger returns finger i (0 <= i < 160): the first node the engine knows
// at or after self+2^i on the ring, from its fingers and successors, and
// false when it knows none (the node itself would be the answer).
func (e *Engine) Finger(i int) (krpc.NodeInfo, bool) { return e.ring.finger(i) }

// Fingers returns the distinct nodes of the finger table, in ring order
// from the node.
func (e *Engine) Fingers() []krpc.NodeInfo { return append([]krpc.NodeInfo(nil), e.ring.fingers...) }

// Joined reports whether the node has found its place on the ring: it was
// started alone, or a join through a bootstrap node has succeeded.
func (e *Engine) Joined() bool { return e.boot.joined || len(e.boot.addrs) == 0 }

// Store is the node's record store.
func (e *Engine) Store() store.Store { return e.kvStore() }

// Prime sets the node's ring state at once: what a simulator's oracle
// build-up does instead of joining, and what a test does to start from a
// known ring. succs are the node's successors in ring order (the node
// itself and duplicates are skipped), fingers any further nodes it should
// know.
func (e *Engine) Prime(pred krpc.NodeInfo, succs, fingers []krpc.NodeInfo) {
	if !pred.ID.IsZero() && pred.ID != e.self {
		e.ring.pred, e.ring.hasPred = pred, true
	}
	e.ring.setSuccs(succs, nil)
	for _, f := range fingers {
		e.ring.addFinger(f)
	}
	e.boot.joined = true
}

// begin starts a call that may produce output: what an earlier Ready
// handed out is dropped now, not before, so it stayed valid until here.
func (e *Engine) begin() {
	if e.drained {
		e.box.Reset()
		clear(e.results)
		e.results = e.results[:0]
		clear(e.listen.events)
		e.listen.events = e.listen.events[:0]
		e.drained = false
	}
}

// Ready returns what the driver should do now and clears it. Packet data
// is valid until the next call on the engine.
func (e *Engine) Ready() kademlia.Ready {
	var b *replica.Batch
	if e.commits.Due() || len(e.listen.notify) > 0 {
		e.begin() // a second Ready in a row hands out nothing twice
		if e.commits.Due() {
			b = e.commits.Flush(e.kvStore(), e.changed) // persist first, then send (commit.go)
		}
		e.notifyListeners()
	}
	e.drained = true
	return kademlia.Ready{Packets: e.box.Packets(), Results: e.results, Events: e.listen.events, Commit: b}
}

// HasReady reports whether Ready has anything to hand out.
func (e *Engine) HasReady() bool {
	return e.commits.Due() || len(e.listen.notify) > 0 ||
		!e.drained && (len(e.box.Packets()) > 0 || len(e.results) > 0 || len(e.listen.events) > 0)
}

// Deadline is the time of the engine's next timer; the driver calls Tick
// then (or earlier). Zero means no timer is pending.
func (e *Engine) Deadline() time.Time {
	if e.closed {
		return time.Time{}
	}
	d := e.ring.nextStabilize
	for _, t := range []time.Time{e.ring.nextFix, e.ring.nextCheck, e.nextSync} {
		if t.Before(d) {
			d = t
		}
	}
	if t, ok := e.inflight.Next(); ok && t.Before(d) {
		d = t
	}
	if t := e.tokens.Next(); t.Before(d) {
		d = t
	}
	if t, ok := e.boot.next(); ok && t.Before(d) {
		d = t
	}
	if t, ok := e.ring.nextProbe(); ok && t.Before(d) {
		d = t
	}
	if t, ok := e.listenDeadline(); ok && t.Before(d) {
		d = t
	}
	return d
}

// Tick advances the engine's timers to now.
func (e *Engine) Tick(now time.Time) {
	if e.closed {
		return
	}
	e.begin()
	for {
		slot, ok := e.inflight.Due(now)
		if !ok {
			break
		}
		e.onTimeout(now, &slot.Q)
	}
	if !now.Before(e.tokens.Next()) {
		e.tokens.MaybeRotate(now, func(b []byte) { kademlia.RandReader{R: e.rng}.Read(b) })
		e.limiter.Sweep(now)
	}
	e.boot.tick(now, e)
	e.probe(now)
	e.tickStabilize(now)
	if !now.Before(e.ring.nextCheck) {
		e.ring.nextCheck = now.Add(e.jitter(e.cfg.CheckPredecessorInterval))
		e.checkPredecessor(now)
	}
	if !now.Before(e.ring.nextFix) {
		e.ring.nextFix = now.Add(e.jitter(e.cfg.FixFingersInterval))
		e.fixFingers(now)
	}
	if !now.Before(e.nextSync) {
		e.nextSync = now.Add(e.jitter(e.cfg.SyncInterval))
		e.sync(now)
	}
	e.tickListen(now)
	e.hintChanges(now)
}

// Receive hands the engine a datagram that arrived from a peer. The engine
// keeps no reference to packet after it returns.
func (e *Engine) Receive(now time.Time, from netip.AddrPort, packet []byte) {
	if e.closed {
		return
	}
	e.begin()
	e.stats.BytesIn += uint64(len(packet))
	e.inLen = len(packet)
	m := &e.in
	if err := m.Decode(packet); err != nil {
		e.stats.Malformed++
		if m.Y == krpc.Query && len(m.T) > 0 && bytes.Equal(m.Net, e.net) {
			if ok, why := e.limiter.AllowQuery(now, from.Addr()); !ok {
				e.drop(why)
				return
			}
			e.replyError(now, from, m.T, krpc.CodeProtocol, "malformed packet")
		}
		return
	}
	if !bytes.Equal(m.Net, e.net) {
		e.stats.ForeignNet++
		return
	}
	switch m.Y {
	case krpc.Query:
		e.handleQuery(now, from, m)
	case krpc.Response, krpc.Error:
		e.handleReply(now, from, m)
	default:
		e.stats.Malformed++
	}
	e.hintChanges(now)
}

// send encodes e.out to addr and queues it; false when it would exceed
// MaxDatagram (then dropped and counted as oversize).
func (e *Engine) send(to netip.AddrPort) bool {
	start, ok := e.encode()
	if ok {
		e.queue(to, start)
	}
	return ok
}

// encode appends e.out to the outbox and returns where it starts, as
// Kademlia's engine does.
func (e *Engine) encode() (start int, ok bool) {
	if start, ok = e.box.Encode(&e.out, e.net); !ok {
		e.stats.Oversize++
		e.drop(guard.DropOversize)
	}
	return start, ok
}

// queue hands the message encoded at start to the driver.
func (e *Engine) queue(to netip.AddrPort, start int) {
	e.stats.BytesOut += uint64(e.box.Queue(to, start))
}

// drop counts something dropped.
func (e *Engine) drop(r guard.DropReason) { e.stats.Drops[r]++ }

// Close ends every operation with kademlia.ErrClosed. The engine ignores
// every later call but Ready.
func (e *Engine) Close(now time.Time) {
	if e.closed {
		return
	}
	e.begin()
	e.commits.Async = false // a batch still out is the driver's to finish
	e.commits.Flush(e.kvStore(), e.changed)
	for _, s := range e.sortedOps() {
		e.finish(now, s, kademlia.ErrClosed)
	}
	e.closed = true
}
