package enginetest

import (
	"bytes"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/internal/heapq"
)

// Engine is the part of the driver contract a Net drives directly.
type Engine interface {
	Receive(now time.Time, from netip.AddrPort, p []byte)
	Tick(now time.Time)
	Deadline() time.Time
}

// Node is one engine on a Net, and Drain, which takes the engine's Ready
// (its type is each engine package's own), keeps what the test reads of
// it (results, events) and hands each datagram to send.
type Node interface {
	Engine() Engine
	Addr() netip.AddrPort
	IsDown() bool
	Drain(now time.Time, send func(to netip.AddrPort, data []byte))
}

// Net connects engines through an in-memory network with virtual time:
// the one driver of the Kademlia, Chord and replication-layer tests, so
// that engine tests need no sockets and no sleeps. A run repeats exactly
// for a seed.
type Net[N Node] struct {
	T       testing.TB
	Now     time.Time
	Rng     *rand.Rand
	Latency time.Duration
	// Slow adds to Latency for the datagrams a node sends.
	Slow map[netip.AddrPort]time.Duration
	// Drop, when set, loses the datagrams it returns true for (it sees
	// every datagram sent).
	Drop func(from, to netip.AddrPort, data []byte) bool
	// Cut, when set, loses the datagrams between from and to that are
	// due while it returns true (a partition: datagrams in flight when
	// it begins are lost too).
	Cut func(from, to netip.AddrPort) bool
	// Batch delivers every datagram due at one instant before it drains
	// the nodes that got any, as the UDP runtime reads a batch before it
	// calls Ready; without it each datagram is drained on its own.
	Batch bool
	Sent  int // datagrams sent
	Nodes map[netip.AddrPort]N
	Order []N // in the order added

	maxDatagram int
	queue       heapq.Queue[delivery] // by time, then by order sent
	seq         uint64
}

type delivery struct {
	at       time.Time
	seq      uint64
	from, to netip.AddrPort
	data     []byte
}

// deliveredBefore orders deliveries by time, then by the order they were
// sent, so that a run repeats exactly.
func deliveredBefore(a, b delivery) bool {
	if a.at.Equal(b.at) {
		return a.seq < b.seq
	}
	return a.at.Before(b.at)
}

// NewNet returns an empty network with 10 ms of latency, seeded by seed,
// that fails the test on any datagram over maxDatagram bytes.
func NewNet[N Node](t testing.TB, seed uint64, maxDatagram int) *Net[N] {
	return &Net[N]{
		T:           t,
		Now:         time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		Rng:         rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		Latency:     10 * time.Millisecond,
		Nodes:       make(map[netip.AddrPort]N),
		maxDatagram: maxDatagram,
		queue:       heapq.Queue[delivery]{Before: deliveredBefore},
	}
}

// NextAddr is the loopback address the next node added gets.
func (n *Net[N]) NextAddr() netip.AddrPort {
	i := len(n.Order) + 1
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, byte(i >> 8), byte(i)}), 6881)
}

// NewRand is a deterministic io.Reader for an engine's Config.Rand,
// drawn from the network's seed.
func (n *Net[N]) NewRand() Reader {
	return Reader{rand.New(rand.NewPCG(n.Rng.Uint64(), n.Rng.Uint64()))}
}

// Reader is a deterministic io.Reader.
type Reader struct{ R *rand.Rand }

func (s Reader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(s.R.Uint32())
	}
	return len(p), nil
}

// Add puts a node on the network and drains it.
func (n *Net[N]) Add(nd N) N {
	n.Nodes[nd.Addr()] = nd
	n.Order = append(n.Order, nd)
	n.Flush(nd)
	return nd
}

// Flush drains a node: queues its datagrams (failing the test on one
// over the limit), and lets it keep its results.
func (n *Net[N]) Flush(nd N) {
	from := nd.Addr()
	nd.Drain(n.Now, func(to netip.AddrPort, data []byte) {
		n.Sent++
		if len(data) > n.maxDatagram {
			n.T.Fatalf("%v sent a datagram of %d bytes to %v, over MaxDatagram (%d): %.80q", from, len(data), to, n.maxDatagram, data)
		}
		if n.Drop != nil && n.Drop(from, to, data) {
			return
		}
		n.push(from, to, data)
	})
}

func (n *Net[N]) push(from, to netip.AddrPort, data []byte) {
	n.seq++
	n.queue.Push(delivery{at: n.Now.Add(n.Latency + n.Slow[from]), seq: n.seq, from: from, to: to, data: bytes.Clone(data)})
}

// Inject delivers a raw datagram to a node now, as if from `from`, and
// returns the datagrams it sends back to `from` (the rest are queued).
func (n *Net[N]) Inject(to N, from netip.AddrPort, data []byte) [][]byte {
	to.Engine().Receive(n.Now, from, data)
	var back [][]byte
	to.Drain(n.Now, func(dst netip.AddrPort, data []byte) {
		if dst == from {
			back = append(back, bytes.Clone(data))
			return
		}
		n.push(to.Addr(), dst, data)
	})
	return back
}

// nextEvent is the earliest delivery or engine deadline.
func (n *Net[N]) nextEvent() (time.Time, bool) {
	var t time.Time
	ok := false
	if d, queued := n.queue.Peek(); queued {
		t, ok = d.at, true
	}
	for _, nd := range n.Order {
		if d := nd.Engine().Deadline(); !nd.IsDown() && !d.IsZero() && (!ok || d.Before(t)) {
			t, ok = d, true
		}
	}
	return t, ok
}

// RunUntil advances virtual time, event by event, until cond holds or
// limit of virtual time has passed. It reports whether cond held.
func (n *Net[N]) RunUntil(limit time.Duration, cond func() bool) bool {
	end := n.Now.Add(limit)
	for !cond() {
		t, ok := n.nextEvent()
		if !ok || t.After(end) {
			n.Now = end
			return cond()
		}
		if t.After(n.Now) {
			n.Now = t
		}
		var got []N
		for d, ok := n.queue.Peek(); ok && !d.at.After(n.Now); d, ok = n.queue.Peek() {
			n.queue.Pop()
			nd, ok := n.Nodes[d.to]
			if !ok || nd.IsDown() || n.Cut != nil && n.Cut(d.from, d.to) {
				continue
			}
			nd.Engine().Receive(n.Now, d.from, d.data)
			if !n.Batch {
				n.Flush(nd)
			} else if !slices.ContainsFunc(got, func(x N) bool { return x.Addr() == nd.Addr() }) {
				got = append(got, nd)
			}
		}
		for _, nd := range got {
			n.Flush(nd)
		}
		for _, nd := range n.Order {
			if d := nd.Engine().Deadline(); !nd.IsDown() && !d.IsZero() && !d.After(n.Now) {
				nd.Engine().Tick(n.Now)
				n.Flush(nd)
			}
		}
	}
	return true
}

// Run advances virtual time by d.
func (n *Net[N]) Run(d time.Duration) { n.RunUntil(d, func() bool { return false }) }

// SameSet reports whether a and b hold the same elements, each once (the
// nodes that hold a key, and the ones that should).
func SameSet[T comparable](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}
