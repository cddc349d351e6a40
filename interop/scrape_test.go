package interop

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit"
	"github.com/dhtkit/dhtkit/kademlia"
)

// readOnlyAt starts a read-only (BEP 43) Mainline dhtkit node at ip:
// it asks but stores nothing and enters no table, so that the only node
// its lookups can reach is the one it joins through.
func readOnlyAt(t testing.TB, ip string) *dhtkit.Node {
	t.Helper()
	cfg := dhtkit.DefaultConfig()
	cfg.Listen = ip + ":0"
	cfg.Network = dhtkit.Mainline
	cfg.Kademlia.TrustLoopback = true
	cfg.Kademlia.ReadOnly = true
	cfg.Logger = slog.New(slog.DiscardHandler)
	n, err := dhtkit.Listen(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// TestScrapeLibtorrent: dhtkit nodes on 127.0.0.2-9 announce an
// infohash to a libtorrent node, three of them as seeds (BEP 33 seed=1);
// a dhtkit scrape through it gets libtorrent's BFsd and BFpe, which must
// be, bit for bit, the filters dhtkit builds of the same addresses, and
// estimates 3 seeds and 5 peers. (libtorrent's Python binding cannot send
// a scrape itself, so libtorrent asking dhtkit is left to the BEP's test
// vector in kademlia's tests.)
func TestScrapeLibtorrent(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a libtorrent process")
	}
	l := newLibtorrent(t)
	ctx := timeout(t, time.Minute)
	ih := randomID()
	var seeds, peers kademlia.Bloom
	for i := range 8 {
		n := readOnlyAt(t, fmt.Sprintf("127.0.0.%d", i+2))
		bootstrap(t, n, l.Addr)
		seed := i < 3
		res, err := n.Do(ctx, kademlia.Announce{InfoHash: ih, Port: 42000 + i, Seed: seed})
		if err != nil || res.Stored == 0 {
			t.Fatalf("announce from %v to libtorrent: %d stored, %v", n.Addr(), res.Stored, err)
		}
		if seed {
			seeds.Insert(n.Addr().Addr())
		} else {
			peers.Insert(n.Addr().Addr())
		}
	}
	s := readOnlyAt(t, "127.0.0.10")
	bootstrap(t, s, l.Addr)
	res, err := s.Do(ctx, kademlia.GetPeers{InfoHash: ih, Scrape: true})
	if err != nil {
		t.Fatalf("scrape through libtorrent: %v", err)
	}
	sc := res.Scrape
	if sc == nil || sc.Filters != 1 {
		t.Fatalf("scrape %+v: want libtorrent's filters, from one node", sc)
	}
	t.Logf("libtorrent's filters: %.2f seeds, %.2f peers; %d values", sc.SeedCount(), sc.PeerCount(), len(res.Peers))
	if sc.Seeds != seeds || sc.Peers != peers {
		t.Errorf("libtorrent's BFsd/BFpe differ from dhtkit's filters of the same 3 seeds and 5 peers")
	}
	if math.Abs(sc.SeedCount()-3) > 1 || math.Abs(sc.PeerCount()-5) > 1 {
		t.Errorf("estimates %.2f seeds, %.2f peers; want about 3 and 5", sc.SeedCount(), sc.PeerCount())
	}
}
