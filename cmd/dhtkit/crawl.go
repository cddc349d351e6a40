package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/dhtkit/dhtkit"
	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/kademlia"
	"github.com/dhtkit/dhtkit/krpc"
)

// tableBits is how many of a node's buckets the crawl reads, nearest
// last: a network of N nodes fills about log2(N/8)+1 of them, so 20 covers
// millions of nodes.
const tableBits = 20

// crawlReport is what crawl prints.
type crawlReport struct {
	Network            string  `json:"network"`
	NodesSeen          int     `json:"nodes_seen"`          // distinct node ids heard of
	NodesResponded     int     `json:"nodes_responded"`     // of which answered a query of ours
	Lookups            int     `json:"lookups"`             // find_node lookups run
	SampledNodes       int     `json:"sampled_nodes"`       // nodes that answered sample_infohashes
	SampleUnsupported  int     `json:"sample_unsupported"`  // nodes that do not know BEP 51
	Infohashes         int     `json:"infohashes"`          // distinct infohashes sampled
	InfohashesReported int     `json:"infohashes_reported"` // sum of the "num" the nodes reported
	Seconds            float64 `json:"seconds"`
	Scraped            int     `json:"scraped,omitempty"` // --scrape: infohashes scraped (BEP 33)
}

// crawler collects, from every response the client node receives, the
// responder and the nodes it lists.
type crawler struct {
	mu        sync.Mutex
	seen      map[id.ID]netip.AddrPort
	responded map[id.ID]netip.AddrPort
	versions  map[id.ID]string // the "v" each responder sent (--out)
}

func (c *crawler) tap(dir kademlia.Direction, peer netip.AddrPort, m *krpc.Msg) {
	if dir != kademlia.In || m.Y != krpc.Response {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if m.R.Has&krpc.HasID != 0 {
		c.responded[m.R.ID] = peer
		c.seen[m.R.ID] = peer
		if len(m.V) > 0 && c.versions != nil { // one per responder: bounded as seen is
			c.versions[m.R.ID] = string(m.V[:min(len(m.V), 16)])
		}
	}
	for _, ni := range m.R.Nodes {
		c.seen[ni.ID] = ni.Addr
	}
	for _, ni := range m.R.Nodes6 {
		c.seen[ni.ID] = ni.Addr
	}
}

func (c *crawler) counts() (seen, responded int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seen), len(c.responded)
}

