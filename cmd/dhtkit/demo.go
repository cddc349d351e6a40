package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/dhtkit/dhtkit"
	"github.com/dhtkit/dhtkit/httpapi"
	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/kademlia"
)

func newDemoCmd(g *globals) *cobra.Command {
	var (
		nodes    int
		once     bool
		httpPort int
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
			d := &demo{g: g, out: g.stdout, httpPort: httpPort}
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
	cmd.Flags().IntVar(&httpPort, "http-port", 6880, "web UI of node i on 127.0.0.1:(http-port+i-1); 0: any free ports; -1: no web UI")
	return cmd
}

type demo struct {
	g        *globals
	out      io.Writer
	nodes    []*dhtkit.Node
	httpPort int
	urls     sync.Map // netip.AddrPort -> web UI URL
	cancel   context.CancelFunc
}

func (d *demo) url(n *dhtkit.Node) string {
	if u, ok := d.urls.Load(n.Addr()); ok {
		return u.(string)
	}
	return n.Addr().String()
}

func (d *demo) close() {
	if d.cancel != nil {
		d.cancel() // stops the web servers
	}
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
	kc.TrustLoopback = true // the demo's nodes share 127.0.0.1
	httpCtx, cancelHTTP := context.WithCancel(context.Background())
	d.cancel = cancelHTTP
	for i := range count {
		nc := kc
		var events *httpapi.Events
		if d.httpPort >= 0 {
			events = httpapi.NewEvents()
			nc.Tap = events.Tap
		}
		n, err := dhtkit.Listen(ctx, dhtkit.Config{Listen: "127.0.0.1:0", Network: d.g.network, Kademlia: nc, Logger: d.g.log})
		if err != nil {
			return fmt.Errorf("starting node %d: %w", len(d.nodes)+1, err)
		}
		d.nodes = append(d.nodes, n)
		if d.httpPort < 0 {
			continue
		}
		addr := "127.0.0.1:0"
		if d.httpPort > 0 {
			addr = fmt.Sprintf("127.0.0.1:%d", d.httpPort+i)
		}
		opts := httpapi.Options{Events: events, Started: n.Started(), PeerURL: func(a netip.AddrPort) string {
			u, _ := d.urls.Load(a)
			s, _ := u.(string)
			return s
		}}
		url, err := serveHTTP(httpCtx, addr, n, opts, d.g.log)
		if err != nil {
			return fmt.Errorf("starting the web UI of node %d: %w (pick a free range with --http-port, or --http-port 0)", i+1, err)
		}
		d.urls.Store(n.Addr(), url)
	}
	d.step("1. started %d nodes on 127.0.0.1 (first on port %d, last on %d), network %q (%v)",
		count, d.nodes[0].Addr().Port(), d.nodes[count-1].Addr().Port(), d.g.network, time.Since(start).Round(time.Millisecond))
	if d.httpPort >= 0 {
		d.step("   web UI: %s … %s (one page per node)", d.url(d.nodes[0]), d.url(d.nodes[count-1]))
	}

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

	// Lookups of random targets, each checked against the true closest: a
	// lookup ends once its Beta closest nodes have answered, so those
	// must be the true Beta closest, in order, among K that answered.
	start = time.Now()
	lookups := max(count, 20)
	k := min(kc.K, count-1)
	beta := kc.Beta
	if beta <= 0 {
		beta = kademlia.DefaultConfig().Beta
	}
	beta = min(beta, k)
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
			if err == nil && len(ids) == k && slices.Equal(ids[:beta], want[:beta]) {
				exact++
			} else if firstMiss == "" {
				firstMiss = fmt.Sprintf("lookup of %v from node %v found %d nodes (err %v), not the true %d closest first", target, from.ID(), len(ids), err, beta)
			}
		})
	}
	wg.Wait()
	d.step("3. lookups: %d/%d random targets found the true %d closest nodes, in order, among %d that answered (%v)",
		exact, lookups, beta, k, time.Since(start).Round(time.Millisecond))

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
	if err := d.keyValue(jctx, rng); err != nil {
		return err
	}
	d.step("demo: every step succeeded")
	return nil
}

