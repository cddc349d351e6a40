package kademlia

import (
	"fmt"
	"math"
	"net/netip"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/krpc"
)

// scrapeNode returns a Mainline node that stores nSeeds seeds and nPeers
// other peers for infohash, each at its own public address.
func scrapeNode(t testing.TB, nSeeds, nPeers int) (*testNet, *testNode, id.ID, []netip.AddrPort, []netip.AddrPort) {
	n := newTestNet(t, 33)
	node := n.addAt(netip.MustParseAddrPort("203.0.113.1:6881"), Config{Network: "mainline", GlobalRate: -1, GlobalBytes: -1, RateLimit: -1, RateBytes: 1 << 50})
	h := id.FromString("swarm")
	var sd, pe []netip.AddrPort
	for i := range nSeeds {
		sd = append(sd, public(3000+i))
		node.e.peers.announce(n.Now, h, sd[i], true)
	}
	for i := range nPeers {
		pe = append(pe, public(5000+i))
		node.e.peers.announce(n.Now, h, pe[i], false)
	}
	return n, node, h, sd, pe
}

func addrsBloom(as []netip.AddrPort) Bloom {
	var f Bloom
	for _, a := range as {
		f.Insert(a.Addr())
	}
	return f
}

// ask sends node a get_peers for h with the BEP 33 flags and decodes the
// answer.
func askGetPeers(t *testing.T, n *testNet, node *testNode, h id.ID, scrape, noseed bool) *krpc.Msg {
	t.Helper()
	from := netip.MustParseAddrPort("198.51.100.7:6881")
	back := n.Inject(node, from, forge(krpc.MethodGetPeers, func(a *krpc.Args) {
		a.Has |= krpc.HasInfoHash
		a.InfoHash = h
		if scrape {
			a.Has |= krpc.HasScrape
			a.Scrape = true
		}
		if noseed {
			a.Has |= krpc.HasNoSeed
			a.NoSeed = true
		}
	}))
	if len(back) != 1 {
		t.Fatalf("%d answers, want 1", len(back))
	}
	if len(back[0]) > 1500 {
		t.Errorf("a %d-byte answer: over the 1500 bytes BEP 33 keeps a scrape within", len(back[0]))
	}
	var m krpc.Msg
	if err := m.Decode(back[0]); err != nil || m.Y != krpc.Response {
		t.Fatalf("answer %q: %v", back[0], err)
	}
	return &m
}

func TestScrapeAnswer(t *testing.T) {
	tests := []struct {
		name           string
		seeds, peers   int
		scrape, noseed bool
		other          bool // ask for an infohash the node does not store
		wantFilters    bool
		wantValues     int
		wantOnlyLeech  bool
	}{
		{name: "no scrape", seeds: 5, peers: 7, wantValues: 12},
		{name: "scrape", seeds: 5, peers: 7, scrape: true, wantFilters: true, wantValues: 12},
		{name: "scrape of a big swarm returns fewer values", seeds: 100, peers: 200, scrape: true, wantFilters: true, wantValues: scrapeValues},
		{name: "scrape of an unknown infohash", seeds: 5, peers: 7, scrape: true, other: true},
		{name: "noseed prefers leechers", seeds: 150, peers: 60, noseed: true, wantValues: maxValues},
		{name: "noseed with enough leechers", seeds: 150, peers: 120, noseed: true, wantValues: maxValues, wantOnlyLeech: true},
		{name: "noseed scrape", seeds: 10, peers: 40, noseed: true, scrape: true, wantFilters: true, wantValues: scrapeValues, wantOnlyLeech: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n, node, h, sd, pe := scrapeNode(t, tc.seeds, tc.peers)
			if tc.other {
				h = id.FromString("other")
			}
			m := askGetPeers(t, n, node, h, tc.scrape, tc.noseed)
			has := m.R.Has&(krpc.HasBFsd|krpc.HasBFpe) == krpc.HasBFsd|krpc.HasBFpe
			if has != tc.wantFilters {
				t.Fatalf("filters present %v, want %v", has, tc.wantFilters)
			}
			if has {
				wsd, wpe := addrsBloom(sd), addrsBloom(pe)
				if string(m.R.BFsd) != string(wsd[:]) || string(m.R.BFpe) != string(wpe[:]) {
					t.Error("BFsd or BFpe is not the filter of the seeds or of the other peers")
				}
			}
			if len(m.R.Values) != tc.wantValues {
				t.Errorf("%d values, want %d", len(m.R.Values), tc.wantValues)
			}
			seeds := make(map[netip.AddrPort]bool)
			for _, a := range sd {
				seeds[a] = true
			}
			nSeeds := 0
			for _, v := range m.R.Values {
				if seeds[v] {
					nSeeds++
				}
			}
			if tc.wantOnlyLeech && nSeeds > 0 {
				t.Errorf("noseed: %d seeds among the values while leechers were left", nSeeds)
			}
			if tc.noseed && !tc.wantOnlyLeech && len(m.R.Values)-nSeeds != tc.peers {
				t.Errorf("noseed: %d leechers of %d returned", len(m.R.Values)-nSeeds, tc.peers)
			}
		})
	}
}