func newCrawlCmd(g *globals) *cobra.Command {
	var (
		duration time.Duration
		parallel int
		asJSON   bool
		outDir   string
		scrape   time.Duration
	)
	cmd := &cobra.Command{
		Use:   "crawl",
		Short: "Walk the network, count nodes and sample infohashes (BEP 51)",
		Long: `crawl joins through --bootstrap and walks the network: lookups of random
targets and of the neighbourhood of every node found, until no new node turns
up or --duration runs out; then it asks every node that answered for a
sample of its infohashes (BEP 51) and prints the counts. A node that holds more
infohashes than it returned is asked again, with a new random target, once the
"interval" it asked for has passed (at most 8 times, within --duration).
--out DIR writes every node and infohash found as JSON lines. --scrape D then
scrapes every infohash found (BEP 33: a get_peers lookup with scrape=1) for at
most D, and adds the estimated seeds and peers to infohashes.jsonl.`,
		Args: args(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if parallel <= 0 {
				return usageError("--parallel %d: want a positive number", parallel)
			}
			start := time.Now()
			ctx, cancel := context.WithTimeout(cmd.Context(), duration)
			defer cancel()
			c := &crawler{seen: make(map[id.ID]netip.AddrPort), responded: make(map[id.ID]netip.AddrPort), versions: make(map[id.ID]string)}
			ex := newExport()
			g.tap = c.tap
			n, err := g.client(ctx, "crawl", true)
			if err != nil {
				return err
			}
			defer n.Close()

			// Walk for at most three quarters of the time; sampling gets the rest.
			walkCtx, walkCancel := context.WithTimeout(ctx, duration*3/4)
			defer walkCancel()
			rep := crawlReport{Network: g.network}
			expanded := make(map[id.ID]bool)
			for quiet := 0; walkCtx.Err() == nil; {
				before, _ := c.counts()
				var targets []id.ID
				c.mu.Lock()
				for x := range c.seen {
					if len(targets) == parallel {
						break
					}
					if !expanded[x] {
						expanded[x] = true
						targets = append(targets, x)
					}
				}
				c.mu.Unlock()
				left := len(targets)
				for len(targets) < parallel {
					targets = append(targets, id.Random(nil))
				}
				var wg sync.WaitGroup
				for _, t := range targets {
					wg.Go(func() { n.Lookup(walkCtx, t) })
				}
				wg.Wait()
				rep.Lookups += len(targets)
				after, _ := c.counts()
				if after > before {
					quiet = 0
				} else {
					quiet++
				}
				g.log.Debug("crawl round", "nodes", after, "lookups", rep.Lookups)
				if quiet >= 2 && left < parallel/2 || quiet >= 5 {
					break // nothing new turns up and every node found was expanded
				}
			}

			// Sample every node heard of, not only those that answered a
			// lookup: a node a slow lookup passed over is still asked, and
			// counts as found when it answers. The answers list nodes of
			// their own (BEP 51), so sampling goes on in rounds until a
			// round turns up no node not asked yet; a node that did not
			// answer is asked once more in the next round. The crawl thus
			// ends on what it found, not on how fast the machine is.
			samples := make(map[id.ID]bool)
			asked := make(map[netip.AddrPort]int) // queries sent to each address
			answered := make(map[netip.AddrPort]bool)
			var mu sync.Mutex
			for ctx.Err() == nil {
				var addrs []netip.AddrPort
				var ids []id.ID
				c.mu.Lock()
				for x, a := range c.seen {
					if !answered[a] && asked[a] < 2 {
						addrs, ids = append(addrs, a), append(ids, x)
					}
				}
				c.mu.Unlock()
				if len(addrs) == 0 {
					break
				}
				sem := make(chan struct{}, parallel)
				var wg sync.WaitGroup
				for i, a := range addrs {
					asked[a]++
					sem <- struct{}{}
					wg.Go(func() {
						defer func() { <-sem }()
						// The target is the node's own id: its answer lists
						// its neighbours, who know the nodes few others do.
						t0 := time.Now()
						res, err := n.SampleInfohashes(ctx, a, ids[i])
						rtt := time.Since(t0)
						if err == nil {
							// Then one target in each of its nearer buckets
							// (its id with bit b flipped): an answer lists that
							// bucket's contacts, so the walk reads the node's
							// whole table, not only its neighbourhood.
							for b := range tableBits {
								t := ids[i]
								t[b/8] ^= 0x80 >> (b % 8)
								n.SampleInfohashes(ctx, a, t) // the tap records what it lists
							}
						}
						mu.Lock()
						defer mu.Unlock()
						ex.sampled(krpc.NodeInfo{ID: ids[i], Addr: a}, res, err, rtt, t0)
						var re *kademlia.RemoteError
						switch {
						case errors.As(err, &re) && re.Code == krpc.CodeMethodUnknown:
							rep.SampleUnsupported++
							answered[a] = true
						case err == nil:
							rep.SampledNodes++
							answered[a] = true
							rep.InfohashesReported += res.Num
							for _, s := range res.Samples {
								samples[s] = true
							}
						}
					})
				}
				wg.Wait()
				g.log.Debug("crawl sampling round", "asked", len(addrs))
			}
			// BEP 51 bookkeeping, as crawlers of the public DHT do: a node
			// that holds more infohashes than it returned is asked again,
			// with a new random target, once its interval has passed, while
			// the crawl's time lasts.
			deadline, _ := ctx.Deadline()
			sem := make(chan struct{}, parallel)
			var wg sync.WaitGroup
			for ctx.Err() == nil {
				mu.Lock()
				due, next, more := ex.due(time.Now(), deadline)
				mu.Unlock()
				if !more {
					break
				}
				if len(due) == 0 {
					select {
					case <-ctx.Done():
					case <-time.After(time.Until(next)):
					}
					continue
				}
				for _, a := range due {
					sem <- struct{}{}
					wg.Go(func() {
						defer func() { <-sem }()
						t0 := time.Now()
						res, err := n.SampleInfohashes(ctx, a.Addr, id.Random(nil))
						rtt := time.Since(t0)
						mu.Lock()
						defer mu.Unlock()
						ex.sampled(a, res, err, rtt, t0)
						if err == nil {
							for _, s := range res.Samples {
								samples[s] = true
							}
						}
					})
				}
				wg.Wait()
			}
			if scrape > 0 {
				rep.Scraped = scrapeAll(cmd.Context(), n, samples, parallel, scrape, ex, &mu)
			}
			rep.NodesSeen, rep.NodesResponded = c.counts()
			rep.Infohashes = len(samples)
			rep.Seconds = time.Since(start).Seconds()
			if cmd.Context().Err() != nil {
				return cmd.Context().Err()
			}
			if outDir != "" {
				c.mu.Lock()
				err := ex.write(outDir, c.seen, c.responded, c.versions)
				c.mu.Unlock()
				if err != nil {
					return err
				}
			}
			if asJSON {
				return json.NewEncoder(g.stdout).Encode(rep)
			}
			fmt.Fprintf(g.stdout, "network:             %s\n", rep.Network)
			fmt.Fprintf(g.stdout, "nodes seen:          %d\n", rep.NodesSeen)
			fmt.Fprintf(g.stdout, "nodes responded:     %d\n", rep.NodesResponded)
			fmt.Fprintf(g.stdout, "lookups:             %d\n", rep.Lookups)
			fmt.Fprintf(g.stdout, "nodes sampled:       %d (%d without BEP 51)\n", rep.SampledNodes, rep.SampleUnsupported)
			fmt.Fprintf(g.stdout, "infohashes sampled:  %d distinct, %d reported\n", rep.Infohashes, rep.InfohashesReported)
			if scrape > 0 {
				fmt.Fprintf(g.stdout, "infohashes scraped:  %d\n", rep.Scraped)
			}
			fmt.Fprintf(g.stdout, "duration:            %.1fs\n", rep.Seconds)
			return nil
		},
	}
	f := cmd.Flags()
	f.DurationVar(&duration, "duration", time.Minute, "the longest the crawl may take")
	f.IntVar(&parallel, "parallel", 16, "lookups and queries in flight at once")
	f.BoolVar(&asJSON, "json", false, "print one JSON object")
	f.StringVar(&outDir, "out", "", "write DIR/nodes.jsonl and DIR/infohashes.jsonl: every node and infohash found, one JSON object a line")
	f.DurationVar(&scrape, "scrape", 0, "then scrape every infohash found (BEP 33) for at most this long; with --out, infohashes.jsonl gets seeds and peers")
	return cmd
}

// scrapeAll runs a BEP 33 scrape of every infohash, parallel at a time,
// for at most d, and records each in ex (under mu). It returns how many
// it scraped.
func scrapeAll(ctx context.Context, n *dhtkit.Node, infohashes map[id.ID]bool, parallel int, d time.Duration, ex *export, mu *sync.Mutex) int {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	done := 0
	for h := range infohashes {
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			res, err := n.Do(ctx, kademlia.GetPeers{InfoHash: h, Scrape: true})
			if err != nil || res.Scrape == nil {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			ex.scrapes[h] = res.Scrape
			done++
		})
	}
	wg.Wait()
	return done
}
