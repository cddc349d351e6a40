package chord

import (
	"bytes"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/internal/enginetest"
	"github.com/dhtkit/dhtkit/kademlia"
)

// testNet is the shared in-memory network with virtual time
// (enginetest.Net) with Chord's nodes on it.
type testNet struct {
	*enginetest.Net[*testNode]
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

func (tn *testNode) Engine() enginetest.Engine { return tn.e }
func (tn *testNode) Addr() netip.AddrPort      { return tn.addr }
func (tn *testNode) IsDown() bool              { return tn.down }

// Drain applies the engine's Ready: its datagrams to send, its results kept.
func (tn *testNode) Drain(now time.Time, send func(netip.AddrPort, []byte)) {
	rd := tn.e.Ready()
	for _, p := range rd.Packets {
		send(p.To, p.Data)
	}
	for _, r := range rd.Results {
		tn.results[r.Op] = r
	}
	for _, ev := range rd.Events {
		if ev.Listening {
			continue // replica's engine tests count them
		}
		ev.Record.Value = bytes.Clone(ev.Record.Value)
		tn.events = append(tn.events, timedEvent{ev, now})
	}
}

func newTestNet(t testing.TB, seed uint64) *testNet {
	return &testNet{enginetest.NewNet[*testNode](t, seed, kademlia.MaxDatagram)}
}

// add starts an engine at the next loopback address.
func (n *testNet) add(cfg Config) *testNode {
	if cfg.Rand == nil {
		cfg.Rand = n.NewRand()
	}
	if cfg.Network == "" {
		cfg.Network = "test"
	}
	return n.Add(&testNode{addr: n.NextAddr(), e: New(cfg, n.Now), results: make(map[kademlia.OpID]kademlia.Result)})
}

// do starts an op on a node and runs the network until it finishes.
func (n *testNet) do(tn *testNode, op kademlia.Op) kademlia.Result {
	n.T.Helper()
	opID := tn.e.Start(n.Now, op)
	n.Flush(tn)
	if !n.RunUntil(10*time.Minute, func() bool { _, ok := tn.results[opID]; return ok }) {
		n.T.Fatalf("%T did not finish within 10 virtual minutes", op)
	}
	return tn.results[opID]
}

// build starts size nodes, each joining through one random earlier node,
// a second apart, and waits until every one has joined.
func (n *testNet) build(size int, cfg Config) {
	n.T.Helper()
	n.add(cfg)
	for i := 1; i < size; i++ {
		c := cfg
		c.Bootstrap = []netip.AddrPort{n.Order[n.Rng.IntN(i)].addr}
		n.add(c)
		n.Run(time.Second)
	}
	if !n.RunUntil(10*time.Minute, n.allJoined) {
		n.T.Fatalf("not every node joined within 10 virtual minutes")
	}
}

func (n *testNet) allJoined() bool {
	for _, tn := range n.Order {
		if !tn.down && !tn.e.Joined() {
			return false
		}
	}
	return true
}

// live returns the nodes up, sorted by id: the true ring.
func (n *testNet) live() []*testNode {
	var out []*testNode
	for _, tn := range n.Order {
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

// seededReader is a deterministic io.Reader for Config.Rand.
type seededReader = enginetest.Reader
