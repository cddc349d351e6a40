package chord

import (
	"bytes"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/internal/heapq"

	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/kademlia"
)

// testNet connects engines through an in-memory network with virtual
// time: the smallest possible driver, so engine tests need no sockets and
// no sleeps.
type testNet struct {
	t       testing.TB
	now     time.Time
	rng     *rand.Rand
	latency time.Duration
	nodes   map[netip.AddrPort]*testNode
	order   []*testNode
	queue   heapq.Queue[delivery] // by time, then by order sent
	seq     uint64
	// drop, when set, loses the datagrams it returns true for.
	drop func(from, to netip.AddrPort, data []byte) bool
	sent int
}

type testNode struct {
	addr    netip.AddrPort
	e       *Engine
	results map[kademlia.OpID]kademlia.Result
	events  []timedEvent // what its KVListen operations reported
	down    bool
}

// timedEvent is an event and when the node reported it.
type timedEvent struct {
	kademlia.Event
	at time.Time
}

type delivery struct {
	at   time.Time
	seq  uint64
	from netip.AddrPort
	to   netip.AddrPort
	data []byte
}

// deliveredBefore orders deliveries by time, then by the order they were
// sent, so that a run repeats exactly.
func deliveredBefore(a, b delivery) bool {
	if a.at.Equal(b.at) {
		return a.seq < b.seq
	}
	return a.at.Before(b.at)
}

func newTestNet(t testing.TB, seed uint64) *testNet {
	return &testNet{
		t:       t,
		now:     time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		rng:     rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		latency: 10 * time.Millisecond,
		nodes:   make(map[netip.AddrPort]*testNode),
		queue:   heapq.Queue[delivery]{Before: deliveredBefore},
	}
}

// seededReader is a deterministic io.Reader for Config.Rand.
type seededReader struct{ r *rand.Rand }

func (s seededReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(s.r.Uint32())
	}
	return len(p), nil
}

// add starts an engine at the next loopback address.
func (n *testNet) add(cfg Config) *testNode {
	i := len(n.order) + 1
	addr := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, byte(i >> 8), byte(i)}), 6881)
	if cfg.Rand == nil {
		cfg.Rand = seededReader{rand.New(rand.NewPCG(n.rng.Uint64(), n.rng.Uint64()))}
	}
	if cfg.Network == "" {
		cfg.Network = "test"
	}
	tn := &testNode{addr: addr, results: make(map[kademlia.OpID]kademlia.Result)}
	tn.e = New(cfg, n.now)
	n.nodes[addr] = tn
	n.order = append(n.order, tn)
	n.flush(tn)
	return tn
}

// flush applies an engine's Ready: queue its datagrams, keep its results.
func (n *testNet) flush(tn *testNode) {
	rd := tn.e.Ready()
	for _, p := range rd.Packets {
		n.sent++
		if len(p.Data) > kademlia.MaxDatagram {
			n.t.Fatalf("%v sent a datagram of %d bytes to %v, over MaxDatagram (%d): %.80q",
				tn.addr, len(p.Data), p.To, kademlia.MaxDatagram, p.Data)
		}
		if n.drop != nil && n.drop(tn.addr, p.To, p.Data) {
			continue
		}
		n.seq++
		n.queue.Push(delivery{
			at: n.now.Add(n.latency), seq: n.seq, from: tn.addr, to: p.To,
			data: bytes.Clone(p.Data),
		})
	}
	for _, r := range rd.Results {
		tn.results[r.Op] = r
	}
	for _, ev := range rd.Events {
		ev.Record.Value = bytes.Clone(ev.Record.Value)
		tn.events = append(tn.events, timedEvent{ev, n.now})
	}
}

// inject delivers a raw datagram to a node now, as if from `from`, and
// returns the datagrams it sends back to `from` (the rest are queued).
func (n *testNet) inject(to *testNode, from netip.AddrPort, data []byte) [][]byte {
	to.e.Receive(n.now, from, data)
	rd := to.e.Ready()
	var back [][]byte
	for _, p := range rd.Packets {
		if p.To == from {
			back = append(back, bytes.Clone(p.Data))
			continue
		}
		n.seq++
		n.queue.Push(delivery{at: n.now.Add(n.latency), seq: n.seq, from: to.addr, to: p.To, data: bytes.Clone(p.Data)})
	}
	for _, r := range rd.Results {
		to.results[r.Op] = r
	}
	for _, ev := range rd.Events {
		to.events = append(to.events, timedEvent{ev, n.now})
	}
	return back
}

