package kademlia

import (
	"bytes"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/guard"
	"github.com/dhtkit/dhtkit/internal/enginetest"
	"github.com/dhtkit/dhtkit/routing"

	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/krpc"
	"github.com/dhtkit/dhtkit/store"
)

// Attack tests: forged datagrams from public (not loopback, not private)
// addresses against engines, without sockets. The addresses are labels in
// memory, mostly RFC 5737 documentation ranges; nothing is sent anywhere.

// forge encodes a query of method q from the attacker's id.
func forge(q krpc.Method, fill func(a *krpc.Args)) []byte { return forgeIn("", q, fill) }

// ampNet is the private network whose node answers dhtkit's own methods in
// the amplification tests: a Mainline node answers them with 204 only.
const ampNet = "amp"

// forgeIn is forge for the network net ("": Mainline).
func forgeIn(net string, q krpc.Method, fill func(a *krpc.Args)) []byte {
	m := krpc.Msg{Y: krpc.Query, Q: q, T: []byte("ab")}
	if net != "" {
		m.Net = []byte(net)
	}
	m.A.Has = krpc.HasID
	m.A.ID = id.FromString("attacker")
	if fill != nil {
		fill(&m.A)
	}
	return m.Append(nil)
}

// public returns the i-th of many public IPv4 addresses, each in its own /24.
func public(i int) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{45, byte(i >> 8), byte(i), 1}), 6881)
}

// loaded returns a node (Mainline unless cfg.Network says otherwise) that
// holds what an amplifier wants: a full routing table, 300 peers for
// infohash, a 1000-byte BEP 44 item, an 8000-byte record "big" and 300
// small ones.
func loaded(t testing.TB, cfg Config) (n *testNet, node *testNode, infohash, item id.ID) {
	n = newTestNet(t, 11)
	if cfg.Network == "" {
		cfg.Network = "mainline"
	}
	node = n.addAt(netip.MustParseAddrPort("203.0.113.1:6881"), cfg)
	ping := forge(krpc.MethodPing, nil)
	for i := range 64 {
		m := krpc.Msg{Y: krpc.Query, Q: krpc.MethodPing, T: []byte("pp")}
		m.A.Has, m.A.ID = krpc.HasID, id.FromString(fmt.Sprint("contact", i))
		n.Inject(node, public(1000+i), m.Append(nil))
	}
	_ = ping
	infohash = id.FromString("popular")
	for i := range 300 {
		node.e.peers.add(n.Now, infohash, public(2000+i))
	}
	v := []byte("1000:" + strings.Repeat("x", 1000))
	it := Item{V: v}
	if err := node.e.items.put(n.Now, it.Target(), &it, 0, false); err != nil {
		t.Fatal(err)
	}
	st := node.e.kvStore()
	// Written now: a version of 1970 has outlived the store's MaxTTL.
	var clock store.Clock
	ver := clock.Now(n.Now)
	recs := []store.Record{{Key: "big", Value: bytes.Repeat([]byte("v"), 8000), Version: ver}}
	for i := range 300 {
		recs = append(recs, store.Record{Key: fmt.Sprint("k", i), Value: []byte("small"), Version: ver})
	}
	if _, err := st.PutAll(recs); err != nil {
		t.Fatal(err)
	}
	return n, node, infohash, it.Target()
}

