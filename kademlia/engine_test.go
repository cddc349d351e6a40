package kademlia

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/krpc"
	"github.com/dhtkit/dhtkit/routing"
)

func TestPing(t *testing.T) {
	n := newTestNet(t, 1)
	a, b := n.add(Config{}), n.add(Config{})
	r := n.do(a, Ping{Addr: b.addr})
	if r.Err != nil || r.ID != b.e.ID() {
		t.Fatalf("ping: got id %v err %v, want %v", r.ID, r.Err, b.e.ID())
	}
	// Both now know each other: a from the response, b from the query.
	if _, ok := a.e.Table().Get(b.e.ID()); !ok {
		t.Error("pinger did not add the responder")
	}
	if _, ok := b.e.Table().Get(a.e.ID()); !ok {
		t.Error("responder did not add the pinger")
	}
}

func TestPingTimeout(t *testing.T) {
	n := newTestNet(t, 1)
	a := n.add(Config{QueryTimeout: time.Second})
	dead := netip.MustParseAddrPort("127.9.9.9:6881")
	r := n.do(a, Ping{Addr: dead})
	if !errors.Is(r.Err, ErrTimeout) {
		t.Fatalf("ping of a dead address: err %v, want ErrTimeout", r.Err)
	}
	if r.Stats.Duration != time.Second {
		t.Errorf("timed out after %v, want the 1s QueryTimeout", r.Stats.Duration)
	}
}

// trueClosest returns the k ids nearest to target among all nodes but self.
func trueClosest(n *testNet, self, target id.ID, k int) []id.ID {
	var all []id.ID
	for _, tn := range n.Order {
		if tn.e.ID() != self {
			all = append(all, tn.e.ID())
		}
	}
	slices.SortFunc(all, func(a, b id.ID) int { return id.CompareDistance(target, a, b) })
	return all[:k]
}

func ids(nodes []krpc.NodeInfo) []id.ID {
	out := make([]id.ID, len(nodes))
	for i, n := range nodes {
		out[i] = n.ID
	}
	return out
}

func TestLookupFindsTrueClosest(t *testing.T) {
	for _, tc := range []struct {
		name  string
		nodes int
		loss  float64
		beta  int     // the lookup's Beta: it must return the Beta closest exactly
		want  float64 // fraction of lookups that do
	}{
		{"200 nodes", 200, 0, 8, 0.99},
		// Each query is tried twice, so with 5% loss per datagram a
		// true-closest node is missed with probability ~1% per node.
		{"200 nodes 5% loss", 200, 0.05, 8, 0.90},
		{"200 nodes, Beta 3", 200, 0, 3, 0.99},
		{"200 nodes 5% loss, Beta 3", 200, 0.05, 3, 0.95},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Under loss one network's figure moves by a few lookups with
			// any change of timing (seed 7 alone gave 177 to 188 of 200
			// for changes that help on average), so the lossy cases count
			// over three networks.
			seeds := []uint64{7}
			if tc.loss > 0 {
				seeds = append(seeds, 8, 9)
			}
			lookups := 200 * len(seeds)
			exact := 0
			var hops, queries int
			var n *testNet
			for _, seed := range seeds {
				n = newTestNet(t, seed)
				if tc.loss > 0 {
					n.Drop = func(_, _ netip.AddrPort, _ []byte) bool { return n.Rng.Float64() < tc.loss }
				}
				n.build(tc.nodes, Config{Beta: tc.beta})
				for i := range 200 {
					src := n.Order[n.Rng.IntN(len(n.Order))]
					target := id.Random(seededReader{R: n.Rng})
					r := n.do(src, FindNode{Target: target})
					if r.Err != nil {
						t.Errorf("lookup %d: %v", i, r.Err)
						continue
					}
					if len(r.Nodes) >= tc.beta && slices.Equal(ids(r.Nodes[:tc.beta]), trueClosest(n, src.e.ID(), target, tc.beta)) {
						exact++
					}
					hops += r.Stats.Hops
					queries += r.Stats.Queries
				}
			}
			frac := float64(exact) / float64(lookups)
			t.Logf("%s (×%d): %d/%d exact, %.1f hops, %.1f queries per lookup", n, len(seeds), exact, lookups,
				float64(hops)/float64(lookups), float64(queries)/float64(lookups))
			if frac < tc.want {
				t.Errorf("only %.1f%% of lookups found the true %d closest, want ≥ %.0f%%", 100*frac, tc.beta, 100*tc.want)
			}
		})
	}
}

