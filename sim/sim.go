// Package sim runs many DHT engines in one process over a modelled
// network, with a virtual clock. It drives the production kademlia or
// chord engine, not a model of it, through the same calls the UDP runtime makes
// (Receive, Start, Tick, Ready, Deadline), so an experiment with a million
// nodes tests the code that serves real traffic, runs faster than real
// time, and repeats exactly for a given seed.
//
// The loop keeps one priority queue of events for the whole network:
// datagram deliveries, engine deadlines (at most one live deadline event
// per node; superseded ones are skipped when they come up) and the
// scenario's workload. Nothing is ever sent on a socket: node addresses
// (10.x.y.z:6881) are labels that the simulator maps back to node indexes
// arithmetically, so per-node state is a slice element, not a map entry.
package sim

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"runtime/metrics"
	"slices"
	"time"

	"github.com/dhtkit/dhtkit/chord"
	"github.com/dhtkit/dhtkit/guard"
	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/kademlia"
	"github.com/dhtkit/dhtkit/krpc"
	"github.com/dhtkit/dhtkit/routing"
)

// Build says how the network is built before the measured phase.
type Build string

const (
	// Oracle fills every routing table from the global sorted list of ids,
	// as many simulators do (PeerSim's and OverSim's "oracle"
	// initializers): each bucket gets K random nodes of its range, with
	// their true RTT, as if the network had run for a long time. Then
	// every node looks up its own id once, so the engines' RTT estimators
	// and tables have real traffic behind them. It makes 10^5–10^6 nodes
	// affordable; NAT'd nodes are left out of other tables (nobody could
	// have heard an answer from them).
	Oracle Build = "oracle"
	// Join is the honest build-up: nodes start one by one, JoinInterval
	// apart, each bootstrapping through up to three nodes started before
	// it, with the engine's own Bootstrap (probe, self-lookup, refresh).
	Join Build = "join"
)

// Config describes a simulation. The zero value of a field means its
// default (see Defaults).
type Config struct {
	Protocol string `json:"protocol"` // "kademlia" or "chord"
	Nodes    int    `json:"nodes"`
	Lookups  int    `json:"lookups"` // find_node lookups of random targets, spread over Duration
	// Keys are infohashes announced early in the measured phase (and
	// re-announced every ReannounceEvery) then searched with get_peers:
	// once at a random time in the second half of the phase
	// (get_success_rate) and once at its end (keys_lost).
	Keys int `json:"keys"`
	// KV makes the keys key-value records instead: each is written once
	// with the replicated store (KVPut) and read back with KVGet, so that
	// keys_lost measures what replication, repair and hand-over keep alive
	// under churn, with no re-announcing.
	KV bool `json:"kv"`
	// Churn is the fraction of nodes replaced per simulated hour: each
	// node's session length has mean 1h/Churn, drawn from Session; a node
	// that leaves is replaced at once by a new one that joins through the
	// engine's Bootstrap.
	Churn   float64 `json:"churn"`
	Session Session `json:"-"`
	Loss    float64 `json:"loss"` // probability that a datagram is lost
	Latency Latency `json:"-"`
	// Duration is the simulated time of the measured phase.
	Duration time.Duration `json:"duration"`
	Seed     uint64        `json:"seed"`
	K        int           `json:"k"`
	Alpha    int           `json:"alpha"`
	// Beta is the engines' Beta: how many of the closest nodes must
	// answer before a lookup ends (0: the engine's default, 3).
	Beta int `json:"beta"`
	// StrictBEP5 turns off the engines' preference for fast contacts
	// (kademlia.Config.StrictBEP5).
	StrictBEP5 bool  `json:"strict_bep5"`
	Build      Build `json:"build"`
	// JoinInterval is the time between two nodes' starts in the Join
	// build-up.
	JoinInterval time.Duration `json:"join_interval"`
	// SelfLookup makes every node look up its own id after the Oracle
	// build-up (on by default; false skips it).
	SelfLookup *bool `json:"self_lookup,omitempty"`
	// Seen is how many responders each node has heard from before the
	// measured phase, in the Oracle build-up: a table that prefers fast
	// nodes keeps the fastest of those in each bucket's range. About 20
	// per lookup, so 1024 is a node that has run some 50 lookups.
	Seen int `json:"seen"`
	// NAT is the fraction of nodes behind a NAT: they receive a datagram
	// only from a peer they sent one to within NATTimeout.
	NAT        float64       `json:"nat"`
	NATTimeout time.Duration `json:"nat_timeout"`
	// Silent is the fraction of nodes that stop answering and sending when
	// the measured phase starts, staying in other nodes' tables: crashed
	// nodes, or nodes firewalled after they joined.
	Silent float64 `json:"silent"`
	// Liars is the fraction of nodes that, from the start of the measured
	// phase, lie in every answer: find_node, get_peers and get replies
	// list made-up nodes whose ids sit right next to the target and whose
	// addresses hold no node (an eclipse attempt). Kademlia only: the
	// lie goes in through the engine's own QueryHook.
	Liars      float64     `json:"liars"`
	Partitions []Partition `json:"partitions,omitempty"`
	// Table is the routing table: "bep5" (default) or "keepall".
	Table string `json:"table"`
	// QueryTimeout and MinQueryTimeout are passed to every engine (zero:
	// the engine's defaults).
	QueryTimeout    time.Duration `json:"query_timeout"`
	MinQueryTimeout time.Duration `json:"min_query_timeout"`
	// ReannounceEvery is how often each key is announced again (15m).
	ReannounceEvery time.Duration `json:"reannounce_every"`
	// Routing is Chord's lookup routing: "fingers" (default) or "linear",
	// one successor at a time (chord.Config.Routing).
	Routing string `json:"routing,omitempty"`
	// VNodes is Chord's virtual nodes (Stoica et al., §6.3): each of the
	// Nodes hosts VNodes engines at independent ids, so that it owns
	// VNodes arcs of the ring instead of one, and the key load evens
	// out. 0 or 1: one engine per node. The key load is reported per
	// node (the sum over its virtual nodes); lookups and hops are the
	// engines'. Without churn only.
	VNodes int `json:"vnodes,omitempty"`
	// Permanent is how many permanent puts run in the measured phase
	// (permanent.go): each key's writer stays up, refreshes it by
	// replica.Keeper's rule with PermanentTTL (default 10m), and cancels
	// at PermanentCancel (from the phase's start; default the TTL plus
	// 10 minutes before the end, at least half the phase). Key-value
	// records: with --kv or Chord.
	Permanent       int           `json:"permanent,omitempty"`
	PermanentTTL    time.Duration `json:"permanent_ttl,omitempty"`
	PermanentCancel time.Duration `json:"permanent_cancel,omitempty"`
}