// amplificationQueries are one query of each method an amplifier would
// send, and whether its answer is dhtkit's own (held to 3×).
func amplificationQueries(infohash, item id.ID) []struct {
	name string
	q    []byte
	own  bool
} {
	target := id.FromString("anything")
	bigTarget := id.FromString("big")
	x := func(m map[string]any) func(a *krpc.Args) {
		return func(a *krpc.Args) { a.Has |= krpc.HasX; a.X = encodeX(nil, m) }
	}
	// dhtkit's own methods go to a private node (ampNet).
	own := func(q krpc.Method, fill func(a *krpc.Args)) []byte { return forgeIn(ampNet, q, fill) }
	return []struct {
		name string
		q    []byte
		own  bool
	}{
		{"ping", forge(krpc.MethodPing, nil), false},
		{"find_node", forge(krpc.MethodFindNode, func(a *krpc.Args) { a.Has |= krpc.HasTarget; a.Target = target }), false},
		{"get_peers", forge(krpc.MethodGetPeers, func(a *krpc.Args) { a.Has |= krpc.HasInfoHash; a.InfoHash = infohash }), false},
		{"sample_infohashes", forge(krpc.MethodSampleInfohashes, func(a *krpc.Args) { a.Has |= krpc.HasTarget; a.Target = target }), false},
		{"get", forge(krpc.MethodGet, func(a *krpc.Args) { a.Has |= krpc.HasTarget; a.Target = item }), false},
		{"dk_fetch k", own(krpc.MethodFetch, x(map[string]any{"k": "big"})), true},
		{"dk_fetch ks", own(krpc.MethodFetch, x(map[string]any{"ks": []any{"big", "k1", "k2"}})), true},
		{"dk_fetch h", own(krpc.MethodFetch, x(map[string]any{"h": bigTarget[:]})), true},
		{"dk_sync d=0", own(krpc.MethodSync, x(map[string]any{"d": 0, "b": []any{[]any{0, 1}}})), true},
		{"dk_sync d=20", own(krpc.MethodSync, x(map[string]any{"d": 20, "b": []any{[]any{5, 1}}})), true},
		{"dk_store", own(krpc.MethodStore, x(map[string]any{"recs": []any{}})), true},
		{"dk_listen", own(krpc.MethodListen, x(map[string]any{"k": "big"})), true},
	}
}

// TestAmplification sends each query once from a forged source that never
// proved its address: dhtkit's own methods answer with at most 3× the
// query's bytes, the standard ones keep their BEP answers, and nothing
// exceeds MaxDatagram. The factors are logged (go test -v) for BENCHMARKS.md.
func TestAmplification(t *testing.T) {
	n, node, infohash, item := loaded(t, Config{})
	pn, pnode, _, _ := loaded(t, Config{Network: ampNet}) // serves dhtkit's own methods
	for i, tc := range amplificationQueries(infohash, item) {
		from := public(10000 + i) // a fresh budget each
		var back [][]byte
		if tc.own {
			back = pn.Inject(pnode, from, tc.q)
		} else {
			back = n.Inject(node, from, tc.q)
		}
		size := 0
		for _, b := range back {
			size += len(b)
			if len(b) > MaxDatagram {
				t.Errorf("%s: a %d-byte datagram, over MaxDatagram", tc.name, len(b))
			}
		}
		ratio := float64(size) / float64(len(tc.q))
		t.Logf("%-18s query %4d B, answer %5d B: %5.1f×", tc.name, len(tc.q), size, ratio)
		if tc.own && ratio > 3 {
			t.Errorf("%s: answered an unproven source with %.1f× its query", tc.name, ratio)
		}
		if !tc.own && len(back) != 1 {
			t.Errorf("%s: %d answers, want the BEP answer", tc.name, len(back))
		}
	}
	// A source with a token gets the whole record.
	from := public(20000)
	q := forgeIn(ampNet, krpc.MethodFetch, func(a *krpc.Args) {
		a.Has |= krpc.HasX | krpc.HasToken
		a.X = encodeX(nil, map[string]any{"k": "big"})
		a.Token = pnode.e.tokens.Issue(from.Addr(), nil)
	})
	if back := pn.Inject(pnode, from, q); len(back) != 1 || len(back[0]) < 8000 {
		t.Errorf("dk_fetch with a token: %d answers, want the 8000-byte record", len(back))
	}
	if got := pnode.e.Stats().Drops[guard.DropUnproven]; got == 0 {
		t.Error("no refusal counted as unproven")
	}
}

