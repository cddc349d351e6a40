package interop

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/krpc"
)

// newLibtorrent starts a libtorrent node, or skips the test when Debian's
// python3-libtorrent is not installed.
func newLibtorrent(t testing.TB, seeds ...netip.AddrPort) *LTNode {
	t.Helper()
	var args []string
	if len(seeds) > 0 {
		ss := make([]string, len(seeds))
		for i, s := range seeds {
			ss[i] = s.String()
		}
		args = append(args, "--seeds", strings.Join(ss, ","))
	}
	n, err := StartLibtorrent(args...)
	if errors.Is(err, ErrNoLibtorrent) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func ltHas(t testing.TB, n *LTNode, addr netip.AddrPort) bool {
	t.Helper()
	nodes, err := n.LiveNodes()
	if err != nil {
		t.Fatal(err)
	}
	return slices.ContainsFunc(nodes, func(c LTContact) bool { return c.Addr == addr.String() })
}

// TestLibtorrentAnswersUs: our ping, find_node, get_peers and
// announce_peer to libtorrent are answered, and our parser reads its
// answers.
func TestLibtorrentAnswersUs(t *testing.T) {
	if testing.Short() {
		t.Skip("starts libtorrent processes")
	}
	// l knows two other libtorrent nodes, which it contacted itself.
	l2, l3 := newLibtorrent(t), newLibtorrent(t)
	l := newLibtorrent(t, l2.Addr, l3.Addr)
	if !eventually(10*time.Second, func() bool { return ltHas(t, l, l2.Addr) && ltHas(t, l, l3.Addr) }) {
		t.Fatal("libtorrent did not add its seeds to its table")
	}
	n := newNode(t)
	ctx := timeout(t, 60*time.Second)

	// ping
	got, err := n.Ping(ctx, l.Addr)
	if err != nil {
		t.Fatalf("ping libtorrent: %v", err)
	}
	if got != id.ID(l.ID) {
		t.Fatalf("ping: id %v, want libtorrent's %x", got, l.ID)
	}

	// find_node: joining through l finds the nodes only l knows.
	bootstrap(t, n, l.Addr)
	found, err := n.Lookup(ctx, randomID())
	if err != nil {
		t.Fatalf("lookup through libtorrent: %v", err)
	}
	for _, want := range []netip.AddrPort{l.Addr, l2.Addr, l3.Addr} {
		if !slices.ContainsFunc(found, func(ni krpc.NodeInfo) bool { return ni.Addr == want }) {
			t.Errorf("lookup result %v lacks %v", found, want)
		}
	}

	// announce_peer: libtorrent accepts our token and stores us; get_peers
	// then finds us there.
	ih := randomID()
	if err := n.Announce(ctx, ih, 42001); err != nil {
		t.Fatalf("announce to libtorrent: %v", err)
	}
	want := LTAnnounce{IH: ih.String(), IP: "127.0.0.1", Port: 42001}
	var anns []LTAnnounce
	if !eventually(5*time.Second, func() bool {
		_, anns, err = l.Seen()
		return err == nil && slices.Contains(anns, want)
	}) {
		t.Fatalf("libtorrent accepted announces %v (err %v), want %+v", anns, err, want)
	}
	peers, err := n.GetPeers(ctx, ih)
	if err != nil {
		t.Fatalf("get_peers: %v", err)
	}
	if !containsAddr(peers, loopback(42001)) {
		t.Fatalf("get_peers found %v, want %v", peers, loopback(42001))
	}
}

// TestWeAnswerLibtorrent: libtorrent's queries to us are answered and it
// reads our answers: it adds us and our contacts to its table, its
// get_peers finds a peer stored with us, and its announce reaches us.
func TestWeAnswerLibtorrent(t *testing.T) {
	if testing.Short() {
		t.Skip("starts libtorrent processes")
	}
	ours := newNodes(t, 4)
	n := ours[0]
	ctx := timeout(t, 60*time.Second)
	ih := randomID()
	if err := ours[2].Announce(ctx, ih, 42002); err != nil {
		t.Fatalf("announce among our nodes: %v", err)
	}

	l := newLibtorrent(t, n.Addr())
	if !eventually(10*time.Second, func() bool { return ltHas(t, l, n.Addr()) }) {
		t.Fatal("libtorrent did not add our node: it did not read our answer")
	}
	peers, err := l.GetPeers(ih, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !containsAddr(peers, loopback(42002)) {
		t.Fatalf("libtorrent get_peers found %v, want %v", peers, loopback(42002))
	}
	// Its get_peers walked from n to our other nodes: it read n's nodes.
	if !eventually(5*time.Second, func() bool {
		return ltHas(t, l, ours[1].Addr()) || ltHas(t, l, ours[2].Addr()) || ltHas(t, l, ours[3].Addr())
	}) {
		t.Error("libtorrent learned none of our nodes from our answers")
	}

	// sample_infohashes (BEP 51), a direct query, to the node that libtorrent
	// found the peer at.
	num, samples, err := l.SampleInfohashes(n.Addr(), randomID())
	if err != nil {
		t.Fatalf("libtorrent sample_infohashes: %v", err)
	}
	if num < 1 || !slices.Contains(samples, ih.String()) {
		t.Errorf("sample_infohashes from %v: num %d, samples %v; want %v among them", n.Addr(), num, samples, ih)
	}

	// libtorrent announces; its announce_peer carries our token.
	ih2 := randomID()
	port, err := l.Announce(ih2)
	if err != nil {
		t.Fatal(err)
	}
	want := loopback(port)
	if !eventually(20*time.Second, func() bool {
		got, err := ours[3].GetPeers(ctx, ih2)
		return err == nil && containsAddr(got, want)
	}) {
		got, _ := ours[3].GetPeers(ctx, ih2)
		t.Fatalf("our get_peers found %v after libtorrent's announce, want %v", got, want)
	}
	seen, _, err := l.Seen()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("libtorrent packets: %v", seen)
	for _, k := range []string{"out q get_peers", "out q announce_peer", "in r"} {
		if seen[k] == 0 {
			t.Errorf("libtorrent saw no %q", k)
		}
	}
	if seen["in e"] > 0 {
		t.Errorf("libtorrent received %d error replies", seen["in e"])
	}
}

// TestMixedLibtorrent: in a network of 6 dhtkit nodes and 3 libtorrent
// nodes, an announce made by one kind is found by get_peers from the
// other, both ways.
func TestMixedLibtorrent(t *testing.T) {
	if testing.Short() {
		t.Skip("starts libtorrent processes")
	}
	ours := newNodes(t, 6)
	var lts []*LTNode
	for i := range 3 {
		lts = append(lts, newLibtorrent(t, ours[i].Addr(), ours[i+3].Addr()))
	}
	for i, n := range ours {
		bootstrap(t, n, lts[i%3].Addr)
	}
	ctx := timeout(t, 90*time.Second)

	t.Run("ours announces, libtorrent finds", func(t *testing.T) {
		ih := randomID()
		if err := ours[4].Announce(ctx, ih, 43001); err != nil {
			t.Fatalf("announce: %v", err)
		}
		got, err := lts[1].GetPeers(ih, 20*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if !containsAddr(got, loopback(43001)) {
			t.Fatalf("libtorrent get_peers found %v, want %v", got, loopback(43001))
		}
	})
	t.Run("libtorrent announces, ours finds", func(t *testing.T) {
		ih := randomID()
		port, err := lts[2].Announce(ih)
		if err != nil {
			t.Fatal(err)
		}
		want := loopback(port)
		if !eventually(20*time.Second, func() bool {
			got, err := ours[1].GetPeers(ctx, ih)
			return err == nil && containsAddr(got, want)
		}) {
			got, _ := ours[1].GetPeers(ctx, ih)
			t.Fatalf("our get_peers found %v, want %v", got, want)
		}
	})
}