func TestBetaSparesTheSlowest(t *testing.T) {
	// One of the 8 nodes closest to the target, but not of the 3 closest,
	// answers 200 ms late (still within its soft timeout). A lookup that
	// reads ends once the 3 closest have answered, listing the nodes that
	// answered; one that waits for all K (Beta = K, or an announce) waits
	// for it and lists the true 8 closest.
	for _, tc := range []struct {
		name     string
		beta     int
		announce bool
		wait     bool
	}{
		{"find_node, Beta 3", 3, false, false},
		{"find_node, Beta K", 8, false, true},
		{"announce waits for every token", 3, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newTestNet(t, 11)
			n.build(300, Config{Beta: tc.beta})
			src := n.Order[0]
			target := id.Random(seededReader{R: n.Rng})
			want := trueClosest(n, src.e.ID(), target, 8)
			n.Slow = map[netip.AddrPort]time.Duration{}
			for _, tn := range n.Order {
				if tn.e.ID() == want[5] {
					n.Slow[tn.addr] = 200 * time.Millisecond
				}
			}
			var r Result
			if tc.announce {
				r = n.do(src, Announce{InfoHash: target, Port: 6881})
			} else {
				r = n.do(src, FindNode{Target: target})
			}
			if r.Err != nil {
				t.Fatal(r.Err)
			}
			got := ids(r.Nodes)
			if tc.wait && !slices.Equal(got, want) {
				t.Errorf("nodes %v, want the true 8 closest %v", got, want)
			}
			if !tc.wait && (len(got) < 3 || !slices.Equal(got[:3], want[:3]) || slices.Contains(got, want[5])) {
				t.Errorf("nodes %v, want the 3 closest %v first and not the slow %v", got, want[:3], want[5])
			}
			if waited := r.Stats.Duration >= 200*time.Millisecond; waited != tc.wait {
				t.Errorf("lookup took %v: waited for the slow node %v, want %v", r.Stats.Duration, waited, tc.wait)
			}
		})
	}
}

func TestAnnounceThenGetPeers(t *testing.T) {

	n := newTestNet(t, 3)
	n.build(60, Config{})
	h := id.FromString("ubuntu.iso")
	a, b := n.Order[5], n.Order[40]
	ra := n.do(a, Announce{InfoHash: h, Port: 51413})
	if ra.Err != nil || ra.Stored == 0 {
		t.Fatalf("announce: stored on %d nodes, err %v", ra.Stored, ra.Err)
	}
	implied := n.Order[17]
	if r := n.do(implied, Announce{InfoHash: h, ImpliedPort: true}); r.Err != nil {
		t.Fatalf("announce with implied_port: %v", r.Err)
	}
	rb := n.do(b, GetPeers{InfoHash: h})
	if rb.Err != nil {
		t.Fatalf("get_peers: %v", rb.Err)
	}
	want := []netip.AddrPort{
		netip.AddrPortFrom(a.addr.Addr(), 51413),
		implied.addr, // the UDP source port
	}
	for _, w := range want {
		if !slices.Contains(rb.Peers, w) {
			t.Errorf("get_peers found %v, want it to include %v", rb.Peers, w)
		}
	}
	// BEP 51: a node that stores the swarm samples it.
	holder := n.Nodes[ra.Nodes[0].Addr]
	rs := n.do(b, SampleInfohashes{Addr: holder.addr, Target: h})
	if rs.Err != nil || !slices.Contains(rs.Samples, h) || rs.Num < 1 || rs.Interval <= 0 {
		t.Errorf("sample_infohashes: samples %v num %d interval %v err %v", rs.Samples, rs.Num, rs.Interval, rs.Err)
	}
}

func TestAnnounceValidation(t *testing.T) {
	n := newTestNet(t, 1)
	a := n.add(Config{})
	if r := n.do(a, Announce{InfoHash: id.FromString("x"), Port: 0}); r.Err == nil {
		t.Error("announce with port 0 and no implied_port succeeded")
	}
	if r := n.do(a, FindNode{Target: id.FromString("x")}); !errors.Is(r.Err, ErrNoContacts) {
		t.Errorf("lookup on an empty table: err %v, want ErrNoContacts", r.Err)
	}
}