// TestReflectionIsBudgeted floods each standard query from one forged
// victim address, then from many: what reaches the victim stays within
// the source's byte budget, and everything within the node's. (The
// BENCHMARKS.md figures for 20,000 sources used the default 1 MiB/s
// budget; this uses 64 KiB/s and 4000 to stay quick under -race.)
func TestReflectionIsBudgeted(t *testing.T) {
	for _, tc := range amplificationQueries(id.FromString("popular"), id.ID{}) {
		if tc.own {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			n, node, infohash, item := loaded(t, Config{})
			q := tc.q
			for _, qq := range amplificationQueries(infohash, item) {
				if qq.name == tc.name {
					q = qq.q
				}
			}
			victim := netip.MustParseAddrPort("198.51.100.9:6881")
			const secs = 2
			got := 0
			for range secs * 1000 { // 1000 queries a second
				for _, b := range n.Inject(node, victim, q) {
					got += len(b)
				}
				n.Now = n.Now.Add(time.Millisecond)
			}
			cfg := node.e.cfg
			budget := 2*cfg.RateBytes + secs*cfg.RateBytes
			t.Logf("%s: %d bytes to one victim in %d s (budget %d)", tc.name, got, secs, budget)
			if got > budget {
				t.Errorf("%d bytes reached the victim in %d s, budget %d", got, secs, budget)
			}
			st := node.e.Stats()
			if st.Drops[guard.DropByteBudget]+st.Drops[guard.DropRateLimit] == 0 {
				t.Error("no drop counted")
			}
			// Many forged sources: the node's budget holds (a small one, so
			// that a few thousand sources exceed it).
			n, node, _, _ = loaded(t, Config{GlobalBytes: 64 << 10})
			start := node.e.Stats().BytesOut
			for i := range 4000 {
				n.Inject(node, public(30000+i), q)
			}
			out := node.e.Stats().BytesOut - start
			t.Logf("%s: %d bytes to 4000 forged sources at once (burst %d)", tc.name, out, 2*(64<<10))
			if out > uint64(2*(64<<10)+MaxDatagram) {
				t.Errorf("%d bytes to 4000 forged sources at once, over the node's burst of %d", out, 2*(64<<10))
			}
		})
	}
}

// TestLimiterFailsClosed fills the limiter's table and then floods from a
// new source: it gets its burst, not everything.
func TestLimiterFailsClosed(t *testing.T) {
	n := newTestNet(t, 12)
	node := n.addAt(netip.MustParseAddrPort("203.0.113.1:6881"), Config{Network: "mainline", GlobalRate: -1, GlobalBytes: -1})
	ping := forge(krpc.MethodPing, nil)
	for i := range guard.MaxSources + 5000 {
		a := netip.AddrPortFrom(netip.AddrFrom4([4]byte{45, byte(i >> 16), byte(i >> 8), byte(i)}), 1)
		n.Inject(node, a, ping)
	}
	if node.e.limiter.Sources() > guard.MaxSources {
		t.Errorf("%d sources tracked, over %d", node.e.limiter.Sources(), guard.MaxSources)
	}
	answered := 0
	newcomer := netip.MustParseAddrPort("198.51.100.77:1")
	for range 5000 {
		answered += len(n.Inject(node, newcomer, ping))
	}
	if answered != DefaultConfig().RateBurst {
		t.Errorf("a new source past the table's bound got %d of 5000 answered, want its burst of %d", answered, DefaultConfig().RateBurst)
	}
	if node.e.Stats().Drops[guard.DropSourceEvicted] == 0 {
		t.Error("no eviction counted")
	}
}

// TestLimiterGroupsIPv6By64 and exempts loopback only when configured.
func TestLimiterSources(t *testing.T) {
	ping := forge(krpc.MethodPing, nil)
	burst := DefaultConfig().RateBurst
	for _, tc := range []struct {
		name     string
		cfg      Config
		from     func(i int) netip.AddrPort
		answered int
	}{
		{"one /64, many addresses", Config{IPv6: true}, func(i int) netip.AddrPort {
			return netip.AddrPortFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 2, 0, 0, 0, 0, 0, 0, byte(i >> 8), byte(i)}), 1)
		}, burst},
		{"many /64s", Config{IPv6: true}, func(i int) netip.AddrPort {
			return netip.AddrPortFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 1, byte(i >> 8), byte(i), 0, 0, 0, 0, 0, 0, 0, 1}), 1)
		}, 1000},
		{"loopback by default", Config{}, func(int) netip.AddrPort { return netip.MustParseAddrPort("127.0.0.9:1") }, burst},
		{"loopback trusted", Config{TrustLoopback: true}, func(int) netip.AddrPort { return netip.MustParseAddrPort("127.0.0.9:1") }, 1000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newTestNet(t, 13)
			tc.cfg.Network = "mainline"
			node := n.addAt(netip.MustParseAddrPort("203.0.113.1:6881"), tc.cfg)
			answered := 0
			for i := range 1000 {
				answered += len(n.Inject(node, tc.from(i), ping))
			}
			if answered != tc.answered {
				t.Errorf("%d of 1000 pings answered, want %d", answered, tc.answered)
			}
		})
	}
}