// nextEvent is the earliest delivery or engine deadline.
func (n *testNet) nextEvent() (time.Time, bool) {
	var t time.Time
	ok := false
	if d, queued := n.queue.Peek(); queued {
		t, ok = d.at, true
	}
	for _, tn := range n.order {
		if tn.down {
			continue
		}
		if d := tn.e.Deadline(); !d.IsZero() && (!ok || d.Before(t)) {
			t, ok = d, true
		}
	}
	return t, ok
}

// runUntil advances virtual time, event by event, until cond holds or
// limit of virtual time has passed. It reports whether cond held.
func (n *testNet) runUntil(limit time.Duration, cond func() bool) bool {
	end := n.now.Add(limit)
	for !cond() {
		t, ok := n.nextEvent()
		if !ok || t.After(end) {
			n.now = end
			return cond()
		}
		if t.After(n.now) {
			n.now = t
		}
		for d, ok := n.queue.Peek(); ok && !d.at.After(n.now); d, ok = n.queue.Peek() {
			n.queue.Pop()
			if tn := n.nodes[d.to]; tn != nil && !tn.down {
				tn.e.Receive(n.now, d.from, d.data)
				n.flush(tn)
			}
		}
		for _, tn := range n.order {
			if !tn.down && !tn.e.Deadline().After(n.now) && !tn.e.Deadline().IsZero() {
				tn.e.Tick(n.now)
				n.flush(tn)
			}
		}
	}
	return true
}

// run advances virtual time by d.
func (n *testNet) run(d time.Duration) { n.runUntil(d, func() bool { return false }) }

// do starts an op on a node and runs the network until it finishes.
func (n *testNet) do(tn *testNode, op kademlia.Op) kademlia.Result {
	n.t.Helper()
	opID := tn.e.Start(n.now, op)
	n.flush(tn)
	if !n.runUntil(10*time.Minute, func() bool { _, ok := tn.results[opID]; return ok }) {
		n.t.Fatalf("%T did not finish within 10 virtual minutes", op)
	}
	return tn.results[opID]
}

// build starts size nodes, each joining through one random earlier node,
// a second apart, and waits until every one has joined.
func (n *testNet) build(size int, cfg Config) {
	n.t.Helper()
	n.add(cfg)
	for i := 1; i < size; i++ {
		c := cfg
		c.Bootstrap = []netip.AddrPort{n.order[n.rng.IntN(i)].addr}
		n.add(c)
		n.run(time.Second)
	}
	if !n.runUntil(10*time.Minute, n.allJoined) {
		n.t.Fatalf("not every node joined within 10 virtual minutes")
	}
}

func (n *testNet) allJoined() bool {
	for _, tn := range n.order {
		if !tn.down && !tn.e.Joined() {
			return false
		}
	}
	return true
}

// live returns the nodes up, sorted by id: the true ring.
func (n *testNet) live() []*testNode {
	var out []*testNode
	for _, tn := range n.order {
		if !tn.down {
			out = append(out, tn)
		}
	}
	slices.SortFunc(out, func(a, b *testNode) int { return id.Compare(a.e.ID(), b.e.ID()) })
	return out
}

// ringErrors counts the live nodes whose successor or predecessor is not
// the true one.
func (n *testNet) ringErrors() int {
	ring := n.live()
	bad := 0
	for i, tn := range ring {
		succ := ring[(i+1)%len(ring)]
		pred := ring[(i+len(ring)-1)%len(ring)]
		s, ok := tn.e.ring.successor()
		p, hasPred := tn.e.Predecessor()
		if !ok || s.ID != succ.e.ID() || s.Addr != succ.addr || !hasPred || p.ID != pred.e.ID() {
			bad++
		}
	}
	return bad
}

// trueSuccessor is the live node that follows target on the ring.
func (n *testNet) trueSuccessor(target id.ID) *testNode {
	ring := n.live()
	i, _ := slices.BinarySearchFunc(ring, target, func(tn *testNode, t id.ID) int { return id.Compare(tn.e.ID(), t) })
	return ring[i%len(ring)]
}