// bencoded queries to a mainline-mode node, and what it must answer.
func TestQueryHandling(t *testing.T) {
	const peerID = "abcdefghij0123456789"
	for _, tc := range []struct {
		name string
		pkt  string
		want string // substring of the reply; "" means no reply
	}{
		{"ping", "d1:ad2:id20:" + peerID + "e1:q4:ping1:t2:aa1:y1:qe", "1:rd2:id20:"},
		{"ping echoes tid", "d1:ad2:id20:" + peerID + "e1:q4:ping1:t2:zz1:y1:qe", "1:t2:zz"},
		{"ping reports ip", "d1:ad2:id20:" + peerID + "e1:q4:ping1:t2:aa1:y1:qe", "2:ip6:"},
		{"find_node", "d1:ad2:id20:" + peerID + "6:target20:mnopqrstuvwxyz123456e1:q9:find_node1:t2:aa1:y1:qe", "5:nodes"},
		{"get_peers token", "d1:ad2:id20:" + peerID + "9:info_hash20:mnopqrstuvwxyz123456e1:q9:get_peers1:t2:aa1:y1:qe", "5:token8:"},
		{"unknown method", "d1:ad2:id20:" + peerID + "e1:q6:frobni1:t2:aa1:y1:qe", "i204e"},
		{"missing id", "d1:ad6:target20:mnopqrstuvwxyz123456e1:q9:find_node1:t2:aa1:y1:qe", "i203e"},
		{"find_node without target", "d1:ad2:id20:" + peerID + "e1:q9:find_node1:t2:aa1:y1:qe", "i203e"},
		{"get_peers without info_hash", "d1:ad2:id20:" + peerID + "e1:q9:get_peers1:t2:aa1:y1:qe", "i203e"},
		{"announce with bad token", "d1:ad2:id20:" + peerID + "9:info_hash20:mnopqrstuvwxyz1234564:porti6881e5:token8:xxxxxxxxe1:q13:announce_peer1:t2:aa1:y1:qe", "i203e"},
		{"announce without port", "d1:ad2:id20:" + peerID + "9:info_hash20:mnopqrstuvwxyz1234565:token8:xxxxxxxxe1:q13:announce_peer1:t2:aa1:y1:qe", "i203e"},
		{"short id", "d1:ad2:id19:abcdefghij012345678e1:q4:ping1:t2:aa1:y1:qe", "i203e"},
		{"garbage", "\x00\xffgarbage", ""},
		{"truncated", "d1:ad2:id20:abcdefghij", ""},
		{"deep nesting", strings.Repeat("l", 10000), ""},
		{"unsolicited response", "d1:rd2:id20:" + peerID + "e1:t2:aa1:y1:re", ""},
		{"private network tag", "d1:ad2:id20:" + peerID + "e2:nw4:test1:q4:ping1:t2:aa1:y1:qe", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newTestNet(t, 1)
			node := n.add(Config{Network: "mainline"})
			from := netip.MustParseAddrPort("127.1.1.1:1234")
			back := n.Inject(node, from, []byte(tc.pkt))
			if tc.want == "" {
				if len(back) != 0 {
					t.Fatalf("got reply %q, want none", back[0])
				}
				return
			}
			if len(back) != 1 {
				t.Fatalf("got %d replies, want 1", len(back))
			}
			if !strings.Contains(string(back[0]), tc.want) {
				t.Errorf("reply %q does not contain %q", back[0], tc.want)
			}
		})
	}
}

func TestRateLimitPerIP(t *testing.T) {
	n := newTestNet(t, 1)
	node := n.add(Config{Network: "mainline", RateLimit: 10, RateBurst: 20})
	ping := []byte("d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe")
	// RFC 5737 documentation addresses: labels only, nothing leaves memory.
	flood := netip.MustParseAddrPort("192.0.2.2:1")
	other := netip.MustParseAddrPort("192.0.2.3:1")
	if got := len(n.Inject(node, netip.MustParseAddrPort("127.0.0.9:1"), ping)); got != 1 {
		t.Fatalf("loopback ping: %d answers", got)
	}
	answered := 0
	for range 100 {
		answered += len(n.Inject(node, flood, ping))
	}
	if answered != 20 {
		t.Errorf("answered %d of 100 instant pings from one IP, want the burst of 20", answered)
	}
	if len(n.Inject(node, other, ping)) != 1 {
		t.Error("another IP was limited too")
	}
	n.Now = n.Now.Add(time.Second)
	if got := len(n.Inject(node, flood, ping)); got != 1 {
		t.Errorf("after a second the flooder got %d answers, want 1", got)
	}
	if node.e.Stats().RateLimited != 80 {
		t.Errorf("RateLimited = %d, want 80", node.e.Stats().RateLimited)
	}
}