// TestSampleInfohashesBounded: the BEP 51 sample is drawn once per
// interval, whatever the store holds, with honest interval and num.
func TestSampleInfohashesBounded(t *testing.T) {
	n := newTestNet(t, 14)
	node := n.addAt(netip.MustParseAddrPort("203.0.113.1:6881"), Config{Network: "mainline", MaxInfohashes: 1 << 17, TrustLoopback: true})
	for i := range 1 << 16 {
		node.e.peers.add(n.Now, id.FromString(fmt.Sprint(i)), public(1))
	}
	ask := func() *krpc.Msg {
		q := forge(krpc.MethodSampleInfohashes, func(a *krpc.Args) { a.Has |= krpc.HasTarget })
		back := n.Inject(node, netip.MustParseAddrPort("127.0.0.2:1"), q)
		if len(back) != 1 {
			t.Fatalf("%d answers", len(back))
		}
		var m krpc.Msg
		if err := m.Decode(back[0]); err != nil {
			t.Fatal(err)
		}
		return &m
	}
	first := ask()
	if first.R.Num != 1<<16 || len(first.R.Samples) != maxSamples || first.R.Interval != 60 {
		t.Fatalf("num %d, %d samples, interval %d; want 65536, %d, 60", first.R.Num, len(first.R.Samples), first.R.Interval, maxSamples)
	}
	seen := map[id.ID]bool{}
	for _, s := range first.R.Samples {
		if seen[s] {
			t.Errorf("sample %v twice", s)
		}
		seen[s] = true
	}
	n.Now = n.Now.Add(45 * time.Second)
	again := ask()
	if fmt.Sprint(again.R.Samples) != fmt.Sprint(first.R.Samples) || again.R.Interval != 15 {
		t.Errorf("within the interval: a new sample, or interval %d (want the same sample, 15 s left)", again.R.Interval)
	}
	n.Now = n.Now.Add(15 * time.Second)
	if fresh := ask(); fmt.Sprint(fresh.R.Samples) == fmt.Sprint(first.R.Samples) || fresh.R.Interval != 60 {
		t.Errorf("after the interval: the same sample, or interval %d", fresh.R.Interval)
	}
}

// BenchmarkSampleInfohashes answers sample_infohashes from a store of
// 65,536 infohashes: the cost does not grow with the store.
func BenchmarkSampleInfohashes(b *testing.B) {
	n := newTestNet(b, 14)
	node := n.addAt(netip.MustParseAddrPort("203.0.113.1:6881"), Config{Network: "mainline", MaxInfohashes: 1 << 17, TrustLoopback: true})
	for i := range 1 << 16 {
		node.e.peers.add(n.Now, id.FromString(fmt.Sprint(i)), public(1))
	}
	q := forge(krpc.MethodSampleInfohashes, func(a *krpc.Args) { a.Has |= krpc.HasTarget })
	from := netip.MustParseAddrPort("127.0.0.2:1")
	b.ReportAllocs()
	for b.Loop() {
		node.e.Receive(n.Now, from, q)
		node.e.Ready()
	}
}