// Defaults returns the configuration used for zero fields.
func Defaults() Config {
	on := true
	return Config{
		Protocol:        "kademlia",
		Nodes:           1000,
		Lookups:         1000,
		Session:         Session{Shape: 1},
		Latency:         DefaultLatency,
		Duration:        10 * time.Minute,
		Seed:            1,
		K:               8,
		Alpha:           3,
		Build:           Oracle,
		JoinInterval:    100 * time.Millisecond,
		SelfLookup:      &on,
		Seen:            1024,
		NATTimeout:      time.Minute,
		Table:           "bep5",
		ReannounceEvery: 15 * time.Minute,
	}
}

func (c Config) withDefaults() Config {
	d := Defaults()
	if c.Protocol == "" {
		c.Protocol = d.Protocol
	}
	if c.Nodes == 0 {
		c.Nodes = d.Nodes
	}
	if c.Session.Shape == 0 {
		c.Session = d.Session
	}
	if c.Latency == (Latency{}) {
		c.Latency = d.Latency
	}
	if c.Duration == 0 {
		c.Duration = d.Duration
	}
	if c.K == 0 {
		c.K = d.K
	}
	if c.Alpha == 0 {
		c.Alpha = d.Alpha
	}
	if c.Build == "" {
		c.Build = d.Build
	}
	if c.JoinInterval == 0 {
		c.JoinInterval = d.JoinInterval
	}
	if c.Seen == 0 {
		c.Seen = d.Seen
	}
	if c.SelfLookup == nil {
		c.SelfLookup = d.SelfLookup

	}
	if c.NATTimeout == 0 {
		c.NATTimeout = d.NATTimeout
	}
	if c.Table == "" {
		c.Table = d.Table
	}
	if c.ReannounceEvery == 0 {
		c.ReannounceEvery = d.ReannounceEvery
	}
	if c.Permanent > 0 && c.PermanentTTL == 0 {
		c.PermanentTTL = DefaultPermanentTTL
	}
	return c
}

func (c Config) validate() error {
	switch {
	case c.Protocol != "kademlia" && c.Protocol != "chord":
		return fmt.Errorf("protocol %q: want kademlia or chord", c.Protocol)
	case c.Protocol == "chord" && c.Keys > 0 && !c.KV:
		return errors.New("protocol chord has no get_peers/announce: with keys, add --kv (key-value records)")
	case c.Nodes < 2 || c.Nodes > maxNodes/2:
		return fmt.Errorf("nodes %d: want 2 to %d", c.Nodes, maxNodes/2)
	case c.Lookups < 0 || c.Keys < 0:
		return errors.New("lookups and keys must not be negative")
	case c.Churn < 0 || c.Loss < 0 || c.Loss >= 1 || c.NAT < 0 || c.NAT >= 1 || c.Silent < 0 || c.Silent >= 1 || c.Liars < 0 || c.NAT+c.Silent+c.Liars >= 1:
		return errors.New("churn must be >= 0; loss, nat and silent must be fractions in [0, 1), nat+silent < 1")
	case c.Duration < 0:
		return errors.New("duration must not be negative")
	case c.Build != Oracle && c.Build != Join:
		return fmt.Errorf("build %q: want oracle or join", c.Build)
	case c.Table != "bep5" && c.Table != "keepall":
		return fmt.Errorf("table %q: want bep5 or keepall", c.Table)
	case c.K < 1 || c.Alpha < 1:
		return errors.New("k and alpha must be at least 1")
	case c.Beta < 0 || c.Seen < 0:
		return errors.New("beta and seen must not be negative")
	case c.Routing != "" && c.Routing != chord.RoutingFingers && c.Routing != chord.RoutingLinear:
		return fmt.Errorf("routing %q: want fingers or linear", c.Routing)
	case c.Routing == chord.RoutingLinear && c.Protocol != "chord":
		return errors.New("routing linear is Chord's: add --protocol chord")
	case c.VNodes < 0 || c.VNodes > 64:
		return errors.New("vnodes: want 0 to 64")
	case c.VNodes > 1 && (c.Protocol != "chord" || c.Churn > 0):
		return errors.New("vnodes are Chord's, without churn: add --protocol chord, drop --churn")
	case c.Permanent < 0 || c.Permanent > 1000:
		return errors.New("permanent: want 0 to 1000 permanent puts")
	case c.Permanent > 0 && !c.KV && c.Protocol != "chord":
		return errors.New("permanent puts are key-value records: add --kv")
	case c.Permanent > 0 && (c.PermanentTTL < 10*time.Second || c.PermanentCancel < 0 || c.PermanentCancel >= c.Duration):
		return errors.New("permanent: the TTL must be at least 10s, and the cancel within the measured phase")
	}
	return nil
}