func TestBootstrapRetriesUntilOneAnswers(t *testing.T) {
	n := newTestNet(t, 1)
	seed := n.add(Config{})
	seed.down = true // not started yet
	dead := netip.MustParseAddrPort("127.8.8.8:6881")
	probes := map[netip.AddrPort]int{}
	n.Drop = func(_, to netip.AddrPort, _ []byte) bool {
		probes[to]++
		return n.Nodes[to] == nil || n.Nodes[to].down
	}
	joiner := n.add(Config{Bootstrap: []netip.AddrPort{dead, seed.addr}, QueryTimeout: time.Second})
	op := joiner.e.Start(n.Now, Bootstrap{})
	n.Flush(joiner)
	n.RunUntil(30*time.Second, func() bool { return false })
	if _, done := joiner.results[op]; done {
		t.Fatal("bootstrap finished with no live bootstrap node")
	}
	// Back-off: 30 s with probes doubling from 1 s is about 5 probes, not
	// 30, besides the first round's resends.
	if p := probes[dead]; p < 3 || p > 8+bootResends {
		t.Errorf("dead bootstrap address probed %d times in 30s, want back-off (3-%d)", p, 8+bootResends)
	}
	seed.down = false
	if !n.RunUntil(2*time.Minute, func() bool { _, ok := joiner.results[op]; return ok }) {
		t.Fatal("bootstrap did not finish after the seed came up")
	}
	if r := joiner.results[op]; r.Err != nil || len(r.Nodes) == 0 {
		t.Fatalf("bootstrap result: %d nodes, err %v", len(r.Nodes), r.Err)
	}
	before := probes[dead]
	n.RunUntil(5*time.Minute, func() bool { return false })
	if probes[dead] != before {
		t.Errorf("kept probing a dead bootstrap address after joining")
	}
}

func TestPrivateNetworksDoNotMix(t *testing.T) {
	n := newTestNet(t, 1)
	a := n.add(Config{Network: "alpha", QueryTimeout: time.Second})
	b := n.add(Config{Network: "beta"})
	m := n.add(Config{Network: "mainline"})
	if r := n.do(a, Ping{Addr: b.addr}); !errors.Is(r.Err, ErrTimeout) {
		t.Errorf("ping across private networks: err %v, want timeout", r.Err)
	}
	if r := n.do(a, Ping{Addr: m.addr}); !errors.Is(r.Err, ErrTimeout) {
		t.Errorf("ping from a private node to a mainline node: err %v, want timeout", r.Err)
	}
	if b.e.Stats().ForeignNet == 0 || m.e.Stats().ForeignNet == 0 {
		t.Error("foreign messages were not counted")
	}
	if b.e.Table().Len() != 0 || m.e.Table().Len() != 0 {
		t.Error("a node from another network entered the routing table")
	}
}

func TestReadOnlyNode(t *testing.T) {
	n := newTestNet(t, 2)
	n.build(30, Config{})
	ro := n.add(Config{ReadOnly: true, Bootstrap: []netip.AddrPort{n.Order[0].addr}})
	n.RunUntil(time.Minute, func() bool { return ro.e.boot.joined })
	target := id.Random(seededReader{R: n.Rng})
	r := n.do(ro, FindNode{Target: target})
	if r.Err != nil || len(r.Nodes) != 8 || !slices.Equal(ids(r.Nodes[:3]), trueClosest(n, ro.e.ID(), target, 3)) {
		t.Fatalf("read-only lookup: err %v, %d nodes", r.Err, len(r.Nodes))
	}
	for _, tn := range n.Order[:30] {
		if _, ok := tn.e.Table().Get(ro.e.ID()); ok {
			t.Fatalf("node %v added a read-only node to its table", tn.addr)
		}
	}
	if r := n.do(n.Order[0], Ping{Addr: ro.addr}); r.Err == nil {
		t.Error("a read-only node answered a ping")
	}
}

