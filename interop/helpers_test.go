package interop

import (
	"context"
	"crypto/rand"
	"log/slog"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit"
	"github.com/dhtkit/dhtkit/id"
)

// newNode starts a dhtkit node on loopback as a standard BEP 5 node
// (Network "mainline", no private network tag). Every node of a test
// shares 127.0.0.1, so the per-IP rate limit is off.
func newNode(t testing.TB) *dhtkit.Node {
	t.Helper()
	cfg := dhtkit.DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.Network = dhtkit.Mainline
	cfg.Kademlia.TrustLoopback = true // the test's nodes and peers share 127.0.0.1
	cfg.Logger = slog.New(slog.DiscardHandler)
	n, err := dhtkit.Listen(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// newNodes starts n dhtkit nodes, all bootstrapped through the first.
func newNodes(t testing.TB, n int) []*dhtkit.Node {
	t.Helper()
	nodes := make([]*dhtkit.Node, n)
	for i := range nodes {
		nodes[i] = newNode(t)
	}
	for _, nd := range nodes[1:] {
		bootstrap(t, nd, nodes[0].Addr())
	}
	return nodes
}

func bootstrap(t testing.TB, n *dhtkit.Node, addrs ...netip.AddrPort) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.Bootstrap(ctx, addrs...); err != nil {
		t.Fatalf("bootstrap through %v: %v", addrs, err)
	}
}

func timeout(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func randomID() id.ID {
	var x id.ID
	rand.Read(x[:])
	return x
}

func loopback(port int) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), uint16(port))
}

// eventually retries f every 100ms until it returns true or d passes.
func eventually(d time.Duration, f func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if f() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// contacts lists the addresses in n's routing table.
func contacts(n *dhtkit.Node) []netip.AddrPort {
	var out []netip.AddrPort
	for _, b := range n.Routing() {
		for _, c := range b.Contacts {
			out = append(out, c.Addr)
		}
	}
	return out
}

func containsAddr(as []netip.AddrPort, a netip.AddrPort) bool { return slices.Contains(as, a) }