// maxNodes is how many nodes a run can create, counting the replacements
// churn brings: node i's address is 10.i>>16.i>>8.i.
const maxNodes = 1 << 24

const simPort = 6881

// Node flags.
const (
	fAlive  uint8 = 1 << iota
	fNAT          // behind a NAT
	fSilent       // chosen to go silent
	fMuted        // silent now: gets no datagrams and no ticks
	fLiar         // lies in its answers (Config.Liars)
)

// engine is what the simulator needs of a protocol engine: the driver
// contract of the runtime, plus HasReady to skip empty Ready calls.
// *kademlia.Engine and *chord.Engine are engines.
type engine interface {
	Receive(now time.Time, from netip.AddrPort, packet []byte)
	Start(now time.Time, op kademlia.Op) kademlia.OpID
	Tick(now time.Time)
	Ready() kademlia.Ready
	HasReady() bool
	Deadline() time.Time
}

// bytesOut is what an engine has sent.
func bytesOut(e engine) uint64 {
	switch e := e.(type) {
	case *kademlia.Engine:
		return e.Stats().BytesOut
	case *chord.Engine:
		return e.Stats().BytesOut
	}
	return 0
}

// node is one simulated node. It is a slice element: at a million nodes
// every byte here counts once per node.
type node struct {
	e       engine
	id      id.ID
	timerAt int64 // the pending deadline event, or -1
	livePos int32 // position in Sim.live
	flags   uint8
	x, y    float32 // Internet latency: position, in ms
	access  float32 // Internet latency: access delay, in ms
	recv    uint32  // datagrams received in the measured phase
	nat     map[int32]int64
}

func (n *node) up() bool { return n.flags&(fAlive|fMuted) == fAlive }

// reachable: up, and able to answer anyone who asks.
func (n *node) reachable() bool { return n.flags&(fAlive|fMuted|fNAT) == fAlive }

func addrOf(i int32) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), simPort)
}

// indexOf maps an address back to a node index, or -1.
func indexOf(a netip.AddrPort) int32 {
	ip := a.Addr()
	if !ip.Is4() || a.Port() != simPort {
		return -1
	}
	b := ip.As4()
	if b[0] != 10 {
		return -1
	}
	return int32(b[1])<<16 | int32(b[2])<<8 | int32(b[3])
}

type opKey struct {
	node int32
	op   kademlia.OpID
}

type opRef struct {
	kind   uint8 // evLookup, evAnnounce, evGet (aux 1: final), evJoin
	aux    int32
	final  bool
	target id.ID
}

// Sim is one simulation run.
type Sim struct {
	cfg   Config
	q     queue
	now   int64
	epoch time.Time
	nodes []node
	live  []int32 // nodes alive (muted ones included), in no order
	idx   index   // every non-NAT node ever created
	ops   map[opKey]opRef
	bufs  [][]byte

	rngBuild, rngNet, rngWork *rand.Rand

	t0, end   int64 // the measured phase
	measuring bool
	keys      []id.ID
	acked     []bool     // by key: a write of it was acknowledged (announce_success_rate)
	perm      *permanent // Config.Permanent's workload, permanent.go
	scratch   []ref
	picked    map[int]struct{} // sample's scratch
	events    uint64

	m measure
}

// New prepares a simulation of cfg.
func New(cfg Config) (*Sim, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.VNodes > 1 {
		cfg.Nodes *= cfg.VNodes // the engines; the report counts nodes
		if cfg.Nodes > maxNodes/2 {
			return nil, fmt.Errorf("nodes × vnodes = %d: want at most %d", cfg.Nodes, maxNodes/2)
		}
	}
	seed := cfg.Seed
	stream := func(n uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, mix64(seed^n))) }
	return &Sim{
		cfg:      cfg,
		epoch:    time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		ops:      make(map[opKey]opRef),
		rngBuild: stream(1),
		rngNet:   stream(2),
		rngWork:  stream(3),
	}, nil
}

// Run builds the network, runs the measured phase and returns the report.
// It stops early, with ctx's error, when ctx is done.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	s, err := New(cfg)
	if err != nil {
		return nil, err
	}
	return s.Run(ctx)
}

// Run runs the simulation.
func (s *Sim) Run(ctx context.Context) (*Report, error) {
	wall := time.Now()
	if err := s.build(ctx); err != nil {
		return nil, err
	}
	runtime.GC()
	s.m.heapAfterBuild = heapBytes()
	s.m.sample()
	s.m.buildWall = time.Since(wall)

	s.startMeasuring()
	if err := s.runUntil(ctx, s.end, nil); err != nil {
		return nil, err
	}

	// Let the operations still in flight finish; their results count.
	grace := s.end + int64(5*time.Minute)
	if err := s.runUntil(ctx, grace, func() bool { return len(s.ops) == 0 }); err != nil {
		return nil, err
	}
	s.measuring = false
	s.m.sample()
	return s.report(time.Since(wall)), nil
}