// TestScrapeReannounce: a peer that announces again with another seed
// status moves from one filter to the other, and expired peers leave both.
func TestScrapeReannounce(t *testing.T) {
	n, node, h, sd, pe := scrapeNode(t, 3, 3)
	node.e.peers.announce(n.Now, h, pe[0], true) // finished downloading
	var gotSd, gotPe Bloom
	node.e.peers.filters(n.Now, h, &gotSd, &gotPe)
	if wsd, wpe := addrsBloom(append(sd, pe[0])), addrsBloom(pe[1:]); gotSd != wsd || gotPe != wpe {
		t.Error("a re-announce as seed did not move the peer to BFsd")
	}
	later := n.Now.Add(node.e.cfg.PeerTTL + time.Second)
	if node.e.peers.filters(later, h, &gotSd, &gotPe) || !gotSd.Empty() || !gotPe.Empty() {
		t.Error("expired peers still in the filters")
	}
}

// TestScrapeLookup: in a network of 40 nodes, 10 announce as seeds and 15
// as leechers (each from its own address); a scrape from another node
// merges the filters of the closest nodes into exactly the filters of
// those addresses, and estimates the counts from them.
func TestScrapeLookup(t *testing.T) {
	n := newTestNet(t, 7)
	n.build(40, Config{})
	h := id.FromString("a swarm")
	var sd, pe []netip.AddrPort
	for i, tn := range n.Order[:25] {
		seed := i < 10
		if r := n.do(tn, Announce{InfoHash: h, Port: 6881, Seed: seed}); r.Err != nil {
			t.Fatalf("announce from %v: %v", tn.addr, r.Err)
		}
		if seed {
			sd = append(sd, tn.addr)
		} else {
			pe = append(pe, tn.addr)
		}
	}
	r := n.do(n.Order[39], GetPeers{InfoHash: h, Scrape: true})
	if r.Err != nil || r.Scrape == nil {
		t.Fatalf("scrape: %v, %v", r.Err, r.Scrape)
	}
	s := r.Scrape
	if s.Filters == 0 {
		t.Fatal("no node answered with filters")
	}
	if s.Seeds != addrsBloom(sd) || s.Peers != addrsBloom(pe) {
		t.Errorf("merged filters are not those of the %d seeds and %d peers", len(sd), len(pe))
	}
	if math.Abs(s.SeedCount()-float64(len(sd))) > 1 || math.Abs(s.PeerCount()-float64(len(pe))) > 1 {
		t.Errorf("estimates %.2f seeds, %.2f peers; want about %d and %d", s.SeedCount(), s.PeerCount(), len(sd), len(pe))
	}
	// A plain get_peers asks for no filters.
	if r := n.do(n.Order[39], GetPeers{InfoHash: h}); r.Scrape != nil {
		t.Error("a get_peers without Scrape has a Scrape")
	}
}