// TestStoresAreBounded floods announce_peer and put (with valid tokens:
// the attacker owns its address) and checks the stores' bounds and LRU.
func TestStoresAreBounded(t *testing.T) {
	n := newTestNet(t, 15)
	node := n.addAt(netip.MustParseAddrPort("203.0.113.1:6881"), Config{Network: "mainline", RateLimit: -1, GlobalRate: -1})
	attacker := netip.MustParseAddrPort("198.51.100.5:6881")
	tok := node.e.tokens.Issue(attacker.Addr(), nil)
	announce := func(from netip.AddrPort, h id.ID, port int) {
		n.Inject(node, from, forge(krpc.MethodAnnouncePeer, func(a *krpc.Args) {
			a.Has |= krpc.HasInfoHash | krpc.HasToken | krpc.HasPort
			a.InfoHash, a.Token, a.Port = h, node.e.tokens.Issue(from.Addr(), nil), port
		}))
	}
	honest := id.FromString("honest swarm")
	announce(public(1), honest, 6881)
	for i := range 10000 {
		announce(attacker, id.FromString(fmt.Sprint("flood", i)), 6881)
	}
	cfg := DefaultConfig()
	if node.e.peers.len() != cfg.MaxInfohashes || node.e.Stats().Drops[guard.DropPeerEvicted] != uint64(10001-cfg.MaxInfohashes) {
		t.Errorf("%d swarms, %d evicted; want %d kept", node.e.peers.len(), node.e.Stats().Drops[guard.DropPeerEvicted], cfg.MaxInfohashes)
	}
	if node.e.peers.swarms[honest] != nil {
		t.Error("the least recently announced swarm was kept")
	}
	for port := range 3000 {
		announce(attacker, honest, 1000+port)
	}
	if got := len(node.e.peers.swarms[honest].peers); got != cfg.MaxPeersPerInfohash {
		t.Errorf("%d peers in one swarm, want %d", got, cfg.MaxPeersPerInfohash)
	}
	for i := range 2000 {
		v := []byte(fmt.Sprintf("%d:item%d", len(fmt.Sprint("item", i)), i))
		n.Inject(node, attacker, forge(krpc.MethodPut, func(a *krpc.Args) {
			a.Has |= krpc.HasToken | krpc.HasV
			a.Token, a.V = tok, v
		}))
		n.Now = n.Now.Add(time.Millisecond)
	}
	if len(node.e.items.items) != cfg.MaxItems || node.e.Stats().Drops[guard.DropItemEvicted] != uint64(2000-cfg.MaxItems) {
		t.Errorf("%d items, %d evicted; want %d kept", len(node.e.items.items), node.e.Stats().Drops[guard.DropItemEvicted], cfg.MaxItems)
	}
	last := Item{V: []byte("8:item1999")}
	if node.e.items.get(last.Target(), n.Now) == nil {
		t.Error("the newest item was evicted")
	}
}

// TestQuotaChargedToVerifiableWriter: a record's quota goes to the source
// address of the node that wrote it, token or not, and to the writer a
// replica relays for, never to the relay.
func TestQuotaChargedToVerifiableWriter(t *testing.T) {
	n := newTestNet(t, 16)
	node := n.addAt(netip.MustParseAddrPort("203.0.113.1:6881"), Config{})
	peer := n.addAt(netip.MustParseAddrPort("198.51.100.20:6881"), Config{})
	n.do(node, Ping{Addr: peer.addr})
	if !n.RunUntil(time.Minute, func() bool {
		c, ok := node.e.table.Get(peer.e.self)
		return ok && c.Responded
	}) {
		t.Fatal("the peer never became a contact that answered")
	}
	stranger := netip.MustParseAddrPort("198.51.100.21:6881")
	other := store.WriterID(id.FromString("someone else"))
	for _, tc := range []struct {
		name   string
		from   netip.AddrPort
		sender id.ID
		writer uint64
		token  bool
		want   string
	}{
		{"a contact's own write, no token", peer.addr, peer.e.self, store.WriterID(peer.e.self), false, "198.51.100.20"},
		{"a contact relaying", peer.addr, peer.e.self, other, true, fmt.Sprintf("writer:%016x", other)},
		{"a stranger's own write", stranger, id.FromString("stranger"), store.WriterID(id.FromString("stranger")), true, "198.51.100.21"},
		{"a stranger relaying", stranger, id.FromString("stranger"), other, true, "198.51.100.21"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := "quota-" + tc.name
			rec := store.Record{Key: key, Value: []byte("v"), Version: store.Version{Time: node.e.clock.Now(n.Now).Time, Writer: tc.writer}}
			m := krpc.Msg{Y: krpc.Query, Q: krpc.MethodStore, T: []byte("st"), Net: []byte("test")}
			m.A.Has, m.A.ID = krpc.HasID|krpc.HasX, tc.sender
			m.A.X = encodeRecords(nil, "recs", []store.Record{rec})
			if tc.token {
				m.A.Has |= krpc.HasToken
				m.A.Token = node.e.tokens.Issue(tc.from.Addr(), nil)
			}
			node.e.Receive(n.Now, tc.from, m.Append(nil))
			node.e.Ready()
			got, ok, err := node.e.kvStore().Get(key)
			if err != nil || !ok {
				t.Fatalf("not stored: %v", err)
			}
			if got.Source != tc.want {
				t.Errorf("charged to %q, want %q", got.Source, tc.want)
			}
		})
	}
}

