package kademlia

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/internal/heapq"
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
	// slow adds to latency for the datagrams a node sends.
	slow map[netip.AddrPort]time.Duration
	sent int
}

type testNode struct {
	addr    netip.AddrPort
	e       *Engine
	results map[OpID]Result
	events  []timedEvent
	down    bool
}

// timedEvent is an Event and the virtual time it came out of Ready.
type timedEvent struct {
	at time.Time
	Event
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
	return n.addAt(netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, byte(i >> 8), byte(i)}), 6881), cfg)
}

// addAt starts an engine at addr: attack tests forge public addresses.
func (n *testNet) addAt(addr netip.AddrPort, cfg Config) *testNode {
	if cfg.Rand == nil {
		cfg.Rand = seededReader{rand.New(rand.NewPCG(n.rng.Uint64(), n.rng.Uint64()))}
	}
	if cfg.Network == "" {
		cfg.Network = "test"
	}
	tn := &testNode{addr: addr, results: make(map[OpID]Result)}
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
		if len(p.Data) > MaxDatagram {
			n.t.Fatalf("%v sent a datagram of %d bytes to %v, over MaxDatagram (%d): %.80q",
				tn.addr, len(p.Data), p.To, MaxDatagram, p.Data)
		}
		if n.drop != nil && n.drop(tn.addr, p.To, p.Data) {
			continue
		}
		n.seq++
		n.queue.Push(delivery{
			at: n.now.Add(n.latency + n.slow[tn.addr]), seq: n.seq, from: tn.addr, to: p.To,

			data: bytes.Clone(p.Data),
		})
	}
	for _, r := range rd.Results {
		tn.results[r.Op] = r
	}
	for _, ev := range rd.Events {
		tn.events = append(tn.events, timedEvent{n.now, ev})
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
		to.events = append(to.events, timedEvent{n.now, ev})
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

// do starts an op on a node and runs the network until it finishes.
func (n *testNet) do(tn *testNode, op Op) Result {
	n.t.Helper()
	opID := tn.e.Start(n.now, op)
	n.flush(tn)
	if !n.runUntil(10*time.Minute, func() bool { _, ok := tn.results[opID]; return ok }) {
		n.t.Fatalf("%T did not finish within 10 virtual minutes", op)
	}
	return tn.results[opID]
}

// build starts size nodes, each bootstrapping from up to three earlier
// ones, and waits until every one has joined.
func (n *testNet) build(size int, cfg Config) {
	n.t.Helper()
	first := n.add(cfg)
	for i := 1; i < size; i++ {
		c := cfg
		c.Bootstrap = nil
		for range min(3, i) {
			c.Bootstrap = append(c.Bootstrap, n.order[n.rng.IntN(i)].addr)
		}
		n.add(c)
	}
	_ = first
	joined := func() bool {
		for _, tn := range n.order[1:] {
			if !tn.e.boot.joined {
				return false
			}
		}
		return true
	}
	if !n.runUntil(10*time.Minute, joined) {
		n.t.Fatalf("not every node joined within 10 virtual minutes")
	}
	// Let the refresh lookups that follow each join settle.
	n.runUntil(30*time.Second, func() bool { return false })
}

func (n *testNet) String() string {
	return fmt.Sprintf("testNet(%d nodes, %d datagrams)", len(n.order), n.sent)
}