func TestDeterministic(t *testing.T) {
	run := func() (int, []id.ID) {
		n := newTestNet(t, 42)
		n.Drop = func(_, _ netip.AddrPort, _ []byte) bool { return n.Rng.Float64() < 0.02 }
		n.build(80, Config{})
		var found []id.ID
		for range 20 {
			r := n.do(n.Order[n.Rng.IntN(80)], FindNode{Target: id.Random(seededReader{R: n.Rng})})
			found = append(found, ids(r.Nodes)...)
		}
		return n.Sent, found
	}
	s1, f1 := run()
	s2, f2 := run()
	if s1 != s2 || !slices.Equal(f1, f2) {
		t.Fatalf("two runs with one seed differ: %d vs %d datagrams", s1, s2)
	}
}

func TestSlowNodeDoesNotStallLookup(t *testing.T) {
	n := newTestNet(t, 5)
	n.build(100, Config{})
	// A third of the nodes go silent; lookups must still end, moving past
	// them at the soft timeout instead of waiting out each hard timeout.
	for i, tn := range n.Order {
		if i%3 == 1 {
			tn.down = true
		}
	}
	var slowest time.Duration
	for range 30 {
		src := n.Order[0]
		r := n.do(src, FindNode{Target: id.Random(seededReader{R: n.Rng})})
		if r.Err != nil || len(r.Nodes) != 8 {
			t.Fatalf("lookup with silent nodes: %d nodes, err %v", len(r.Nodes), r.Err)
		}
		slowest = max(slowest, r.Stats.Duration)
	}
	if slowest > 6*time.Second {
		t.Errorf("slowest lookup took %v with 2s timeouts: stalled queries held it up", slowest)
	}
}

func TestExternalAddrFromPeers(t *testing.T) {
	n := newTestNet(t, 1)
	n.build(10, Config{})
	tn := n.Order[3]
	got, votes := tn.e.ExternalAddr()
	if got != tn.addr || votes == 0 {
		t.Errorf("ExternalAddr = %v (%d votes), want %v", got, votes, tn.addr)
	}
}

func TestCancel(t *testing.T) {
	n := newTestNet(t, 1)
	a := n.add(Config{})
	op := a.e.Start(n.Now, Ping{Addr: netip.MustParseAddrPort("127.9.9.9:1")})
	a.e.Cancel(n.Now, op)
	n.Flush(a)
	if r, ok := a.results[op]; !ok || !errors.Is(r.Err, ErrCanceled) {
		t.Fatalf("cancelled op: %+v", r)
	}
	a.e.Close(n.Now)
	n.Flush(a)
	op = a.e.Start(n.Now, Ping{Addr: netip.MustParseAddrPort("127.9.9.9:1")})
	n.Flush(a)
	if r := a.results[op]; !errors.Is(r.Err, ErrClosed) {
		t.Fatalf("op on a closed engine: %v", r.Err)
	}
}

func TestQueryHookAndTap(t *testing.T) {
	n := newTestNet(t, 1)
	var tapped []krpc.Method
	hook := func(from netip.AddrPort, q *krpc.Msg, r *krpc.Msg) bool { return q.Q != krpc.MethodFindNode }
	a := n.add(Config{})
	b := n.add(Config{QueryHook: hook, QueryTimeout: time.Second, Tap: func(d Direction, _ netip.AddrPort, m *krpc.Msg) {
		if d == In && m.Y == krpc.Query && (len(tapped) == 0 || tapped[len(tapped)-1] != m.Q) {
			tapped = append(tapped, m.Q)
		}
	}})
	if r := n.do(a, Ping{Addr: b.addr}); r.Err != nil {
		t.Fatalf("ping: %v", r.Err)
	}
	if r := n.do(a, FindNode{Target: id.FromString("t")}); len(r.Nodes) != 0 {
		t.Errorf("the hook dropped find_node, yet the lookup got %d nodes", len(r.Nodes))
	}
	if !slices.Equal(tapped, []krpc.Method{krpc.MethodPing, krpc.MethodFindNode}) {
		t.Errorf("tap saw %v", tapped)
	}
}

func TestKeepAllTable(t *testing.T) {
	n := newTestNet(t, 9)
	n.build(60, Config{NewTable: func(self id.ID, k int) routing.Table { return routing.NewKeepAll(self, k, nil) }})
	r := n.do(n.Order[0], FindNode{Target: id.FromString("x")})
	if r.Err != nil || !slices.Equal(ids(r.Nodes), trueClosest(n, n.Order[0].e.ID(), id.FromString("x"), 8)) {
		t.Fatalf("lookup over keep-all tables: err %v", r.Err)
	}
}

