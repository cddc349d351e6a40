package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/dhtkit/dhtkit"
	"github.com/dhtkit/dhtkit/id"
)

func newDemoCmd(g *globals) *cobra.Command {
	var (
		nodes int
		once  bool
	)
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run a network of nodes on 127.0.0.1 and walk through what it does",
		Long: `demo starts --nodes nodes on 127.0.0.1 in this process, joins them into one
network, checks lookups of random targets against the true closest nodes,
announces an infohash and finds it again, printing each step. With --once it
exits after the walk-through, with status 0 if every step succeeded;
otherwise the nodes keep running until interrupted.`,
		Args: args(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if nodes < 2 {
				return usageError("--nodes %d: a network needs at least 2 nodes", nodes)
			}
			ctx := cmd.Context()
			d := &demo{g: g, out: g.stdout}
			defer d.close()
			err := d.run(ctx, nodes)
			if err != nil || once {
				return err
			}
			fmt.Fprintf(g.stdout, "the %d nodes keep running (first: %v); interrupt to stop\n", nodes, d.nodes[0].Addr())
			<-ctx.Done()
			return nil
		},
	}
	cmd.Flags().IntVar(&nodes, "nodes", 20, "number of nodes")
	cmd.Flags().BoolVar(&once, "once", false, "exit after the walk-through: status 0 if all went well")
	return cmd
}

type demo struct {
	g     *globals
	out   io.Writer
	nodes []*dhtkit.Node
}

func (d *demo) close() {
	var wg sync.WaitGroup
	for _, n := range d.nodes {
		wg.Go(func() { n.Close() })
	}
	wg.Wait()
}

func (d *demo) step(format string, args ...any) {
	fmt.Fprintf(d.out, format+"\n", args...)
}

// run is the walk-through; it fails at the first step that goes wrong.
func (d *demo) run(ctx context.Context, count int) error {
	start := time.Now()
	kc := d.g.kademliaConfig()
	kc.RateLimit = -1 // every node shares 127.0.0.1: a per-IP limit would throttle the whole demo
	for range count {
		n, err := dhtkit.Listen(ctx, dhtkit.Config{Listen: "127.0.0.1:0", Network: d.g.network, Kademlia: kc, Logger: d.g.log})
		if err != nil {
			return fmt.Errorf("starting node %d: %w", len(d.nodes)+1, err)
		}
		d.nodes = append(d.nodes, n)
	}
	d.step("1. started %d nodes on 127.0.0.1 (first on port %d, last on %d), network %q (%v)",
		count, d.nodes[0].Addr().Port(), d.nodes[count-1].Addr().Port(), d.g.network, time.Since(start).Round(time.Millisecond))

	// Join: every node through up to three random nodes that joined before it.
	start = time.Now()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0))
	jctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	const wave = 16
	for lo := 1; lo < count; lo += wave {
		errs := make([]error, count)
		var wg sync.WaitGroup
		for i := lo; i < min(lo+wave, count); i++ {
			var seeds []netip.AddrPort
			for range min(3, lo) {
				seeds = append(seeds, d.nodes[rng.IntN(lo)].Addr())
			}
			wg.Go(func() { errs[i] = d.nodes[i].Bootstrap(jctx, seeds...) })
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return fmt.Errorf("step 2, bootstrap: %w", err)
		}
	}
	var contacts int
	for _, n := range d.nodes {
		for _, b := range n.Routing() {
			contacts += len(b.Contacts)
		}
	}
	d.step("2. bootstrap: %d/%d nodes joined, %.1f contacts per routing table (%v)",
		count, count, float64(contacts)/float64(count), time.Since(start).Round(time.Millisecond))

	// Lookups of random targets, each checked against the true closest.
	start = time.Now()
	lookups := max(count, 20)
	k := min(kc.K, count-1)
	exact := 0
	var firstMiss string
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for range lookups {
		from := d.nodes[rng.IntN(count)]
		target := id.Random(nil)
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			got, err := from.Lookup(jctx, target)
			want := d.closest(target, from.ID(), k)
			ids := make([]id.ID, len(got))
			for i, c := range got {
				ids[i] = c.ID
			}
			mu.Lock()
			defer mu.Unlock()
			if err == nil && slices.Equal(ids, want) {
				exact++
			} else if firstMiss == "" {
				firstMiss = fmt.Sprintf("lookup of %v from node %v found %d nodes (err %v), not the true %d closest", target, from.ID(), len(ids), err, k)
			}
		})
	}
	wg.Wait()
	d.step("3. lookups: %d/%d random targets found exactly the true %d closest nodes (%v)",
		exact, lookups, k, time.Since(start).Round(time.Millisecond))
	if exact != lookups {
		return fmt.Errorf("step 3, lookups: %s", firstMiss)
	}

	// Announce from one node, find the peer from another.
	start = time.Now()
	a, b := d.nodes[rng.IntN(count)], d.nodes[rng.IntN(count)]
	for b == a {
		b = d.nodes[rng.IntN(count)]
	}
	ih := id.FromString("dhtkit demo " + time.Now().String())
	port := int(a.Addr().Port())
	if err := a.Announce(jctx, ih, port); err != nil {
		return fmt.Errorf("step 4, announce: %w", err)
	}
	peers, err := b.GetPeers(jctx, ih)
	if err != nil {
		return fmt.Errorf("step 4, get_peers: %w", err)
	}
	want := netip.AddrPortFrom(a.Addr().Addr(), uint16(port))
	if !slices.Contains(peers, want) {
		return fmt.Errorf("step 4: node %v announced %v, but get_peers from node %v found %v", a.Addr(), ih, b.Addr(), peers)
	}
	d.step("4. announce + get_peers: node %v announced %v; node %v found peer %v (%v)",
		a.Addr(), ih, b.Addr(), want, time.Since(start).Round(time.Millisecond))
	d.step("demo: every step succeeded")
	return nil
}

// closest returns the k ids of the demo's nodes nearest target, self excepted.
func (d *demo) closest(target, self id.ID, k int) []id.ID {
	ids := make([]id.ID, 0, len(d.nodes))
	for _, n := range d.nodes {
		if n.ID() != self {
			ids = append(ids, n.ID())
		}
	}
	slices.SortFunc(ids, func(a, b id.ID) int { return id.CompareDistance(target, a, b) })
	return ids[:k]
}
