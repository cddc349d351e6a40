package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit"
	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/kademlia"
)

// TestScrapeCommand: 12 Mainline nodes on 127.0.0.2-13 (a host each:
// BEP 33 counts addresses), 4 announce an infohash as seeds and 6 as
// leechers; `dhtkit scrape` merges the filters of the closest nodes into
// those of the 4 and the 6 addresses and estimates both counts.
func TestScrapeCommand(t *testing.T) {
	kc := kademlia.DefaultConfig()
	kc.RateLimit = -1
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var nodes []*dhtkit.Node
	for i := range 12 {
		n, err := dhtkit.Listen(ctx, dhtkit.Config{Listen: fmt.Sprintf("127.0.0.%d:0", i+2), Network: dhtkit.Mainline, Kademlia: kc, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		nodes = append(nodes, n)
		if i > 0 {
			if err := n.Bootstrap(ctx, nodes[0].Addr()); err != nil {
				t.Fatal(err)
			}
		}
	}
	ih := id.FromString("scraped swarm")
	var seeds, peers kademlia.Bloom
	for i, n := range nodes[:10] {
		seed := i < 4
		if _, err := n.Do(ctx, kademlia.Announce{InfoHash: ih, Port: 6881, Seed: seed}); err != nil {
			t.Fatalf("announce from %v: %v", n.Addr(), err)
		}
		if seed {
			seeds.Insert(n.Addr().Addr())
		} else {
			peers.Insert(n.Addr().Addr())
		}
	}
	code, out, errs := dhtkitCmd(t, "scrape", ih.String(), "--json", "--network", "mainline", "--bootstrap="+nodes[11].Addr().String())
	if code != 0 {
		t.Fatalf("scrape: exit %d %s", code, errs)
	}
	var rep scrapeReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("scrape --json printed %q: %v", out, err)
	}
	t.Logf("scrape: %.2f seeds, %.2f peers from %d nodes with filters", rep.Seeds, rep.Peers, rep.Filters)
	if rep.BFsd != hex.EncodeToString(seeds[:]) || rep.BFpe != hex.EncodeToString(peers[:]) {
		t.Error("the merged filters are not those of the 4 seeds' and the 6 leechers' addresses")
	}
	if math.Abs(rep.Seeds-4) > 1 || math.Abs(rep.Peers-6) > 1 {
		t.Errorf("estimates %.2f seeds and %.2f peers, want about 4 and 6", rep.Seeds, rep.Peers)
	}
}