// time is the engines' view of the virtual clock.
func (s *Sim) time() time.Time { return s.epoch.Add(time.Duration(s.now)) }

func (s *Sim) engineConfig(i int32) kademlia.Config {
	c := kademlia.Config{
		ID:         s.nodes[i].id,
		K:          s.cfg.K,
		Alpha:      s.cfg.Alpha,
		Beta:       s.cfg.Beta,
		StrictBEP5: s.cfg.StrictBEP5,

		Network:         "sim",
		RateLimit:       -1, // the simulator models the protocol, not abuse
		GlobalRate:      -1,
		RateBytes:       -1,
		GlobalBytes:     -1,
		QueryTimeout:    s.cfg.QueryTimeout,
		MinQueryTimeout: s.cfg.MinQueryTimeout,
		Rand:            &seedReader{s: mix64(s.cfg.Seed ^ uint64(i)<<20 ^ 0xd1b54a32d192ed03)},
	}
	if s.cfg.Liars > 0 {
		c.QueryHook = func(_ netip.AddrPort, q, reply *krpc.Msg) bool {
			if s.nodes[i].flags&fLiar != 0 {
				s.lie(q, reply)
			}
			return true
		}
	}
	if s.cfg.Table == "keepall" {
		c.NewTable = func(self id.ID, k int) routing.Table {
			return routing.NewKeepAll(self, k, &seedReader{s: mix64(uint64(i) ^ s.cfg.Seed<<7)})
		}
	}

	return c
}

// seedReader is a deterministic io.Reader (SplitMix64) for Config.Rand.
type seedReader struct{ s uint64 }

func (r *seedReader) Read(p []byte) (int, error) {
	for i := range p {
		if i%8 == 0 {
			r.s = mix64(r.s)
		}
		p[i] = byte(r.s >> (8 * (i % 8)))
	}
	return len(p), nil
}

// spawn creates node i (the next index) with a random id; it is alive but
// has no engine yet.
func (s *Sim) spawn(nat bool) int32 {
	i := int32(len(s.nodes))
	s.nodes = append(s.nodes, node{timerAt: -1, flags: fAlive})
	n := &s.nodes[i]
	n.id = id.Random(randReader{s.rngBuild})
	if nat {
		n.flags |= fNAT
		n.nat = make(map[int32]int64)
	} else {
		s.idx.add(ref{id: n.id, n: i})
	}
	s.cfg.Latency.place(n, s.rngBuild)
	n.livePos = int32(len(s.live))
	s.live = append(s.live, i)
	return i
}

// start gives node i its engine.
func (s *Sim) start(i int32) {
	if s.cfg.Protocol == "chord" {
		s.nodes[i].e = chord.New(s.chordConfig(i), s.time())
		return
	}
	s.nodes[i].e = kademlia.New(s.engineConfig(i), s.time())
}

func (s *Sim) chordConfig(i int32) chord.Config {
	return chord.Config{
		ID:           s.nodes[i].id,
		K:            s.cfg.K,
		Routing:      s.cfg.Routing,
		Network:      "sim",
		QueryTimeout: s.cfg.QueryTimeout,
		Rand:         &seedReader{s: mix64(s.cfg.Seed ^ uint64(i)<<20 ^ 0xd1b54a32d192ed03)},
		Guard:        guard.Off(), // the simulator models the protocol, not abuse
	}
}

// primeChord sets node i's ring state from the sorted ids: predecessor,
// successor list and the successor of every finger start, as if the ring
// had been stable for a long time.
func (s *Sim) primeChord(i int32) {
	n := &s.nodes[i]
	ok := func(j int32) bool { return j != i && s.nodes[j].reachable() }
	info := func(r ref) krpc.NodeInfo { return krpc.NodeInfo{ID: r.id, Addr: addrOf(r.n)} }
	var pred krpc.NodeInfo
	if p := s.idx.predecessor(n.id, ok); p.n >= 0 {
		pred = info(p)
	}
	s.scratch = s.idx.successors(id.AddPow2(n.id, 0), chord.DefaultConfig().Successors, ok, s.scratch[:0])
	succs := make([]krpc.NodeInfo, len(s.scratch))
	for k, r := range s.scratch {
		succs[k] = info(r)
	}
	var fingers []krpc.NodeInfo
	for b := id.Bits - 1; b >= 0; b-- {
		s.scratch = s.idx.successors(id.AddPow2(n.id, b), 1, ok, s.scratch[:0])
		if len(s.scratch) == 0 {
			break
		}
		f := info(s.scratch[0])
		if len(succs) > 0 && f.ID == succs[0].ID {
			break // this finger and all lower ones are the successor
		}
		if len(fingers) == 0 || fingers[len(fingers)-1].ID != f.ID {
			fingers = append(fingers, f)
		}
	}
	n.e.(*chord.Engine).Prime(pred, succs, fingers)
}

