package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"

	"github.com/spf13/cobra"

	"github.com/dhtkit/dhtkit"
	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/kademlia"
)

// tempNode starts a short-lived node on an ephemeral port of the family of
// addr (IPv4 unless addr is IPv6), for a command that queries the network.
func (g *globals) tempNode(ctx context.Context, ipv6, readOnly bool, beta int) (*dhtkit.Node, error) {
	kc := g.kademliaConfig()
	kc.ReadOnly = readOnly
	kc.Beta = beta
	listen := "0.0.0.0:0"
	if ipv6 {
		listen = "[::]:0"
	}
	n, err := dhtkit.Listen(ctx, dhtkit.Config{Listen: listen, Network: g.network, Kademlia: kc, Logger: g.log, NetworkKey: g.networkKey})
	if err != nil {
		return nil, fmt.Errorf("starting a client node: %w", err)
	}
	return n, nil
}

// client starts a short-lived node joined to the network through
// --bootstrap, for lookup, get-peers, announce and crawl.
func (g *globals) client(ctx context.Context, cmd string, readOnly bool) (*dhtkit.Node, error) {
	if len(g.bootstrap) == 0 {
		return nil, usageError("%s needs --bootstrap HOST:PORT, a node to join the network through", cmd)
	}
	addrs := make([]netip.AddrPort, 0, len(g.bootstrap))
	for _, b := range g.bootstrap {
		a, err := dhtkit.Resolve(ctx, b, false)
		if err != nil {
			return nil, fmt.Errorf("--bootstrap: %w", err)
		}
		addrs = append(addrs, a)
	}
	// A one-shot lookup prints the K closest nodes: it waits for all of
	// them to answer rather than end on the engine's default Beta.
	beta := 0
	if cmd == "lookup" {
		beta = g.kademliaConfig().K
	}
	n, err := g.tempNode(ctx, false, readOnly, beta)
	if err != nil {
		return nil, err
	}
	if err := n.Bootstrap(ctx, addrs...); err != nil {
		n.Close()
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, fmt.Errorf("no node answered at %s within %v (are nodes of network %q running there?)",
				strings.Join(g.bootstrap, ","), g.timeout, g.network)
		}
		return nil, fmt.Errorf("joining through %s: %w", strings.Join(g.bootstrap, ","), err)
	}
	return n, nil
}

func parseInfohash(s string) (id.ID, error) {
	x, err := id.Parse(s)
	if err != nil {
		return x, usageError("INFOHASH %q: want 40 hex digits", s)
	}
	return x, nil
}

func newPingCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "ping HOST:PORT",
		Short: "Ping a node and print its id",
		Long: `ping sends one ping query from a temporary socket and prints the responder's
node id (hex). It needs no running node: neither --api nor --bootstrap is
used. A BitTorrent node answers only with --network mainline.`,
		Args: args(1, "one HOST:PORT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), g.timeout)
			defer cancel()
			addr, err := dhtkit.Resolve(ctx, args[0], false)
			if err != nil {
				if _, _, serr := splitHostPort(args[0]); serr != nil {
					return usageError("%v", err)
				}
				return err
			}
			n, err := g.tempNode(ctx, addr.Addr().Is6(), true, 0)

			if err != nil {
				return err
			}
			defer n.Close()
			peer, err := n.Ping(ctx, addr)
			if err != nil {
				if errors.Is(err, kademlia.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) {
					return fmt.Errorf("no answer from %s (is a node of network %q listening there? BitTorrent nodes need --network mainline; a network with a key needs --network-key)", addr, g.network)
				}
				return err
			}
			fmt.Fprintln(g.stdout, peer)
			return nil
		},
	}
}