// keyValue walks through the key-value store: put, get, a large value,
// whereis, delete, and a node leaving without loss.
func (d *demo) keyValue(ctx context.Context, rng *rand.Rand) error {
	count := len(d.nodes)
	// pick chooses a node other than those named, or any node when the
	// network has no other (a demo of two nodes).
	pick := func(not ...*dhtkit.Node) *dhtkit.Node {
		var others []*dhtkit.Node
		for _, n := range d.nodes {
			if !slices.Contains(not, n) {
				others = append(others, n)
			}
		}
		if len(others) == 0 {
			return d.nodes[rng.IntN(count)]
		}
		return others[rng.IntN(len(others))]
	}
	start := time.Now()
	a := pick()
	v, err := a.Put(ctx, "hello", []byte("world"), dhtkit.PutOptions{})
	if err != nil {
		return fmt.Errorf("step 5, put: %w", err)
	}
	b := pick(a)
	got, err := b.Get(ctx, "hello")
	if err != nil || string(got.Data) != "world" {
		return fmt.Errorf("step 5, get through node %v: %q, %v", b.Addr(), got.Data, err)
	}
	d.step("5. put hello=world through %s (version %v); get through %s: %q (%v)",
		d.url(a), v, d.url(b), got.Data, time.Since(start).Round(time.Millisecond))

	start = time.Now()
	big := make([]byte, 1<<20)
	for i := range big {
		big[i] = byte(rng.Uint32())
	}
	if _, err := a.Put(ctx, "photos/big.bin", big, dhtkit.PutOptions{}); err != nil {
		return fmt.Errorf("step 6, put of 1 MiB: %w", err)
	}
	got, err = b.Get(ctx, "photos/big.bin")
	if err != nil || !bytes.Equal(got.Data, big) {
		return fmt.Errorf("step 6, get of 1 MiB through node %v: %d bytes, %v", b.Addr(), len(got.Data), err)
	}
	d.step("6. a 1 MiB value, stored as %d verified chunks spread over the network, reads back identical (%v)",
		(len(big)+8190)/8191, time.Since(start).Round(time.Millisecond))

	holders, err := b.Where(ctx, "hello")
	if err != nil {
		return fmt.Errorf("step 7, whereis: %w", err)
	}
	var where []string
	var replica *dhtkit.Node
	for _, h := range holders {
		if !h.Has {
			continue
		}
		for _, n := range d.nodes {
			if n.ID() == h.Node.ID || h.Self && n == b {
				where = append(where, d.url(n))
				if replica == nil && n != a && n != b {
					replica = n
				}
			}
		}
	}
	if len(where) < 2 {
		return fmt.Errorf("step 7, whereis: only %d replicas hold hello", len(where))
	}
	d.step("7. whereis hello: %d replicas: %s", len(where), strings.Join(where, " "))

	start = time.Now()
	c := pick(a, b)
	if err := c.Delete(ctx, "hello"); err != nil {
		return fmt.Errorf("step 8, delete: %w", err)
	}
	if _, err := a.Get(ctx, "hello"); !errors.Is(err, dhtkit.ErrNotFound) {
		return fmt.Errorf("step 8, get after delete: %v, want not found", err)
	}
	d.step("8. delete hello through %s; get through %s: not found (a tombstone beats the older write) (%v)",
		d.url(c), d.url(a), time.Since(start).Round(time.Millisecond))

	if replica == nil {
		d.step("9. (skipped: no replica apart from the writer and the reader)")
		return nil
	}
	start = time.Now()
	if _, err := a.Put(ctx, "survivor", []byte("still here"), dhtkit.PutOptions{}); err != nil {
		return fmt.Errorf("step 9, put: %w", err)
	}
	if err := replica.Leave(ctx); err != nil {
		return fmt.Errorf("step 9, node %v leaving: %w", replica.Addr(), err)
	}
	leftURL := d.url(replica)
	replica.Close()
	d.nodes = slices.DeleteFunc(d.nodes, func(n *dhtkit.Node) bool { return n == replica })
	got, err = b.Get(ctx, "photos/big.bin")
	if err != nil || !bytes.Equal(got.Data, big) {
		return fmt.Errorf("step 9, get after a node left: %v", err)
	}
	got, err = b.Get(ctx, "survivor")
	if err != nil || string(got.Data) != "still here" {
		return fmt.Errorf("step 9, get after a node left: %q %v", got.Data, err)
	}
	d.step("9. node %s handed its values over and left; every value still reads back (%v)",
		leftURL, time.Since(start).Round(time.Millisecond))
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