// TestForgedReplyKeepsTheContact: a reply from a contact's address with
// another node id, and the right transaction id, does not evict it.
func TestForgedReplyKeepsTheContact(t *testing.T) {
	n := newTestNet(t, 17)
	node := n.addAt(netip.MustParseAddrPort("203.0.113.1:6881"), Config{})
	peer := n.addAt(netip.MustParseAddrPort("198.51.100.20:6881"), Config{Bootstrap: []netip.AddrPort{node.addr}})
	n.RunUntil(time.Minute, func() bool { _, ok := node.e.table.Get(peer.e.self); return ok })
	var tids [][]byte
	n.Drop = func(from, to netip.AddrPort, data []byte) bool {
		var m krpc.Msg
		if from == node.addr && to == peer.addr && m.Decode(data) == nil && m.Y == krpc.Query {
			tids = append(tids, bytes.Clone(m.T))
			return true
		}
		return false
	}
	for range 4 {
		node.e.Start(n.Now, Ping{Addr: peer.addr})
		n.Flush(node)
	}
	if len(tids) != 4 {
		t.Fatalf("%d pings seen", len(tids))
	}
	sequential := 0
	for i := 1; i < len(tids); i++ {
		if uint16(tids[i][0])<<8|uint16(tids[i][1]) == uint16(tids[i-1][0])<<8|uint16(tids[i-1][1])+1 {
			sequential++
		}
	}
	if sequential == len(tids)-1 {
		t.Errorf("transaction ids %x are sequential", tids)
	}
	r := krpc.Msg{Y: krpc.Response, T: tids[0]}
	r.R.Has, r.R.ID = krpc.HasID, id.FromString("impostor")
	node.e.Receive(n.Now, peer.addr, r.Append(nil))
	node.e.Ready()
	if _, ok := node.e.table.Get(peer.e.self); !ok {
		t.Error("a forged reply evicted the real contact")
	}
}

// TestEclipseNeedsManyAddresses: one host with eight ports and ids next
// to a key's target joins an honest network. With the diversity bounds
// (the default) it holds at most one of the key's replicas, so a
// majority of them stay honest; without them it holds most.
func TestEclipseNeedsManyAddresses(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cfg     Config
		maxEvil int
		minEvil int
	}{
		{"diverse", Config{}, 1, 0},
		{"no bounds", Config{MaxNodesPerIP: -1, MaxNodesPerPrefix: -1}, 3, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newTestNet(t, 18)
			for i := range 30 {
				c := tc.cfg
				for j := range min(3, i) {
					c.Bootstrap = append(c.Bootstrap, public(i-j-1))
				}
				n.addAt(public(i), c)
			}
			const key = "target key"
			target := id.FromString(key)
			evil := netip.MustParseAddr("198.51.100.66")
			for i := range 8 {
				c := tc.cfg
				c.ID = target
				c.ID[len(c.ID)-1] ^= byte(1 + i)
				c.Bootstrap = []netip.AddrPort{public(i), public(10 + i)}
				n.addAt(netip.AddrPortFrom(evil, uint16(7000+i)), c)
			}
			n.RunUntil(5*time.Minute, func() bool { return false })
			owner := n.Order[5]
			if r := n.do(owner, KVPut{Key: key, Value: []byte("honest")}); r.Err != nil {
				t.Fatal(r.Err)
			}
			bad := 0
			for _, h := range holders(n, key) {
				if h.addr.Addr() == evil {
					bad++
				}
			}
			t.Logf("%d of the key's holders at the attacker's address", bad)
			if bad > tc.maxEvil || bad < tc.minEvil {
				t.Errorf("%d replicas on the attacker's address, want %d to %d", bad, tc.minEvil, tc.maxEvil)
			}
		})
	}
}