func newLookupCmd(g *globals) *cobra.Command {
	var trace bool
	cmd := &cobra.Command{
		Use:   "lookup TARGET",
		Short: "Print the nodes closest to TARGET",
		Long: `lookup finds the nodes closest to TARGET (40 hex digits, else the SHA-1 of
the string) and prints "HOST:PORT NODEID" per line, nearest first.

With --bootstrap LIST it starts a short-lived node of its own, joins through
LIST and waits for all 8 closest nodes to answer; without it, it asks the
running node at --api, whose lookup ends once its 3 closest have answered.
With --trace it first prints every query of the lookup, in the order the
answers came ("hop N depth D RTT HOST:PORT NODEID → what it answered"), then
the hop count.`,
		Args: args(1, "one TARGET"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), g.timeout)
			defer cancel()
			target := id.ParseOrHash(args[0])
			if len(g.bootstrap) == 0 {
				var out struct {
					Nodes []struct{ ID, Addr string } `json:"nodes"`
					Trace []hopOut                    `json:"trace"`
					Stats struct {
						Queries, Timeouts, Hops int
						DurationMs              float64 `json:"duration_ms"`
					} `json:"stats"`
				}
				path := "/v1/lookup/" + target.String()
				if trace {
					path += "?trace=1"
				}
				if err := g.apiClient().getJSON(ctx, http.MethodPost, path, &out); err != nil {
					return err
				}
				if trace {
					printTrace(g.stdout, out.Trace, out.Stats.Hops, out.Stats.Queries, out.Stats.Timeouts, out.Stats.DurationMs)
				}
				if len(out.Nodes) == 0 {
					return notFound("no node answered the lookup of %v", target)
				}
				for _, c := range out.Nodes {
					fmt.Fprintf(g.stdout, "%s %s\n", c.Addr, c.ID)
				}
				return nil
			}
			n, err := g.client(ctx, "lookup", true)
			if err != nil {
				return err
			}
			defer n.Close()
			res, err := n.LookupTrace(ctx, target)
			if err != nil {
				return err
			}
			if trace {
				printTrace(g.stdout, traceOut(res.Trace), res.Stats.Hops, res.Stats.Queries, res.Stats.Timeouts,
					float64(res.Stats.Duration.Microseconds())/1000)
			}
			if len(res.Nodes) == 0 {
				return notFound("no node answered the lookup of %v", target)
			}
			for _, c := range res.Nodes {
				fmt.Fprintf(g.stdout, "%s %s\n", c.Addr, c.ID)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&trace, "trace", false, "print every query of the lookup, in order, and the hop count")
	return cmd
}

func newGetPeersCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "get-peers INFOHASH",
		Short: "Print the peers announced for INFOHASH",
		Long:  `get-peers prints the peers announced for INFOHASH, "HOST:PORT" per line; exit status 3 if there are none.`,
		Args:  args(1, "one INFOHASH"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ih, err := parseInfohash(args[0])
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), g.timeout)
			defer cancel()
			if len(g.bootstrap) == 0 {
				var out struct {
					Peers []string `json:"peers"`
				}
				if err := g.apiClient().getJSON(ctx, http.MethodGet, "/v1/peers/"+ih.String(), &out); err != nil {
					return err
				}
				if len(out.Peers) == 0 {
					return notFound("no peers found for %v", ih)
				}
				for _, p := range out.Peers {
					fmt.Fprintln(g.stdout, p)
				}
				return nil
			}
			n, err := g.client(ctx, "get-peers", true)
			if err != nil {
				return err
			}
			defer n.Close()
			peers, err := n.GetPeers(ctx, ih)
			if err != nil {
				return err
			}
			if len(peers) == 0 {
				return notFound("no peers found for %v", ih)
			}
			for _, p := range peers {
				fmt.Fprintln(g.stdout, p)
			}
			return nil
		},
	}
}

func newAnnounceCmd(g *globals) *cobra.Command {
	var (
		port int
		seed bool
	)
	cmd := &cobra.Command{
		Use:   "announce INFOHASH --port P",
		Short: "Announce this host as a peer for INFOHASH",
		Long: `announce tells the nodes closest to INFOHASH that this host, on port P, is a
peer for it, and prints how many nodes stored the announce.`,
		Args: args(1, "one INFOHASH"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ih, err := parseInfohash(args[0])
			if err != nil {
				return err
			}
			if port <= 0 || port > 65535 {
				return usageError("--port %d: want a port from 1 to 65535", port)
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), g.timeout)
			defer cancel()
			if len(g.bootstrap) == 0 {
				if seed {
					return usageError("--seed: give --bootstrap, so that announce joins the network itself")
				}
				var out struct {
					Stored int `json:"stored"`
				}
				if err := g.apiClient().getJSON(ctx, http.MethodPost, fmt.Sprintf("/v1/announce/%v?port=%d", ih, port), &out); err != nil {
					return err
				}
				fmt.Fprintf(g.stdout, "announced %v port %d to %d nodes\n", ih, port, out.Stored)
				return nil
			}
			n, err := g.client(ctx, "announce", false)
			if err != nil {
				return err
			}
			defer n.Close()
			res, err := n.Do(ctx, kademlia.Announce{InfoHash: ih, Port: port, Seed: seed})
			if err != nil {
				return fmt.Errorf("announce %v: %w", ih, err)
			}
			if res.Stored == 0 {
				return fmt.Errorf("announce %v: no node accepted it", ih)
			}
			fmt.Fprintf(g.stdout, "announced %v port %d to %d nodes\n", ih, port, res.Stored)
			return nil
		},
	}
	cmd.Flags().IntVar(&port, "port", 0, "the port peers should connect to (required)")
	cmd.Flags().BoolVar(&seed, "seed", false, "announce as a seed (BEP 33 seed=1), counted by scrapes; needs --bootstrap")
	return cmd
}
