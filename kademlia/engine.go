// Package kademlia is the Kademlia protocol engine of the BitTorrent DHT
// (BEP 5, with BEP 32, 42, 43 and 51), written as a deterministic state
// machine in the manner of etcd-io/raft: it does no I/O and reads no clock.
// A driver hands it time, datagrams and user operations, and applies what
// Ready returns: datagrams to send, operations finished, and events of the
// operations that keep running (KVListen). The UDP runtime and the
// simulator are two such drivers around the same code.
package kademlia

import (
	"bytes"
	"crypto/rand"
	"io"
	mrand "math/rand/v2"
	"net/netip"
	"time"

	"github.com/dhtkit/dhtkit/guard"

	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/krpc"
	"github.com/dhtkit/dhtkit/replica"
	"github.com/dhtkit/dhtkit/routing"
	"github.com/dhtkit/dhtkit/store"
)

// Stats are the engine's counters since it started.
type Stats struct {
	QueriesIn   [krpc.NumMethods]uint64 // by method; MethodUnknown counts unknown methods
	QueriesOut  [krpc.NumMethods]uint64
	ResponsesIn uint64
	ErrorsIn    uint64
	ErrorsOut   uint64 // error replies sent
	Malformed   uint64 // packets that failed to decode or validate
	RateLimited uint64 // queries dropped by the per-source limit (also Drops[guard.DropRateLimit])
	ForeignNet  uint64 // messages dropped for carrying another network name
	Unsolicited uint64 // responses that matched no query of ours
	Timeouts    uint64 // queries of ours that got no answer
	LateReplies uint64 // answers that came after their query timed out (they still refute)
	Probes      uint64 // pings of bad contacts, to see whether they are back
	BytesIn     uint64
	BytesOut    uint64
	// Drops counts what the engine dropped, by reason.
	Drops [guard.NumDropReasons]uint64

	// OneHops counts the key-value operations started without a lookup,
	// OneHopFallbacks those of them that a lookup had to finish (onehop.go).
	OneHops, OneHopFallbacks uint64
	// StoreBatches counts the dk_stores that carried the writes of several
	// puts to one replica, BatchedWrites those writes (storebatch.go).
	StoreBatches, BatchedWrites uint64
	// FetchBatches counts the dk_fetches that carried the reads of
	// several gets from one replica, BatchedReads those reads
	// (fetchbatch.go).
	FetchBatches, BatchedReads uint64
	// Reissues counts the puts issued again past a newer version a
	// replica kept over them (reissue.go).
	Reissues uint64
}

// maintenanceInterval is how often the engine looks at its table, its
// peer store and its bootstrap state when nothing else wakes it.
const maintenanceInterval = 30 * time.Second

// Engine is one DHT node's protocol state. It is not safe for concurrent
// use: its driver serializes calls.
type Engine struct {
	cfg   Config
	self  id.ID
	net   []byte // private network name, nil for mainline
	rng   *mrand.Rand
	table routing.Table
	stats Stats

	// Outgoing queries awaiting an answer, by transaction id.
	inflight routing.InFlight[pending]
	rtt      rttEstimator

	ops     map[OpID]*opState
	lastOp  OpID
	boot    bootstrapper
	pinging map[id.ID]bool // table pings in flight (ping-before-evict)

	tokens  guard.Tokens
	peers   peerStore
	items   itemStore
	clock   store.Clock       // versions of key-value writes
	commits replica.Commits   // writes waiting for the next commit (group commit)
	xbuf    []byte            // scratch for "x" payloads
	near    []routing.Contact // scratch for replicasFound's table contacts
	known   []known           // scratch for replicasFound's candidates
	tree    *replica.Tree     // the store's hash tree for anti-entropy, made on first use
	// acceptor answers conditional writes (cas.go), made on first use;
	// restarted: the store held records at start (replica.NewAcceptor).
	acceptor  *replica.Acceptor
	restarted bool

	listenOps []*listenOp       // our KVListen operations, oldest first
	listeners replica.Listeners // others' dk_listen registrations on us

	nextSync time.Time
	probedAt time.Time // the last round of probes of bad contacts
	late     []late    // queries that timed out lately (client.go)
	limiter  *guard.Limiter
	inLen    int // bytes of the datagram being handled
	votes    ipVotes
	silent   silentSet

	nextMaintenance time.Time
	onehop          oneHop // key-value operations without a lookup (onehop.go)

	// Scratch space, reused so that answering a query allocates nothing.
	in       krpc.Msg
	out      krpc.Msg
	contacts []routing.Contact
	tid      [2]byte
	tokBuf   [guard.TokenLen]byte

	// Output, handed to the driver by Ready.
	box     Outbox
	results []Result
	events  []Event
	drained bool
	closed  bool
	// storeQ: one-hop writes waiting for Ready, which sends those bound
	// for one replica as one dk_store (storebatch.go); storeAt is when the
	// last was queued.
	storeQ  []memberWait
	storeAt time.Time
	// fetchQ: one-hop reads waiting for Ready, which sends those bound
	// for one replica as one dk_fetch (fetchbatch.go); fetchAt is when
	// the last was queued.
	fetchQ  []memberWait
	fetchAt time.Time
}

