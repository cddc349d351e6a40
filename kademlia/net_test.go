package kademlia

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/internal/enginetest"
)

// testNet is the shared in-memory network with virtual time
// (enginetest.Net) with Kademlia's nodes on it.
type testNet struct {
	*enginetest.Net[*testNode]
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

func (tn *testNode) Engine() enginetest.Engine { return tn.e }
func (tn *testNode) Addr() netip.AddrPort      { return tn.addr }
func (tn *testNode) IsDown() bool              { return tn.down }

// Drain applies the engine's Ready: its datagrams to send, its results
// and events kept.
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
		tn.events = append(tn.events, timedEvent{now, ev})
	}
}

func newTestNet(t testing.TB, seed uint64) *testNet {
	return &testNet{enginetest.NewNet[*testNode](t, seed, MaxDatagram)}
}

// seededReader is a deterministic io.Reader for Config.Rand.
type seededReader = enginetest.Reader

// add starts an engine at the next loopback address.
func (n *testNet) add(cfg Config) *testNode { return n.addAt(n.NextAddr(), cfg) }

// addAt starts an engine at addr: attack tests forge public addresses.
func (n *testNet) addAt(addr netip.AddrPort, cfg Config) *testNode {
	if cfg.Rand == nil {
		cfg.Rand = n.NewRand()
	}
	if cfg.Network == "" {
		cfg.Network = "test"
	}
	return n.Add(&testNode{addr: addr, e: New(cfg, n.Now), results: make(map[OpID]Result)})
}

// do starts an op on a node and runs the network until it finishes.
func (n *testNet) do(tn *testNode, op Op) Result {
	n.T.Helper()
	opID := tn.e.Start(n.Now, op)
	n.Flush(tn)
	if !n.RunUntil(10*time.Minute, func() bool { _, ok := tn.results[opID]; return ok }) {
		n.T.Fatalf("%T did not finish within 10 virtual minutes", op)
	}
	return tn.results[opID]
}

// build starts size nodes, each bootstrapping from up to three earlier
// ones, and waits until every one has joined.
func (n *testNet) build(size int, cfg Config) {
	n.T.Helper()
	first := n.add(cfg)
	for i := 1; i < size; i++ {
		c := cfg
		c.Bootstrap = nil
		for range min(3, i) {
			c.Bootstrap = append(c.Bootstrap, n.Order[n.Rng.IntN(i)].addr)
		}
		n.add(c)
	}
	_ = first
	joined := func() bool {
		for _, tn := range n.Order[1:] {
			if !tn.e.boot.joined {
				return false
			}
		}
		return true
	}
	if !n.RunUntil(10*time.Minute, joined) {
		n.T.Fatalf("not every node joined within 10 virtual minutes")
	}
	// Let the refresh lookups that follow each join settle.
	n.RunUntil(30*time.Second, func() bool { return false })
}

func (n *testNet) String() string {
	return fmt.Sprintf("testNet(%d nodes, %d datagrams)", len(n.Order), n.Sent)
}