// leave removes node i from the network: its engine is dropped, and every
// datagram and timer for it is discarded when it comes up.
func (s *Sim) leave(i int32) {
	n := &s.nodes[i]
	if n.flags&fAlive == 0 {
		return
	}
	n.flags &^= fAlive
	n.e = nil
	n.nat = nil
	last := s.live[len(s.live)-1]
	s.live[n.livePos] = last
	s.nodes[last].livePos = n.livePos
	s.live = s.live[:len(s.live)-1]
	for k := range s.ops {
		if k.node == i {
			s.opLost(k)
		}
	}
}

type randReader struct{ r *rand.Rand }

func (r randReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(r.r.Uint32())
	}
	return len(p), nil
}

// randomUp returns a random node that is up (and reachable, if asked),
// or -1.
func (s *Sim) randomUp(rng *rand.Rand, reachable bool) int32 {
	for range 64 {
		i := s.live[rng.IntN(len(s.live))]
		n := &s.nodes[i]
		if n.up() && (!reachable || n.reachable()) && n.e != nil {
			return i
		}
	}
	return -1
}

// bootstrapAddrs picks up to three reachable nodes other than i.
func (s *Sim) bootstrapAddrs(i int32) []netip.AddrPort {
	var out []netip.AddrPort
	for range 8 {
		if len(out) == 3 {
			break
		}
		j := s.randomUp(s.rngBuild, true)
		if j < 0 || j == i {
			continue
		}
		out = append(out, addrOf(j))
	}
	return out
}

// build creates the network and runs it up to the measured phase.
func (s *Sim) build(ctx context.Context) error {
	switch s.cfg.Build {
	case Join:
		return s.buildJoin(ctx)
	default:
		return s.buildOracle(ctx)
	}
}

func (s *Sim) buildOracle(ctx context.Context) error {
	s.nodes = make([]node, 0, s.cfg.Nodes)
	for range s.cfg.Nodes {
		s.spawn(s.rngBuild.Float64() < s.cfg.NAT)
	}
	s.idx.fold()
	for i := range s.nodes {
		s.start(int32(i))
		if s.cfg.Protocol == "chord" {
			s.primeChord(int32(i))
		} else {
			s.prefill(int32(i))
		}
		if i%65536 == 0 {
			s.m.sample()
			if err := ctx.Err(); err != nil {
				return err
			}
		}
	}
	warm := int64(0)
	if *s.cfg.SelfLookup {
		// Spread the self-lookups over 10 s, as if the nodes had
		// started at different times.
		spread := int64(10 * time.Second)
		for i := range s.nodes {
			at := s.rngBuild.Int64N(spread)
			s.q.push(event{at: at, kind: evJoin, to: int32(i), aux: -1})
		}
		warm = spread + int64(20*time.Second)
	}
	for i := range s.nodes {
		s.schedule(int32(i))
	}
	return s.runUntil(ctx, warm, nil)
}

// prefill fills node i's table as if the node had run for a while. Its
// lookups have brought it answers from Seen nodes spread over the id
// space, so bucket d (nodes whose id first differs from i's at bit d, a
// 2^-(d+1) share of the network) has heard from Seen/2^(d+1) random nodes
// of its range, or from as many as it holds when that is more. A table
// that prefers fast nodes keeps the fastest of those it heard from; the
// others keep the first ones.
func (s *Sim) prefill(i int32) {
	n := &s.nodes[i]
	t := n.e.(*kademlia.Engine).Table()
	bep5, _ := t.(*routing.BEP5)
	now := s.time()
	var pick [2048]int
	var rtts [2048]int64
	for d := 0; d < id.Bits; d++ {
		lo, hi := s.idx.span(flipBitID(n.id, d), d+1)
		if size := hi - lo; size > 0 {
			keep, heard := s.cfg.K, s.cfg.K
			if bep5 != nil && bep5.PreferFast() {
				heard = max(keep, s.cfg.Seen>>(d+1))
			}
			got := s.sample(lo, hi, min(heard, size, len(pick)), pick[:0])
			for x, j := range got {
				r := s.idx.sorted[j]
				rtts[x] = 2 * s.cfg.Latency.base(n, &s.nodes[r.n], i, r.n)
			}
			if len(got) > keep {
				// Keep the fastest (of equal RTTs, the one heard first:
				// got is in the random order the nodes were heard in).
				for x := range keep {
					m := x
					for y := x + 1; y < len(got); y++ {
						if rtts[y] < rtts[m] {
							m = y
						}
					}
					got[x], got[m] = got[m], got[x]
					rtts[x], rtts[m] = rtts[m], rtts[x]
				}
				got = got[:keep]
			}
			for x, j := range got {
				r := s.idx.sorted[j]
				t.Observe(now, r.id, addrOf(r.n), routing.Responded, time.Duration(rtts[x]))
			}
		}
		// Stop once no other node shares d+1 bits with us.
		lo, hi = s.idx.span(n.id, d+1)
		if hi-lo <= 1 {
			break
		}
	}
}

func flipBitID(x id.ID, i int) id.ID {
	x[i/8] ^= 0x80 >> (i % 8)
	return x
}

func (s *Sim) buildJoin(ctx context.Context) error {
	s.nodes = make([]node, 0, s.cfg.Nodes)
	first := s.spawn(false)
	s.start(first)
	s.schedule(first)
	for i := 1; i < s.cfg.Nodes; i++ {
		s.q.push(event{at: int64(i) * int64(s.cfg.JoinInterval), kind: evJoin, to: -1})
	}
	last := int64(s.cfg.Nodes-1) * int64(s.cfg.JoinInterval)
	if err := s.runUntil(ctx, last, nil); err != nil {
		return err
	}
	// Wait for the last joins to finish, then let the network settle.
	limit := last + int64(10*time.Minute)
	if err := s.runUntil(ctx, limit, func() bool { return len(s.ops) == 0 }); err != nil {
		return err
	}
	return s.runUntil(ctx, s.now+int64(30*time.Second), nil)
}