func TestSourceKey(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		same bool
	}{
		{"198.51.100.1", "198.51.100.1", true},
		{"198.51.100.1", "198.51.100.2", false},
		{"::ffff:198.51.100.1", "198.51.100.1", true},
		{"2001:db8:1:2::1", "2001:db8:1:2:ffff::9", true},
		{"2001:db8:1:2::1", "2001:db8:1:3::1", false},
		{"fe80::1%eth0", "fe80::2", true},
	} {
		a, b := netip.MustParseAddr(tc.a), netip.MustParseAddr(tc.b)
		if got := guard.SourceKey(a) == guard.SourceKey(b); got != tc.same {
			t.Errorf("%s and %s one source: %v, want %v", tc.a, tc.b, got, tc.same)
		}
	}
}

// TestContactsOutliveGlobalOverload: past the node's own query rate, a
// flood from many addresses leaves strangers unanswered, but not the
// routing contacts that answered us at their address.
func TestContactsOutliveGlobalOverload(t *testing.T) {
	n := newTestNet(t, 19)
	node := n.addAt(netip.MustParseAddrPort("203.0.113.1:6881"), Config{GlobalRate: 10})
	peer := n.addAt(netip.MustParseAddrPort("198.51.100.20:6881"), Config{})
	n.do(node, Ping{Addr: peer.addr})
	ping := func(from netip.AddrPort, x id.ID) int {
		m := krpc.Msg{Y: krpc.Query, Q: krpc.MethodPing, T: []byte("pp"), Net: []byte("test")}
		m.A.Has, m.A.ID = krpc.HasID, x
		return len(n.Inject(node, from, m.Append(nil)))
	}
	answered := 0
	for i := range 1000 {
		answered += ping(public(i), id.FromString(fmt.Sprint("flood", i)))
	}
	if answered != 20 {
		t.Errorf("%d of 1000 strangers answered, want the global burst of 20", answered)
	}
	if ping(peer.addr, peer.e.self) != 1 {
		t.Error("a routing contact went unanswered in the overload")
	}
	if ping(peer.addr, id.FromString("impostor")) != 0 {
		t.Error("an impostor at the contact's address was answered in the overload")
	}
	if node.e.Stats().Drops[guard.DropGlobalRate] == 0 {
		t.Error("no global_rate drop counted")
	}
}

// TestForgedReplyKeepsContact answers a node's queries to one of its
// contacts with forged replies, from the contact's address and with the
// right transaction id but another node id (issue 11): the real contact
// stays in the table, the impostor never enters it, and once the forger
// stops the contact is good again without anyone acting.
func TestForgedReplyKeepsContact(t *testing.T) {
	n := newTestNet(t, 41)
	n.build(6, Config{Network: "test"})
	a := n.Order[0]
	var c routing.Contact
	for _, b := range a.e.table.Buckets() {
		if len(b.Contacts) > 0 {
			c = b.Contacts[0]
			break
		}
	}
	if c.ID.IsZero() {
		t.Fatal("no contact")
	}
	impostor := id.FromString("impostor")
	f := &enginetest.Forger{From: a.addr, To: c.Addr, Claim: impostor, Network: "test", Max: 4,
		Deliver: func(b []byte) { a.e.Receive(n.Now, c.Addr, b); n.Flush(a) }}
	n.Drop = f.Watch
	// Make a ask the contact, again and again, as a node it knows.
	for i := 0; i < 8 && f.Forged < 4; i++ {
		n.do(a, FindNode{Target: c.ID})
	}
	if f.Forged == 0 {
		t.Fatal("no query to the contact was seen")
	}
	if _, ok := a.e.table.Get(c.ID); !ok {
		t.Fatalf("the real contact was removed after %d forged replies", f.Forged)
	}
	if _, ok := a.e.table.Get(impostor); ok {
		t.Fatal("the impostor entered the table")
	}
	n.Drop = nil
	n.do(a, Ping{Addr: c.Addr}) // its first answer refutes the failures
	good := func() bool {
		got, ok := a.e.table.Get(c.ID)
		return ok && got.State == routing.Good
	}
	if !n.RunUntil(2*time.Minute, good) {
		got, _ := a.e.table.Get(c.ID)
		t.Fatalf("the contact is %v two minutes after the forger stopped", got.State)
	}
}