// TestScrapeLegacy: values from a node without BEP 33 count as peers,
// unless another node's seed filter has them.
func TestScrapeLegacy(t *testing.T) {
	seed, leech := netip.MustParseAddrPort("192.0.2.1:1"), netip.MustParseAddrPort("192.0.2.2:2")
	var s Scrape
	legacy := &krpc.Msg{R: krpc.Return{Has: krpc.HasID | krpc.HasValues, Values: []netip.AddrPort{seed, leech}}}
	s.take(legacy)
	sd, pe := addrsBloom([]netip.AddrPort{seed}), Bloom{}
	s.take(&krpc.Msg{R: krpc.Return{Has: krpc.HasBFsd | krpc.HasBFpe, BFsd: sd[:], BFpe: pe[:]}})
	s.finish()
	if s.Filters != 1 || s.Legacy != 1 {
		t.Errorf("Filters %d, Legacy %d; want 1, 1", s.Filters, s.Legacy)
	}
	if s.Seeds != sd || s.Peers != addrsBloom([]netip.AddrPort{leech}) {
		t.Error("a legacy value already in a seed filter was counted as a peer too")
	}
}

// BenchmarkScrapeAnswer measures get_peers answers for a full swarm (500
// peers), plain and with scrape=1: the filters cost at most
// MaxPeersPerInfohash bit sets, with no hashing.
func BenchmarkScrapeAnswer(b *testing.B) {
	for _, scrape := range []bool{false, true} {
		b.Run(fmt.Sprintf("scrape=%v", scrape), func(b *testing.B) {
			n, node, h, _, _ := scrapeNode(b, 250, 250)
			from := netip.MustParseAddrPort("198.51.100.7:6881")
			q := forge(krpc.MethodGetPeers, func(a *krpc.Args) {
				a.Has |= krpc.HasInfoHash
				a.InfoHash = h
				if scrape {
					a.Has |= krpc.HasScrape
					a.Scrape = true
				}
			})
			b.ReportAllocs()
			for b.Loop() {
				if len(n.Inject(node, from, q)) != 1 {
					b.Fatal("no answer")
				}
			}
		})
	}
}

// FuzzScrape merges arbitrary decoded answers into a scrape: it must not
// panic, must keep every filter it was given, and must estimate a finite
// count no larger than a full filter's.
func FuzzScrape(f *testing.F) {
	sd := addrsBloom([]netip.AddrPort{public(1)})
	ok := krpc.Msg{T: []byte("aa"), Y: krpc.Response, R: krpc.Return{Has: krpc.HasID | krpc.HasBFsd | krpc.HasBFpe, BFsd: sd[:], BFpe: sd[:]}}
	f.Add(ok.Append(nil))
	f.Add([]byte("d1:rd2:id20:abcdefghij0123456789e1:t2:aa1:y1:re"))
	f.Add([]byte("d1:rd4:BFsd3:abc2:id20:abcdefghij01234567896:valuesl6:axje.ue1:t2:aa1:y1:re"))
	f.Fuzz(func(t *testing.T, pkt []byte) {
		var m krpc.Msg
		if m.Decode(pkt) != nil {
			return
		}
		var s Scrape
		s.take(&m)
		s.take(&m)
		s.finish()
		for _, c := range []float64{s.SeedCount(), s.PeerCount()} {
			if math.IsNaN(c) || math.IsInf(c, 0) || c < 0 || c > 7806 {
				t.Fatalf("estimate %v", c)
			}
		}
		for _, b := range [][]byte{m.R.BFsd, m.R.BFpe} {
			if len(b) != krpc.BloomBytes {
				continue
			}
			for i := range b {
				if s.Seeds[i]|s.Peers[i]|b[i] != s.Seeds[i]|s.Peers[i] {
					t.Fatal("a filter's bit is missing from the merge")
				}
			}
		}
	})
}