// startMeasuring schedules the workload of the measured phase.
func (s *Sim) startMeasuring() {
	s.t0 = s.now
	s.end = s.t0 + int64(s.cfg.Duration)
	s.measuring = true
	for i := range s.nodes {
		s.nodes[i].recv = 0
	}
	s.m.startBytes(s)
	if s.cfg.Silent > 0 {
		s.q.push(event{at: s.t0, kind: evSilence})
	}
	s.chooseLiars()
	dur := max(int64(s.cfg.Duration), 1)
	for i := range s.cfg.Lookups {
		s.q.push(event{at: s.t0 + s.rngWork.Int64N(dur), kind: evLookup, aux: int32(i)})
	}
	s.keys = make([]id.ID, s.cfg.Keys)
	s.acked = make([]bool, s.cfg.Keys)
	for i := range s.keys {
		s.keys[i] = id.Random(randReader{s.rngWork})
		s.q.push(event{at: s.t0 + s.rngWork.Int64N(max(dur/10, 1)), kind: evAnnounce, aux: int32(i)})
		s.q.push(event{at: s.t0 + dur/2 + s.rngWork.Int64N(max(dur/2, 1)), kind: evGet, aux: int32(i)})
		s.q.push(event{at: s.end, kind: evGet, aux: int32(i), from: 1})
	}
	s.startPermanent()
	if s.cfg.Churn > 0 {
		for _, i := range s.live {
			s.scheduleLeave(i)
		}
	}
}

func (s *Sim) scheduleLeave(i int32) {
	mean := time.Duration(float64(time.Hour) / s.cfg.Churn)
	at := s.now + int64(s.cfg.Session.draw(mean, s.rngBuild))
	if at < s.end {
		s.q.push(event{at: at, kind: evLeave, to: i})
	}
}