// New returns an engine for cfg, started at now.
func New(cfg Config, now time.Time) *Engine {
	cfg = cfg.withDefaults()
	rng := NewRand(cfg.Rand)
	if cfg.ID.IsZero() {
		cfg.ID = id.Random(RandReader{rng})
	}
	e := &Engine{
		cfg:     cfg,
		self:    cfg.ID,
		rng:     rng,
		ops:     make(map[OpID]*opState),
		limiter: guard.NewLimiter(cfg.guardConfig()),
		peers: peerStore{
			ttl:        cfg.PeerTTL,
			maxHashes:  cfg.MaxInfohashes,
			maxPerHash: cfg.MaxPeersPerInfohash,
		},
		items:           itemStore{ttl: cfg.ItemTTL, max: cfg.MaxItems},
		nextMaintenance: now.Add(maintenanceInterval),
	}
	if cfg.Network != "" {
		e.net = []byte(cfg.Network)
	}
	if cfg.NewTable != nil {
		e.table = cfg.NewTable(e.self, cfg.K)
	} else {
		t := routing.NewBEP5(e.self, cfg.K, RandReader{rng})
		t.SetPreferFast(!cfg.StrictBEP5)
		t.SetDiversity(cfg.diversity())
		e.table = t

	}
	e.clock.Writer = store.WriterID(e.self)
	if cfg.Store != nil {
		// Never issue a version older than one stored before a restart,
		// even if the wall clock stepped back meanwhile.
		_ = cfg.Store.Each(func(r store.Record) bool {
			e.clock.Restore(r.Version.Time)
			e.restarted = true
			return true
		})
	}
	e.nextSync = now.Add(cfg.SyncInterval)
	e.tokens.Init(now, cfg.TokenRotation, e.secret)
	e.rtt.init(cfg.QueryTimeout)
	e.commits.Window = cfg.CommitWindow
	if len(cfg.Bootstrap) > 0 {
		e.startOp(now, Bootstrap{Addrs: cfg.Bootstrap}, true)
	}
	return e
}

// NewRand returns an engine's generator, seeded from src (crypto/rand when
// nil): a seeded src makes an engine, Kademlia or Chord, deterministic.
func NewRand(src io.Reader) *mrand.Rand {
	if src == nil {
		src = rand.Reader
	}
	var seed [32]byte
	if _, err := io.ReadFull(src, seed[:]); err != nil {
		panic("dhtkit: reading a random seed: " + err.Error())
	}
	return mrand.New(mrand.NewChaCha8(seed))
}

// RandReader adapts a math/rand generator to io.Reader, for id.Random.
type RandReader struct{ R *mrand.Rand }

func (r RandReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(r.R.Uint32())
	}
	return len(p), nil
}

func (e *Engine) secret(b []byte) { RandReader{e.rng}.Read(b) }

// ID is the node's id.
func (e *Engine) ID() id.ID { return e.self }

// Table is the routing table (read it only from the driver's goroutine).
func (e *Engine) Table() routing.Table { return e.table }

// Stats returns the engine's counters.
func (e *Engine) Stats() Stats {
	st := e.stats
	st.Drops[guard.DropSourceEvicted] = e.limiter.Evicted()
	st.Drops[guard.DropPeerEvicted] = e.peers.evicted
	st.Drops[guard.DropItemEvicted] = e.items.evicted
	st.Drops[guard.DropListenerEvicted] = e.listeners.Evicted()
	if t, ok := e.table.(interface{ DiversityRejects() uint64 }); ok {
		st.Drops[guard.DropNodeDiversity] += t.DiversityRejects()
	}
	return st
}