func TestSecureIDs(t *testing.T) {
	n := newTestNet(t, 1)
	node := n.add(Config{Network: "mainline", SecureIDs: true})
	public := netip.MustParseAddr("124.31.75.21") // BEP 42's example: a label, nothing is sent
	good := id.Secure(seededReader{R: n.Rng}, public)
	bad := id.Random(seededReader{R: n.Rng})
	for _, x := range []id.ID{good, bad} {
		ping := "d1:ad2:id20:" + string(x[:]) + "e1:q4:ping1:t2:aa1:y1:qe"
		if back := n.Inject(node, netip.AddrPortFrom(public, 6881), []byte(ping)); len(back) != 1 {
			t.Fatalf("a ping from %v got %d answers, want 1 (answered either way)", x, len(back))
		}
	}
	if _, ok := node.e.Table().Get(good); !ok {
		t.Error("a node with a BEP 42 id was not added")
	}
	if _, ok := node.e.Table().Get(bad); ok {
		t.Error("a node whose id does not match its IP entered the table")
	}
}

// A node whose every contact timed out twice (a load spike) must not stay
// cut off: it pings them again and rejoins.
func TestRecoversWhenEveryContactWentBad(t *testing.T) {
	n := newTestNet(t, 4)
	n.build(12, Config{})
	victim := n.Order[5]
	for _, b := range victim.e.Table().Buckets() {
		for _, c := range b.Contacts {
			victim.e.Table().Failed(n.Now, c.ID)
			victim.e.Table().Failed(n.Now, c.ID)
		}
	}
	if got := victim.e.Table().Closest(id.ID{}, 8, nil); len(got) != 0 {
		t.Fatalf("setup: %d contacts still usable", len(got))
	}
	n.RunUntil(time.Minute, func() bool { return false })
	target := id.Random(seededReader{R: n.Rng})
	r := n.do(victim, FindNode{Target: target})
	if r.Err != nil || !slices.Equal(ids(r.Nodes), trueClosest(n, victim.e.ID(), target, 8)) {
		t.Fatalf("after a minute the node still cannot look up: %v", r.Err)
	}
	if got := victim.e.Table().Closest(id.ID{}, 8, nil); len(got) < 8 {
		t.Errorf("only %d good contacts after recovery", len(got))
	}
}

// A node that answers with made-up nodes next to the target costs a
// lookup a couple of timeouts, not one per made-up node.
func TestLookupDistrustsLiars(t *testing.T) {
	n := newTestNet(t, 12)
	n.build(40, Config{})
	fake := 0
	lie := func(_ netip.AddrPort, q, reply *krpc.Msg) bool {
		if reply.R.Has&krpc.HasNodes == 0 {
			return true
		}
		reply.R.Nodes = reply.R.Nodes[:0]
		for range 8 {
			x := q.A.Target
			x[19] ^= byte(fake) + 1
			fake++
			reply.R.Nodes = append(reply.R.Nodes, krpc.NodeInfo{ID: x, Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 99, byte(fake >> 8), byte(fake)}), 6881)})
		}
		return true
	}
	liar := n.add(Config{QueryHook: lie, Bootstrap: []netip.AddrPort{n.Order[0].addr}})
	n.RunUntil(time.Minute, func() bool { return liar.e.boot.joined })
	toFake := 0
	src := n.Order[3]
	n.Drop = func(from, to netip.AddrPort, _ []byte) bool {
		if from == src.addr && to.Addr().As4()[1] == 99 {
			toFake++
		}
		return false
	}
	for range 20 {
		target := id.Random(seededReader{R: n.Rng})
		// Make sure the lookup meets the liar: ask it first.
		src.e.Table().Observe(n.Now, liar.e.ID(), liar.addr, routing.Responded, time.Millisecond)
		before := toFake
		r := n.do(src, FindNode{Target: target})
		if r.Err != nil {
			t.Fatal(r.Err)
		}
		// About one query to each of the K made-up nodes (a lookup that
		// has converged asks its K closest at once), not two each.
		if sent := toFake - before; sent > 10 {
			t.Fatalf("a lookup sent %d queries to made-up nodes", sent)
		}
	}
	if toFake == 0 {
		t.Fatal("no lookup met the liar: the test tested nothing")
	}
}