// runUntil processes events up to time limit, or until done reports true.
func (s *Sim) runUntil(ctx context.Context, limit int64, done func() bool) error {
	for {
		if done != nil && done() {
			return nil
		}
		at, ok := s.q.peek()
		if !ok || at > limit {
			s.now = max(s.now, limit)
			return nil
		}
		ev := s.q.pop()
		if ev.at > s.now {
			s.now = ev.at
		}
		s.events++
		if s.events&(1<<18-1) == 0 {
			s.m.sample()
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		s.handle(&ev)
	}
}

func (s *Sim) handle(ev *event) {
	switch ev.kind {
	case evDeliver:
		s.deliver(ev)
	case evTimer:
		n := &s.nodes[ev.to]
		if !n.up() || ev.at != n.timerAt {
			return // superseded, or the node is gone
		}
		n.timerAt = -1
		n.e.Tick(s.time())
		s.flush(ev.to)
	case evLookup:
		i := s.randomUp(s.rngWork, false)
		if i < 0 {
			s.m.lookupFailed(s.now - s.t0)
			return
		}
		target := id.Random(randReader{s.rngWork})
		s.begin(i, kademlia.FindNode{Target: target}, opRef{kind: evLookup, target: target})
	case evAnnounce:
		i := s.randomUp(s.rngWork, false)
		if s.cfg.KV {
			if i >= 0 {
				s.begin(i, kademlia.KVPut{Key: s.keys[ev.aux].String(), Value: s.keys[ev.aux][:]}, opRef{kind: evAnnounce, aux: ev.aux})
			} else {
				s.m.announced(false)
			}
			return // written once: replication keeps it, not the writer
		}
		if i >= 0 {
			s.begin(i, kademlia.Announce{InfoHash: s.keys[ev.aux], Port: simPort}, opRef{kind: evAnnounce, aux: ev.aux})
		}
		if next := s.now + int64(s.cfg.ReannounceEvery); next < s.end {
			s.q.push(event{at: next, kind: evAnnounce, aux: ev.aux})
		}
	case evGet:
		i := s.randomUp(s.rngWork, false)
		final := ev.from == 1
		if i < 0 {
			s.m.getDone(final, false)
			return
		}
		if s.cfg.KV {
			s.begin(i, kademlia.KVGet{Key: s.keys[ev.aux].String()}, opRef{kind: evGet, aux: ev.aux, final: final})
			return
		}
		s.begin(i, kademlia.GetPeers{InfoHash: s.keys[ev.aux]}, opRef{kind: evGet, aux: ev.aux, final: final})
	case evLeave:
		if s.nodes[ev.to].flags&fAlive == 0 || s.perm != nil && s.perm.isWriter[ev.to] {
			return // gone already, or a permanent put's writer, which runs throughout
		}
		s.leave(ev.to)
		s.m.leaves++
		s.joinNew(s.rngBuild.Float64() < s.cfg.NAT)
	case evJoin:
		if ev.aux == -1 { // Oracle build-up: node ev.to looks itself up
			n := &s.nodes[ev.to]
			if n.up() {
				n.e.Start(s.time(), kademlia.FindNode{Target: n.id})
				s.flush(ev.to)
			}
			return
		}
		s.joinNew(s.rngBuild.Float64() < s.cfg.NAT)
	case evSilence:
		s.silence()
	case evPermanent:
		s.permanentTick()
	case evPermanentGet:
		s.permanentGet(ev.aux)
	}
}

// joinNew starts a new node that bootstraps through up to three others.
func (s *Sim) joinNew(nat bool) {
	if len(s.nodes) >= maxNodes {
		return
	}
	i := s.spawn(nat)
	boot := s.bootstrapAddrs(i)
	s.start(i)
	if len(boot) > 0 {
		s.begin(i, kademlia.Bootstrap{Addrs: boot}, opRef{kind: evJoin})
	} else {
		s.schedule(i)
	}
	if s.measuring {
		s.m.joins++
		if s.cfg.Churn > 0 {
			s.scheduleLeave(i)
		}
	}
}

// silence mutes the nodes chosen to go silent.
func (s *Sim) silence() {
	want := int(s.cfg.Silent * float64(len(s.live)))
	for muted, tries := 0, 0; muted < want && tries < 100*want; tries++ {
		i := s.live[s.rngBuild.IntN(len(s.live))]
		n := &s.nodes[i]
		if n.flags&(fMuted|fNAT) != 0 {
			continue
		}
		n.flags |= fSilent | fMuted
		muted++
		for k := range s.ops {
			if k.node == i {
				s.opLost(k)
			}
		}
	}
}

// chooseLiars picks the Config.Liars fraction of live, reachable nodes.
func (s *Sim) chooseLiars() {
	want := int(s.cfg.Liars * float64(len(s.live)))
	for chosen, tries := 0, 0; chosen < want && tries < 100*want; tries++ {
		n := &s.nodes[s.live[s.rngBuild.IntN(len(s.live))]]
		if n.flags&(fLiar|fMuted|fNAT) != 0 {
			continue
		}
		n.flags |= fLiar
		chosen++
	}
}

// lie replaces the nodes of an answer with K made-up ones right next to
// the target, at addresses where no node lives.
func (s *Sim) lie(q, reply *krpc.Msg) {
	target := q.A.Target
	if q.A.Has&krpc.HasInfoHash != 0 {
		target = q.A.InfoHash
	}
	if reply.R.Has&krpc.HasNodes == 0 {
		return
	}
	reply.R.Nodes = reply.R.Nodes[:0]
	for range s.cfg.K {
		fake := target
		for b := 16; b < id.Len; b++ {
			fake[b] = byte(s.rngWork.Uint32())
		}
		// Indexes past every node the run can have: undeliverable.
		reply.R.Nodes = append(reply.R.Nodes, krpc.NodeInfo{ID: fake, Addr: addrOf(maxNodes - 1 - s.rngWork.Int32N(1<<20))})
	}
	reply.R.Values = reply.R.Values[:0]
	reply.R.Has &^= krpc.HasValues
}

// opLost counts an operation whose node left or fell silent as failed.
func (s *Sim) opLost(k opKey) {
	r := s.ops[k]
	delete(s.ops, k)
	switch r.kind {
	case evLookup:
		s.m.lookupFailed(s.now - s.t0)
	case evGet:
		s.m.getDone(r.final, false)
	case evPermanent:
		s.perm.keeper.Done(s.perm.keys[r.aux], s.time(), false)
	}
}

// begin starts an operation on node i and tracks its result.
func (s *Sim) begin(i int32, op kademlia.Op, r opRef) {
	opID := s.nodes[i].e.Start(s.time(), op)
	s.ops[opKey{i, opID}] = r
	s.flush(i)
}

// flush applies node i's Ready and reschedules its deadline.
func (s *Sim) flush(i int32) {
	n := &s.nodes[i]
	if !n.e.HasReady() {
		s.schedule(i)
		return
	}
	rd := n.e.Ready()
	for _, p := range rd.Packets {
		s.send(i, p.To, p.Data)
	}
	for _, r := range rd.Results {
		k := opKey{i, r.Op}
		ref, ok := s.ops[k]
		if !ok {
			continue
		}
		delete(s.ops, k)
		s.result(i, ref, &r)
	}
	s.schedule(i)
}

// schedule makes sure node i has a deadline event no later than its
// engine's deadline. An earlier one left in the queue finds the engine
// with nothing due, which costs a Tick and nothing else.
func (s *Sim) schedule(i int32) {
	n := &s.nodes[i]
	if !n.up() {
		return
	}
	d := n.e.Deadline()
	if d.IsZero() {
		return
	}
	at := max(int64(d.Sub(s.epoch)), s.now+1)
	if n.timerAt >= 0 && n.timerAt <= at {
		return
	}
	n.timerAt = at
	s.q.push(event{at: at, kind: evTimer, to: i})
}

// send models one datagram from node i.
func (s *Sim) send(i int32, to netip.AddrPort, data []byte) {
	s.m.sent++
	j := indexOf(to)
	if j < 0 || int(j) >= len(s.nodes) {
		s.m.undeliverable++
		return
	}
	a, b := &s.nodes[i], &s.nodes[j]
	if a.nat != nil {
		a.nat[j] = s.now
	}
	if s.cfg.Loss > 0 && s.rngNet.Float64() < s.cfg.Loss {
		s.m.lost++
		return
	}
	for _, p := range s.cfg.Partitions {
		at := s.t0 + int64(p.At)
		if s.measuring && s.now >= at && s.now < at+int64(p.For) && p.side(i) != p.side(j) {
			s.m.partitioned++
			return
		}
	}
	d := s.cfg.Latency.delay(a, b, i, j, s.rngNet)
	s.m.delaySum += float64(d)
	s.m.delayN++
	s.q.push(event{at: s.now + d, kind: evDeliver, to: j, from: i, data: s.copyBuf(data)})
}

func (s *Sim) copyBuf(data []byte) []byte {
	const bufSize = 1024
	if len(data) > bufSize {
		return append([]byte(nil), data...)
	}
	var b []byte
	if n := len(s.bufs); n > 0 {
		b = s.bufs[n-1][:0]
		s.bufs = s.bufs[:n-1]
	} else {
		b = make([]byte, 0, bufSize)
	}
	return append(b, data...)
}

func (s *Sim) freeBuf(b []byte) {
	if cap(b) == 1024 {
		s.bufs = append(s.bufs, b)
	}
}

func (s *Sim) deliver(ev *event) {
	defer s.freeBuf(ev.data)
	n := &s.nodes[ev.to]
	if !n.up() {
		s.m.toDead++
		return
	}
	if n.nat != nil {
		if t, ok := n.nat[ev.from]; !ok || s.now-t > int64(s.cfg.NATTimeout) {
			s.m.natDropped++
			return
		}
	}
	if s.measuring {
		n.recv++
	}
	s.m.delivered++
	n.e.Receive(s.time(), addrOf(ev.from), ev.data)
	s.flush(ev.to)
}

// result records a finished operation of node i.
func (s *Sim) result(i int32, ref opRef, r *kademlia.Result) {
	switch ref.kind {
	case evLookup:
		if s.cfg.Protocol == "chord" {
			// Chord's answer is the target's successor on the ring, which
			// may be the asker itself.
			s.scratch = s.idx.successors(ref.target, s.cfg.K, func(n int32) bool {
				return n == i || s.nodes[n].reachable()
			}, s.scratch[:0])
			s.m.lookupDone(r, s.scratch, s.cfg.K, s.cfg.K, s.now-s.t0)
			return
		}
		s.scratch = s.idx.closest(ref.target, s.cfg.K, func(n int32) bool {
			return n != i && s.nodes[n].reachable()
		}, s.scratch[:0])
		s.m.lookupDone(r, s.scratch, s.cfg.K, s.beta(), s.now-s.t0)
	case evAnnounce:
		ok := r.Err == nil && (r.Stored > 0 || s.cfg.KV)
		s.m.announced(ok)
		s.acked[ref.aux] = s.acked[ref.aux] || ok
	case evGet:
		if s.cfg.KV {
			want := s.keys[ref.aux]
			ok := r.Err == nil && r.Record != nil && string(r.Record.Value) == string(want[:])
			s.m.getEnded(ref.final, ok, !ok && s.refusedForDead(r), s.acked[ref.aux])
			return
		}
		s.m.getDone(ref.final, r.Err == nil && len(r.Peers) > 0)
	case evJoin:
		s.m.joined(r.Err == nil)
	case evPermanent, evPermanentGet:
		s.permanentResult(ref, r)
	}
}

func heapBytes() uint64 {
	var ms [1]metrics.Sample
	ms[0].Name = "/memory/classes/heap/objects:bytes"
	metrics.Read(ms[:])
	return ms[0].Value.Uint64()
}

// sample appends to dst want distinct indices drawn uniformly from
// [lo, hi), or all of them when there are no more than want.
func (s *Sim) sample(lo, hi, want int, dst []int) []int {
	size := hi - lo
	switch {
	case size <= want:
		for j := lo; j < hi; j++ {
			dst = append(dst, j)
		}
	case want <= 16:
		for len(dst) < want {
			j := lo + s.rngBuild.IntN(size)
			if !slices.Contains(dst, j) {
				dst = append(dst, j)
			}
		}
	default:
		if s.picked == nil {
			s.picked = make(map[int]struct{})
		}
		clear(s.picked)
		for len(dst) < want {
			j := lo + s.rngBuild.IntN(size)
			if _, dup := s.picked[j]; !dup {
				s.picked[j] = struct{}{}
				dst = append(dst, j)
			}
		}
	}
	return dst
}

// beta is the engines' Beta.
func (s *Sim) beta() int {
	if s.cfg.Beta > 0 {
		return min(s.cfg.Beta, s.cfg.K)
	}
	return min(kademlia.DefaultConfig().Beta, s.cfg.K)
}

// refusedForDead reports whether a read failed by the quorum rule because
// most of the replicas it asked had crashed: the rule refuses such a key
// for DownFor, by design (docs/contract.md, --down-for), since from the
// reader's side a crashed replica and one cut off by a partition look
// the same.
func (s *Sim) refusedForDead(r *kademlia.Result) bool {
	if !errors.Is(r.Err, kademlia.ErrQuorum) || len(r.Holders) == 0 {
		return false
	}
	dead := 0
	for _, h := range r.Holders {
		i := indexOf(h.Node.Addr)
		if h.Self || i < 0 || int(i) >= len(s.nodes) {
			continue
		}
		if n := &s.nodes[i]; n.id != h.Node.ID || n.flags&fAlive == 0 {
			dead++
		}
	}
	return 2*dead > len(r.Holders)
}