// drop counts a drop.
func (e *Engine) drop(r DropReason) {
	e.stats.Drops[r]++
	if r == guard.DropRateLimit {
		e.stats.RateLimited++
	}
}

// ExternalAddr is the address peers most often report for us in the "ip"
// field (BEP 42), and how many reports it has.
func (e *Engine) ExternalAddr() (netip.AddrPort, int) { return e.votes.best() }

// Infohashes returns up to n infohashes from the peer store.
func (e *Engine) Infohashes(n int) []id.ID {
	if n > e.peers.len() {
		n = e.peers.len()
	}
	return append([]id.ID(nil), e.peers.hashes[:n]...)
}

// begin starts a call that may produce output: what an earlier Ready
// handed out is dropped now, not before, so it stayed valid until here.
func (e *Engine) begin() {
	if e.drained {
		e.box.Reset()
		clear(e.results) // the driver copied them: keep none of their slices reachable
		e.results = e.results[:0]
		clear(e.events)
		e.events = e.events[:0]
		e.drained = false
	}
}

// Ready returns what the driver should do now and clears it. Packet data
// and the Results and Events slices are valid until the next call on the
// engine: a driver copies the results it keeps.
func (e *Engine) Ready() Ready {
	e.begin() // a second Ready in a row hands out nothing twice
	if len(e.storeQ) > 0 {
		e.flushStores()
	}
	if len(e.fetchQ) > 0 {
		e.flushFetches()
	}
	var b *replica.Batch
	if e.commits.Due() {
		b = e.commits.Flush(e.kvStore(), e.changed) // persist first, then send
	}
	e.drained = true
	// The results' array is reused, as the packets' and the events' are:
	// a fresh one for each Ready cost an allocation of a few hundred
	// bytes per operation. begin clears it at the next call.
	return Ready{Packets: e.box.Packets(), Results: e.results, Events: e.events, Commit: b}
}

// HasReady reports whether Ready has anything to hand out.
func (e *Engine) HasReady() bool {
	return e.commits.Due() || len(e.storeQ) > 0 || len(e.fetchQ) > 0 || !e.drained && (len(e.box.Packets()) > 0 || len(e.results) > 0 || len(e.events) > 0)
}

// Deadline is the time of the engine's next timer; the driver calls Tick
// then (or earlier). Zero means no timer is pending.
func (e *Engine) Deadline() time.Time {
	if e.closed {
		return time.Time{}
	}
	d := e.nextMaintenance
	if t := e.tokens.Next(); t.Before(d) {
		d = t
	}
	if t, ok := e.inflight.Next(); ok && t.Before(d) {
		d = t
	}
	if t, ok := e.boot.next(); ok && t.Before(d) {
		d = t
	}
	if t, ok := e.commits.Deadline(); ok && t.Before(d) {
		d = t
	}
	if t, ok := e.probeDue(); ok && t.Before(d) {
		d = t
	}
	if e.cfg.Store != nil && e.nextSync.Before(d) {
		d = e.nextSync
	}
	for _, lo := range e.listenOps {
		if lo.next.Before(d) {
			d = lo.next
		}
	}
	return d
}

// Tick advances the engine's timers to now.
func (e *Engine) Tick(now time.Time) {
	if e.closed {
		return
	}
	e.begin()
	e.commits.Now(now)
	for {
		slot, ok := e.inflight.Due(now)
		if !ok {
			break
		}
		p := &slot.Q
		if !p.stalled && now.Before(p.hard) {
			p.stalled = true
			e.inflight.Wake(p.tid, p.hard)
			e.onStalled(now, p)
			continue
		}
		e.onTimeout(now, p)
	}
	e.tokens.MaybeRotate(now, e.secret)
	e.boot.tick(now, e)
	e.probe(now)
	e.refreshListens(now)
	if e.cfg.Store != nil && !now.Before(e.nextSync) {
		e.sync(now)
		e.nextSync = now.Add(e.cfg.SyncInterval)
	}
	if !now.Before(e.nextMaintenance) {
		e.maintain(now)
		e.nextMaintenance = now.Add(maintenanceInterval)
	}
}

