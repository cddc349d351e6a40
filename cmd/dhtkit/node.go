package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/dhtkit/dhtkit"
	"github.com/dhtkit/dhtkit/chord"
	"github.com/dhtkit/dhtkit/httpapi"
	"github.com/dhtkit/dhtkit/store"
)

// mainlineRouters are the public BitTorrent DHT's well-known entry points.
// Only `dhtkit node --network mainline` without --bootstrap uses them.
var mainlineRouters = []string{
	"router.bittorrent.com:6881",
	"dht.transmissionbt.com:6881",
	"router.utorrent.com:6881",
	"dht.libtorrent.org:25401",
}

func newNodeCmd(g *globals) *cobra.Command {
	var (
		listen, httpAddr, dataDir, protocol string
		replicas                            int
		secureIDs, trustLoopback            bool
		moveDamaged                         bool
		maxTTL, downFor                     time.Duration
		pprofAddr                           string
		maxBytes                            int64
		maxPerSource                        int
		httpToken                           string
		httpInsecure                        bool
		allowHosts                          []string
		table, clientVersion, nodeID        string
	)
	cmd := &cobra.Command{
		Use:   "node",
		Short: "Run a DHT node until interrupted",
		Long: `node runs a DHT node until SIGINT or SIGTERM. It joins through --bootstrap;
with --network mainline and no --bootstrap it joins the public BitTorrent DHT
through its well-known routers.`,
		Args: args(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch protocol {
			case dhtkit.Kademlia:
			case dhtkit.Chord:
				if g.network == dhtkit.Mainline {
					return usageError("--protocol chord cannot join --network mainline: its nodes speak BEP 5 only")
				}
			default:
				return usageError("--protocol %q: want kademlia or chord", protocol)
			}
			if maxTTL < 0 {
				return usageError("--max-ttl %v: want a positive duration such as 720h", maxTTL)
			}
			if replicas < 0 {
				return usageError("--replicas %d: want a positive number", replicas)
			}
			if downFor < 0 {
				return usageError("--down-for %v: want a positive duration such as 5m", downFor)
			}
			httpOpts := httpapi.Options{AllowedHosts: allowHosts}
			if host, _, err := splitHostPort(httpAddr); err == nil && host != "" {
				httpOpts.AllowedHosts = append(httpOpts.AllowedHosts, host) // the name it listens on
			}
			if httpAddr != "" && httpAddr != "off" {
				var err error
				if httpOpts.Token, err = httpGuard(g, httpAddr, httpToken, httpInsecure); err != nil {
					return err
				}
			}
			bootstrap := g.bootstrap
			if g.network == dhtkit.Mainline && len(bootstrap) == 0 && !g.alone {
				bootstrap = mainlineRouters
				g.log.Info("joining the public BitTorrent DHT through its routers", "routers", bootstrap)
			}
			ctx := cmd.Context()
			if pprofAddr != "" {
				if err := servePprof(ctx, pprofAddr); err != nil {
					return err
				}
			}
			kc := g.kademliaConfig()
			kc.SecureIDs = secureIDs
			if err := lightDHT(&kc, table, clientVersion, nodeID, dataDir, protocol); err != nil {
				return err
			}
			kc.DownFor = downFor
			cc := chord.Config{ID: kc.ID, DownFor: downFor} // --node-id and --client-version apply to Chord too
			if clientVersion != "" {
				cc.Version = kc.Version
			}
			kc.TrustLoopback = trustLoopback
			var events *httpapi.Events
			if httpAddr != "" && httpAddr != "off" {
				events = httpapi.NewEvents() // the web page's live view
				kc.Tap = events.Tap
			}
			n, err := dhtkit.Listen(ctx, dhtkit.Config{
				Protocol:    protocol,
				Listen:      listen,
				Network:     g.network,
				Bootstrap:   bootstrap,
				Kademlia:    kc,
				Logger:      g.log,
				DataDir:     dataDir,
				Replicas:    replicas,
				Limits:      store.Config{MaxBytes: maxBytes, MaxPerSource: maxPerSource, MaxTTL: maxTTL},
				NetworkKey:  g.networkKey,
				MoveDamaged: moveDamaged,
				Alone:       g.alone,
				Chord:       cc,
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "node %v listening on %v (network %q, protocol %s)\n", n.ID(), n.Addr(), n.Network(), n.Protocol())
			switch {
			case g.alone:
				fmt.Fprintf(g.stdout, "alone on purpose (--bootstrap none): a one-node network until others join through %v\n", n.Addr())
			case len(bootstrap) == 0 && n.OthersNeeded() > 0:
				fmt.Fprintf(g.stdout, "no --bootstrap: the first node of a network; it serves reads and writes once %d other node(s) joined through %v "+
					"(--bootstrap HOST:PORT joins a network; --bootstrap none runs a one-node network on purpose)\n", n.OthersNeeded(), n.Addr())
			}
			if httpAddr != "" && httpAddr != "off" {
				httpOpts.Events, httpOpts.Protocol, httpOpts.Started = events, protocol, n.Started()
				pages := newPeerPages(n, 0, g.log) // the other nodes' pages, for links
				httpOpts.PeerURL = pages.URL
				url, err := serveHTTP(ctx, httpAddr, n, httpOpts, g.log)
				if err != nil {
					n.Close()
					return fmt.Errorf("%w (pick another --http address, or --http off)", err)
				}
				fmt.Fprintf(g.stdout, "web UI and HTTP API on %s\n", url)
				if protocol != dhtkit.Chord {
					pages.port = announcePort(protocol, g.network, url, listen, bootstrap)
					go pages.run(ctx)
				}
			}
			status := time.NewTicker(time.Minute)
			defer status.Stop()
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			for {
				select {
				case <-hup:
					// Rotate network keys: read the key file again.
					if err := n.ReloadNetworkKey(); err != nil {
						g.log.Error(err.Error())
					}
				case <-ctx.Done():
					// Hand every value over before leaving, so that a
					// graceful stop loses nothing (bounded: a node whose
					// peers are all gone still exits).
					g.log.Info("shutting down: handing values over")
					hctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
					if err := n.Leave(hctx); err != nil {
						g.log.Warn("hand-over incomplete", "err", err)
					}
					cancel()
					return n.Close()
				case <-status.C:
					st := n.Stats()
					var contacts int
					for _, b := range n.Routing() {
						contacts += len(b.Contacts)
					}
					g.log.Info("status", "contacts", contacts, "bytes_in", st.BytesIn, "bytes_out", st.BytesOut, "timeouts", st.Timeouts)
				}
			}
		},
	}
	f := cmd.Flags()
	f.StringVar(&listen, "listen", ":6881", "UDP address for DHT traffic")
	f.StringVar(&httpAddr, "http", "127.0.0.1:6880", `HTTP API and web UI address; "off" disables it`)
	f.StringVar(&dataDir, "data", "", "directory where identity, routing table and values persist (default: memory only)")
	f.StringVar(&protocol, "protocol", "kademlia", "kademlia or chord")
	f.IntVar(&replicas, "replicas", 3, "copies kept of each stored value")
	f.Int64Var(&maxBytes, "max-bytes", 0, "bytes of values this node stores for others (default 1 GiB)")
	f.IntVar(&maxPerSource, "max-per-source", 0, "records this node stores for one writer IP (default 100000)")
	f.StringVar(&httpToken, "http-token", "", "file holding the HTTP API's bearer token (made, mode 0600, when absent); required when --http is not loopback")
	f.BoolVar(&httpInsecure, "http-insecure", false, "serve the HTTP API off loopback without a token: anyone who reaches it can read and change the data")
	f.StringSliceVar(&allowHosts, "http-allow-host", nil, "host names the HTTP API answers to besides IP addresses and localhost (DNS rebinding protection)")
	f.StringVar(&pprofAddr, "pprof", "", "serve Go's net/http/pprof profiles on this address (debugging; keep it on loopback)")
	f.BoolVar(&moveDamaged, "move-damaged", false, "if --data's values.db is damaged, move it aside as values.db.damaged-TIME and start empty, refilled from the other replicas")
	f.DurationVar(&downFor, "down-for", 0, "how long a silent node still counts in its keys' replica sets (default 5m): keys whose majority of replicas died refuse reads and writes this long; shorter, and the minority side of a partition this old may acknowledge")
	f.DurationVar(&maxTTL, "max-ttl", 0, "longest life of a stored value, also for values put without a TTL (default 720h); a delete lasts this plus 24h")
	f.BoolVar(&trustLoopback, "trust-loopback", false, "exempt 127.0.0.0/8 and ::1 from rate limits, byte budgets and quotas: for a local cluster whose nodes share one address")
	f.BoolVar(&secureIDs, "bep42", false, "enforce BEP 42: keep nodes whose ids do not match their IP out of the routing table")
	f.StringVar(&table, "table", "bep5", "routing table: bep5 (k-buckets) or keepall (every node seen, for research; kademlia)")
	f.StringVar(&clientVersion, "client-version", "", `client version sent as "v" in every message (at most 16 bytes; default dhtkit's)`)
	f.StringVar(&nodeID, "node-id", "", "the node id, 40 hex digits (default random; with --data, the id kept in DIR/node-id)")
	return cmd
}
