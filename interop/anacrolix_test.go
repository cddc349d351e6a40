package interop

import (
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/anacrolix/dht/v2"
	"github.com/anacrolix/dht/v2/int160"
	akrpc "github.com/anacrolix/dht/v2/krpc"
	peer_store "github.com/anacrolix/dht/v2/peer-store"

	"github.com/dhtkit/dhtkit"
	"github.com/dhtkit/dhtkit/id"
)

func newAnacrolix(t testing.TB) (*dht.Server, *PeerStore) {
	t.Helper()
	s, ps, err := StartAnacrolix("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s, ps
}

func udp(a netip.AddrPort) *net.UDPAddr { return net.UDPAddrFromAddrPort(a) }

// anacrolixKnows makes s ping each address, so that s holds them as good
// nodes (anacrolix returns only nodes that have answered it).
func anacrolixKnows(t testing.TB, s *dht.Server, addrs ...netip.AddrPort) {
	t.Helper()
	for _, a := range addrs {
		if r := s.Ping(udp(a)); r.Err != nil {
			t.Fatalf("anacrolix ping %v: %v", a, r.Err)
		}
	}
}

// TestAnacrolixAnswersUs: our ping, find_node, get_peers and announce_peer
// to anacrolix/dht are answered, and our parser reads its answers.
func TestAnacrolixAnswersUs(t *testing.T) {
	// anacrolix fills find_node answers from a few buckets only, so with
	// some random ids it answers with none of the nodes it knows: build
	// its little network again until it answers with some.
	var a *dht.Server
	var aps *PeerStore
	var carried []netip.AddrPort
	probe, _ := newAnacrolix(t)
	n := newNode(t)
	for try := 0; len(carried) == 0; try++ {
		if try == 5 {
			t.Fatal("anacrolix answers find_node with no nodes: the test network is not set up")
		}
		a, aps = newAnacrolix(t)
		var others []netip.AddrPort
		for range 6 {
			o, _ := newAnacrolix(t)
			others = append(others, AnacrolixAddr(o))
		}
		anacrolixKnows(t, a, others...)
		r := probe.FindNode(dht.NewAddr(udp(AnacrolixAddr(a))), int160.FromByteArray(n.ID()), dht.QueryRateLimiting{})
		if r.Err != nil || r.Reply.R == nil {
			t.Fatalf("probe find_node to anacrolix: %v", r.Err)
		}
		for _, ni := range r.Reply.R.Nodes {
			carried = append(carried, ni.Addr.ToNodeAddrPort().AddrPort)
		}
	}
	ctx := timeout(t, 30*time.Second)

	// ping
	got, err := n.Ping(ctx, AnacrolixAddr(a))
	if err != nil {
		t.Fatalf("ping anacrolix: %v", err)
	}
	if got != id.ID(a.ID()) {
		t.Fatalf("ping: id %v, want anacrolix's %x", got, a.ID())
	}

	// find_node: joining through a finds the nodes that a's find_node
	// answers carry (anacrolix picks them by the query's info_hash, zero
	// for find_node, and skips closer buckets: not always all it knows).
	bootstrap(t, n, AnacrolixAddr(a))
	found, err := n.Lookup(ctx, n.ID())
	if err != nil {
		t.Fatalf("lookup through anacrolix: %v", err)
	}
	seen := map[netip.AddrPort]bool{}
	for _, ni := range found {
		seen[ni.Addr] = true
	}
	for _, c := range carried {
		if !seen[c] {
			t.Errorf("lookup result %v lacks %v, which anacrolix's find_node answer carries", found, c)
		}
	}

	// get_peers: a peer stored at a is found.
	ih := randomID()
	stored := loopback(40001)
	aps.AddPeer(peer_store.InfoHash(ih), akrpc.NodeAddr{IP: stored.Addr().AsSlice(), Port: int(stored.Port())})
	peers, err := n.GetPeers(ctx, ih)
	if err != nil {
		t.Fatalf("get_peers: %v", err)
	}
	if !containsAddr(peers, stored) {
		t.Fatalf("get_peers found %v, want %v from anacrolix", peers, stored)
	}

	// announce_peer: anacrolix accepts our token and stores us.
	ih2 := randomID()
	if err := n.Announce(ctx, ih2, 40002); err != nil {
		t.Fatalf("announce: %v", err)
	}
	if !eventually(5*time.Second, func() bool { return containsAddr(aps.Peers(ih2), loopback(40002)) }) {
		t.Fatalf("anacrolix stored %v for the announced infohash, want %v", aps.Peers(ih2), loopback(40002))
	}
}

// TestWeAnswerAnacrolix: anacrolix/dht's ping, find_node, get_peers and
// announce_peer to us are answered, and it reads our answers.
func TestWeAnswerAnacrolix(t *testing.T) {
	nodes := newNodes(t, 5)
	n := nodes[0]
	a, _ := newAnacrolix(t)

	// ping
	r := a.Ping(udp(n.Addr()))
	if r.Err != nil {
		t.Fatalf("anacrolix ping: %v", r.Err)
	}
	if got := r.Reply.SenderID(); got == nil || *got != akrpc.ID(n.ID()) {
		t.Fatalf("ping answered with id %v, want %v", got, n.ID())
	}

	// find_node: our answer carries our contacts, in compact form.
	target := randomID()
	r = a.FindNode(dht.NewAddr(udp(n.Addr())), int160.FromByteArray(target), dht.QueryRateLimiting{})
	if r.Err != nil {
		t.Fatalf("anacrolix find_node: %v", r.Err)
	}
	if r.Reply.R == nil || len(r.Reply.R.Nodes) == 0 {
		t.Fatalf("find_node answer carries no nodes: %+v", r.Reply)
	}
	known := map[netip.AddrPort]bool{AnacrolixAddr(a): true} // a pinged n: n may know it
	for _, o := range nodes[1:] {
		known[o.Addr()] = true
	}
	for _, ni := range r.Reply.R.Nodes {
		if !known[ni.Addr.ToNodeAddrPort().AddrPort] {
			t.Errorf("find_node answer has %v, not one of our nodes", ni.Addr)
		}
	}

	// get_peers gives a token; announce_peer with it is accepted; a second
	// get_peers returns the announced peer.
	ih := randomID()
	r = a.GetPeers(timeout(t, 10*time.Second), dht.NewAddr(udp(n.Addr())), int160.FromByteArray(ih), false, dht.QueryRateLimiting{})
	if r.Err != nil {
		t.Fatalf("anacrolix get_peers: %v", r.Err)
	}
	if r.Reply.R == nil || r.Reply.R.Token == nil || *r.Reply.R.Token == "" {
		t.Fatalf("get_peers answer has no token: %+v", r.Reply)
	}
	port := 40003
	r = a.Query(timeout(t, 10*time.Second), dht.NewAddr(udp(n.Addr())), "announce_peer", dht.QueryInput{
		MsgArgs: akrpc.MsgArgs{InfoHash: akrpc.ID(ih), Port: &port, Token: *r.Reply.R.Token},
	})
	if r.Err != nil || r.Reply.Y != "r" {
		t.Fatalf("announce_peer: err %v, reply %+v (error %v)", r.Err, r.Reply, r.Reply.E)
	}
	r = a.GetPeers(timeout(t, 10*time.Second), dht.NewAddr(udp(n.Addr())), int160.FromByteArray(ih), false, dht.QueryRateLimiting{})
	if r.Err != nil || r.Reply.R == nil {
		t.Fatalf("anacrolix get_peers after announce: %v %+v", r.Err, r.Reply)
	}
	var values []netip.AddrPort
	for _, v := range r.Reply.R.Values {
		values = append(values, v.ToNodeAddrPort().AddrPort)
	}
	if !containsAddr(values, loopback(port)) {
		t.Fatalf("get_peers values %v, want %v", values, loopback(port))
	}

	// A bad token is refused.
	bad := 40004
	r = a.Query(timeout(t, 10*time.Second), dht.NewAddr(udp(n.Addr())), "announce_peer", dht.QueryInput{
		MsgArgs: akrpc.MsgArgs{InfoHash: akrpc.ID(ih), Port: &bad, Token: "forged"},
	})
	if r.Err == nil && r.Reply.Y == "r" {
		t.Fatalf("announce_peer with a forged token was accepted")
	}
}

// TestMixedAnacrolix: in a network of 10 dhtkit nodes and 10 anacrolix
// servers, an announce made by one kind is found by get_peers from the
// other, both ways.
// mixedAnacrolix starts `each` dhtkit nodes and `each` anacrolix servers
// joined into one network.
func mixedAnacrolix(t *testing.T, each int) ([]*dhtkit.Node, []*dht.Server) {
	t.Helper()
	ours := newNodes(t, each)
	var theirs []*dht.Server
	for range each {
		s, _ := newAnacrolix(t)
		theirs = append(theirs, s)
	}
	// Each anacrolix server knows two of ours and the previous server; each
	// of our nodes joins through an anacrolix server too.
	for i, s := range theirs {
		anacrolixKnows(t, s, ours[i].Addr(), ours[(i+1)%each].Addr())
		if i > 0 {
			anacrolixKnows(t, s, AnacrolixAddr(theirs[i-1]))
		}
	}
	for i, n := range ours {
		bootstrap(t, n, AnacrolixAddr(theirs[(i+each/2)%each]))
	}
	for _, s := range theirs {
		if _, err := s.Bootstrap(); err != nil {
			t.Fatalf("anacrolix bootstrap: %v", err)
		}
	}
	return ours, theirs
}

func TestMixedAnacrolix(t *testing.T) {
	const each = 10
	ours, theirs := mixedAnacrolix(t, each)
	// The network is mixed: each kind has the other in its table.
	anacrolixAddrs := map[netip.AddrPort]bool{}
	for _, s := range theirs {
		anacrolixAddrs[AnacrolixAddr(s)] = true
	}
	for _, n := range ours {
		if !slices.ContainsFunc(contacts(n), func(a netip.AddrPort) bool { return anacrolixAddrs[a] }) {
			t.Errorf("dhtkit node %v has no anacrolix server in its table", n.Addr())
		}
	}
	ourAddrs := map[netip.AddrPort]bool{}
	for _, n := range ours {
		ourAddrs[n.Addr()] = true
	}
	for _, s := range theirs {
		if !slices.ContainsFunc(s.Nodes(), func(ni akrpc.NodeInfo) bool { return ourAddrs[ni.Addr.ToNodeAddrPort().AddrPort] }) {
			t.Errorf("anacrolix server %v has no dhtkit node in its table", AnacrolixAddr(s))
		}
	}
	ctx := timeout(t, 60*time.Second)

	t.Run("ours announces, anacrolix finds", func(t *testing.T) {
		ih := randomID()
		if err := ours[3].Announce(ctx, ih, 41001); err != nil {
			t.Fatalf("announce: %v", err)
		}
		got := anacrolixGetPeers(t, theirs[7], ih)
		if !containsAddr(got, loopback(41001)) {
			t.Fatalf("anacrolix get_peers found %v, want %v", got, loopback(41001))
		}
	})
	t.Run("anacrolix announces, ours finds", func(t *testing.T) {
		ih := randomID()
		ann, err := theirs[5].AnnounceTraversal(ih, dht.AnnouncePeer(dht.AnnouncePeerOpts{Port: 41002}))
		if err != nil {
			t.Fatalf("anacrolix announce: %v", err)
		}
		for range ann.Peers {
		}
		ann.Close()
		got, err := ours[8].GetPeers(ctx, ih)
		if err != nil {
			t.Fatalf("get_peers: %v", err)
		}
		if !containsAddr(got, loopback(41002)) {
			t.Fatalf("get_peers found %v, want %v", got, loopback(41002))
		}
	})
}

// anacrolixGetPeers runs anacrolix's get_peers traversal to its end.
func anacrolixGetPeers(t *testing.T, s *dht.Server, ih id.ID) []netip.AddrPort {
	t.Helper()
	ann, err := s.AnnounceTraversal(ih)
	if err != nil {
		t.Fatalf("anacrolix get_peers: %v", err)
	}
	defer ann.Close()
	var out []netip.AddrPort
	for pv := range ann.Peers {
		for _, p := range pv.Peers {
			out = append(out, p.ToNodeAddrPort().AddrPort)
		}
	}
	return out
}