// maintain does the periodic work: refresh idle buckets, expire peers,
// forget idle rate-limit state, rejoin when the table has emptied.
func (e *Engine) maintain(now time.Time) {
	e.peers.expire(now)
	e.items.expire(now)
	e.listeners.Expire(now)
	e.expireLate(now)
	e.limiter.Sweep(now)
	if e.table.Len() == 0 {
		e.boot.rejoin(now, e)
		return
	}
	// Every contact went bad (a partition or a load spike looks like
	// that): the probes ask them whether they are back; rejoin meanwhile.
	if e.contacts = e.table.Closest(e.self, 1, e.contacts[:0]); len(e.contacts) == 0 {
		e.boot.rejoin(now, e)
	}
	for _, target := range e.table.Refresh(now, e.cfg.RefreshInterval, nil) {
		e.startOp(now, FindNode{Target: target}, true)
	}
}

// Receive hands the engine a datagram that arrived from a peer. The engine
// keeps no reference to packet after it returns.
func (e *Engine) Receive(now time.Time, from netip.AddrPort, packet []byte) {
	if e.closed {
		return
	}
	e.begin()
	e.commits.Now(now)
	e.stats.BytesIn += uint64(len(packet))
	e.inLen = len(packet)
	m := &e.in
	if err := m.Decode(packet); err != nil {
		e.stats.Malformed++
		// Answer a malformed query with 203 when we can tell it was one
		// and whom to answer; anything else is dropped silently.
		if m.Y == krpc.Query && len(m.T) > 0 && !e.cfg.ReadOnly {
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
	if e.cfg.Tap != nil {
		e.cfg.Tap(In, from, m)
	}
	switch m.Y {
	case krpc.Query:
		e.handleQuery(now, from, m)
	case krpc.Response, krpc.Error:
		e.handleReply(now, from, m)
	default:
		e.stats.Malformed++
	}
}

// send encodes e.out to addr and queues it. A message that would exceed
// MaxDatagram is dropped (guard.DropOversize) and send reports false.
func (e *Engine) send(to netip.AddrPort) bool {
	start, ok := e.encode()
	if !ok {
		return false
	}
	e.queue(to, start)
	return true
}

// encode appends e.out to the arena and returns where it starts; false
// (and nothing appended) when it would exceed MaxDatagram.
func (e *Engine) encode() (int, bool) {
	start, ok := e.box.Encode(&e.out, e.net)
	if !ok {
		e.drop(guard.DropOversize)
	}
	return start, ok
}

// queue hands the message encoded at arena[start:] to the driver.
func (e *Engine) queue(to netip.AddrPort, start int) {
	if e.cfg.Tap != nil {
		e.cfg.Tap(Out, to, &e.out)
	}
	e.stats.BytesOut += uint64(e.box.Queue(to, start))
}

// Close ends every operation with ErrClosed. The engine ignores every
// later call but Ready.
func (e *Engine) Close(now time.Time) {
	if e.closed {
		return
	}
	e.begin()
	e.commits.Async = false // a batch still out is the driver's to finish
	e.commits.Flush(e.kvStore(), e.changed)
	e.storeQ, e.fetchQ = nil, nil // their operations end here
	for _, op := range e.sortedOps() {
		e.finish(now, op, ErrClosed)
	}
	e.closed = true
}

// ipVotes counts the external addresses peers report in "ip" (BEP 42), so
// the node learns its public address without asking any outside service.
type ipVotes struct {
	addrs  [8]netip.AddrPort
	counts [8]int
}

func (v *ipVotes) add(a netip.AddrPort) {
	if !a.IsValid() {
		return
	}
	low := 0
	for i := range v.addrs {
		if v.addrs[i] == a {
			v.counts[i]++
			return
		}
		if v.counts[i] < v.counts[low] {
			low = i
		}
	}
	// Replace the weakest candidate; halving the rest ages old votes.
	for i := range v.counts {
		v.counts[i] /= 2
	}
	v.addrs[low], v.counts[low] = a, 1
}

func (v *ipVotes) best() (netip.AddrPort, int) {
	b := 0
	for i := range v.counts {
		if v.counts[i] > v.counts[b] {
			b = i
		}
	}
	return v.addrs[b], v.counts[b]
}
