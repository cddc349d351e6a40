package dhtkit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dhtkit/dhtkit/chord"
	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/kademlia"
	"github.com/dhtkit/dhtkit/krpc"
	"github.com/dhtkit/dhtkit/routing"
	"github.com/dhtkit/dhtkit/runtime"
	"github.com/dhtkit/dhtkit/store"
)

// ErrNotStored is returned by Announce when no node accepted the announce.
var ErrNotStored = errors.New("no node accepted the announce")

// socketBuffer is the receive and send buffer asked of the kernel (it may
// grant less): a server answering bursts of queries should not drop them
// while it is busy with the previous batch.
const socketBuffer = 4 << 20

// engine is what a Node needs of its protocol engine, whichever protocol
// it runs: the driver contract, its id and the store of the values it
// keeps for the network.
type engine interface {
	runtime.Engine
	ID() id.ID
	Store() store.Store
}

// Node is a running DHT node.
type Node struct {
	eng   engine
	kad   *kademlia.Engine // the engine when the protocol is Kademlia; nil otherwise
	chord *chord.Engine    // the engine when the protocol is Chord; nil otherwise
	rt    *runtime.Runtime
	log   *slog.Logger
	net   string
	ipv6  bool

	dir     *dataDir    // nil without Config.DataDir
	key     *networkKey // nil without Config.NetworkKey
	started time.Time
	maxTTL  time.Duration   // the longest TTL a put may ask for; 0: no limit
	chunks  *chunkCollector // chunkgc.go
	// permanent is the node's permanent puts (permanent.go).
	permanent *permanentPuts

	// Readiness (join.go).
	alone    bool        // Config.Alone: a one-node network on purpose
	hasBoot  bool        // it has bootstrap addresses to join through
	bootList []string    // them, for messages
	booted   atomic.Bool // a Bootstrap through them succeeded
	ready    atomic.Bool // it has been ready once
	replicas int         // configured replicas
	need     int         // other nodes a write quorum needs

	ctx    context.Context // ends at Close: background work stops
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Listen binds cfg.Listen, starts the node, and, if cfg.Bootstrap is set,
// starts joining the network in the background. ctx bounds only the
// start-up: the node runs until Close.
func Listen(ctx context.Context, cfg Config) (*Node, error) {
	if cfg.Listen == "" {
		cfg.Listen = DefaultConfig().Listen
	}
	if cfg.Network == "" {
		cfg.Network = DefaultNetwork
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	switch cfg.Protocol {
	case "", Kademlia:
	case Chord:
		if cfg.Network == Mainline {
			return nil, fmt.Errorf("dhtkit: protocol %s cannot join %s: its nodes speak BEP 5 only", Chord, Mainline)
		}
	default:
		return nil, fmt.Errorf("dhtkit: protocol %q: want %s or %s", cfg.Protocol, Kademlia, Chord)
	}
	var key *networkKey
	if cfg.NetworkKey != "" {
		if cfg.Network == Mainline {
			return nil, fmt.Errorf("dhtkit: a network key is for private networks; %s is the public BitTorrent DHT", Mainline)
		}
		var err error
		if key, err = loadNetworkKey(cfg.NetworkKey); err != nil {
			return nil, err
		}
	}
	network, err := udpNetwork(cfg.Listen)
	if err != nil {
		return nil, err
	}
	if cfg.Alone && len(cfg.Bootstrap) > 0 {
		return nil, fmt.Errorf("dhtkit: a node alone on purpose (Alone) takes no bootstrap addresses; drop one of the two")
	}
	for _, b := range cfg.Bootstrap {
		if _, _, err := net.SplitHostPort(b); err != nil {
			return nil, fmt.Errorf("dhtkit: bootstrap address %q: %w (want host:port)", b, err)
		}
	}
	var lc net.ListenConfig
	pc, err := lc.ListenPacket(ctx, network, cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("dhtkit: listening on %s: %w", cfg.Listen, err)
	}
	conn := pc.(*net.UDPConn)
	_ = conn.SetReadBuffer(socketBuffer) // best effort: the kernel caps it
	_ = conn.SetWriteBuffer(socketBuffer)

	if cfg.Limits.Admit == nil {
		// Every replica checks chunks and owner keys, whatever path a
		// record takes.
		cfg.Limits.Admit = admit
	}
	var dir *dataDir
	if cfg.DataDir != "" {
		if cfg.Limits.Logger == nil {
			cfg.Limits.Logger = cfg.Logger
		}
		if dir, err = openDataDir(cfg.DataDir, cfg.Limits, cfg.MoveDamaged); err != nil {
			conn.Close()
			return nil, err
		}
	}
	n := &Node{
		net:     cfg.Network,
		ipv6:    network == "udp6",
		dir:     dir,
		key:     key,
		started: time.Now(),
		maxTTL:  cfg.Limits.MaxTTL,
	}
	if n.maxTTL == 0 {
		n.maxTTL = store.DefaultMaxTTL
	}
	if cfg.Protocol == Chord {
		var sender func() (id.ID, bool)
		if key != nil {
			sender = func() (id.ID, bool) { return n.rt.Sender() }
		}
		n.chord = newChord(cfg, dir, sender)
		n.eng = n.chord
		n.net = chordNetwork(cfg.Network)
	} else {
		kc := cfg.Kademlia
		kc.Alone = kc.Alone || cfg.Alone
		kc.Network = cfg.Network
		kc.IPv6 = n.ipv6
		if cfg.Replicas > 0 {
			kc.Replicas = cfg.Replicas
		}
		if key != nil {
			kc.Sender = func() (id.ID, bool) { return n.rt.Sender() }
		}
		if dir != nil {
			kc.ID = dir.id
			kc.Store = dir.store
			if kc.CommitWindow == 0 {
				kc.CommitWindow = kademlia.DurableCommitWindow
			}
		} else if kc.Store == nil {
			kc.Store = store.NewMemory(cfg.Limits)
		}
		n.kad = kademlia.New(kc, time.Now())
		n.eng = n.kad
	}
	// Alone on purpose: said to the node, or to its engine (whose write
	// quorum then counts the node alone); either way both know it.
	n.alone = cfg.Alone || cfg.Protocol == Chord && cfg.Chord.Alone || cfg.Protocol != Chord && cfg.Kademlia.Alone
	n.replicas = cfg.Replicas
	if n.replicas <= 0 {
		n.replicas = kademlia.DefaultConfig().Replicas
		if cfg.Protocol == Chord && cfg.Chord.Replicas > 0 {
			n.replicas = cfg.Chord.Replicas
		} else if cfg.Protocol != Chord && cfg.Kademlia.Replicas > 0 {
			n.replicas = cfg.Kademlia.Replicas
		}
	}
	n.need = othersNeeded(n.replicas)
	n.log = cfg.Logger.With("node", n.eng.ID().String()[:8])
	ropts := runtime.Options{Logger: n.log}
	if key != nil {
		ropts.Sealer = key.sealer(n.eng.ID())
	}
	n.rt = runtime.New(conn, n.eng, ropts)
	n.ctx, n.cancel = context.WithCancel(context.Background())
	if key != nil {
		n.wg.Add(1)
		go n.watchNetworkKey()
	} else if n.net != Mainline && !n.rt.Addr().Addr().IsLoopback() && !(n.kad != nil && cfg.Kademlia.ReadOnly) {
		// A read-only node (BEP 43: the CLI's short-lived clients)
		// answers no query, so it has nothing to read or change.
		n.log.Warn(openNetworkWarning(n.rt.Addr()))
	}
	n.log.Debug("node listening", "addr", n.rt.Addr(), "network", n.net, "protocol", n.Protocol(), "id", n.ID())
	boot := cfg.Bootstrap
	if dir != nil {
		// The contacts of the last run rejoin the network even when the
		// bootstrap nodes are gone.
		for _, a := range dir.contacts {
			boot = append(boot, a.String())
		}
		n.wg.Add(1)
		go n.saveContactsPeriodically()
	}
	if len(boot) > 0 {
		n.hasBoot, n.bootList = true, boot
		n.wg.Add(1)
		go n.join(boot)
	}
	n.chunks = newChunkCollector(cfg)
	n.chunks.peers = len(boot) > 0
	n.wg.Add(1)
	go n.collectChunksPeriodically()
	var saved []permanentRecord
	if dir != nil {
		saved = dir.permanent
	}
	n.permanent = newPermanentPuts(saved, time.Now())
	n.wg.Add(1)
	go n.keepPermanent()
	return n, nil
}

// udpNetwork picks the socket family from the listen address: IPv6 only
// for an IPv6 host, since a BEP 5 node is of one family (BEP 32 runs a
// second node for the other).
func udpNetwork(listen string) (string, error) {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return "", fmt.Errorf("dhtkit: listen address %q: %w (want host:port, e.g. :6881)", listen, err)
	}
	if a, err := netip.ParseAddr(host); err == nil && a.Is6() && !a.Is4In6() {
		return "udp6", nil
	}
	return "udp4", nil
}

// join resolves the bootstrap addresses, retrying names that do not
// resolve yet, and hands every address resolved to the engine's Bootstrap
// operation, which retries them until one answers.
func (n *Node) join(hosts []string) {
	defer n.wg.Done()
	pending := hosts
	for delay := time.Second; len(pending) > 0; delay = min(2*delay, time.Minute) {
		var addrs []netip.AddrPort
		var unresolved []string
		for _, h := range pending {
			a, err := n.resolve(n.ctx, h)
			if err != nil {
				if n.ctx.Err() != nil {
					return
				}
				n.log.Warn("bootstrap address does not resolve yet; will retry", "addr", h, "err", err)
				unresolved = append(unresolved, h)
				continue
			}
			addrs = append(addrs, a)
		}
		pending = unresolved
		if len(addrs) > 0 {
			n.wg.Add(1)
			go func() {
				defer n.wg.Done()
				done := make(chan struct{})
				defer close(done)
				n.wg.Add(1)
				go n.warnSilence(addrs, done)
				if err := n.Bootstrap(n.ctx, addrs...); err != nil {
					if n.ctx.Err() == nil {
						if n.key != nil {
							// Sealed nodes answer nothing they cannot open.
							err = fmt.Errorf("%w (do the bootstrap nodes hold this node's network key? their /v1/status lists the key ids; this node's are %v)", err, n.NetworkKeyIDs())
						}
						n.log.Warn("bootstrap failed", "err", err)
					}
					return
				}
				n.booted.Store(true)
				n.log.Info("joined the network", "via", addrs, "contacts", n.contacts())
			}()
		}
		if len(pending) == 0 {
			return
		}
		select {
		case <-n.ctx.Done():
			return
		case <-time.After(delay):
		}
	}
}

// warnSilence logs, once, that no bootstrap node has answered within
// bootSilence: the node keeps trying, but an operator should know at once
// that a bootstrap address is dead, wrong, or a node of another network
// or protocol (a Kademlia node and a Chord node ignore each other's
// messages: they carry different network names).
func (n *Node) warnSilence(addrs []netip.AddrPort, done <-chan struct{}) {
	defer n.wg.Done()
	t := time.NewTimer(bootSilence)
	defer t.Stop()
	select {
	case <-done:
	case <-n.ctx.Done():
	case <-t.C:
		list := make([]string, len(addrs))
		for i, a := range addrs {
			list[i] = a.String()
		}
		n.log.Warn(fmt.Sprintf("no node answered at %s within %v", strings.Join(list, ","), bootSilence),
			"hint", fmt.Sprintf("check that they run, and with this node's --network (%q) and --protocol (%s): a %s node cannot join through a node of the other protocol; the node keeps trying with back-off", n.net, n.Protocol(), n.Protocol()))
	}
}

// resolve turns host:port into an address of the node's family.
func (n *Node) resolve(ctx context.Context, hostport string) (netip.AddrPort, error) {
	return Resolve(ctx, hostport, n.ipv6)
}

// Resolve turns host:port into a UDP address, of the IPv6 family if ipv6
// is set and of the IPv4 family otherwise.
func Resolve(ctx context.Context, hostport string, ipv6 bool) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(hostport); err == nil {
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
	}
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("address %q: %w", hostport, err)
	}
	p, err := net.DefaultResolver.LookupPort(ctx, "udp", port)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("address %q: %w", hostport, err)
	}
	family := "ip4"
	if ipv6 {
		family = "ip6"
	}
	ips, err := net.DefaultResolver.LookupNetIP(ctx, family, host)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("resolving %q: %w", host, err)
	}
	if len(ips) == 0 {
		return netip.AddrPort{}, fmt.Errorf("resolving %q: no %s address", host, family)
	}
	return netip.AddrPortFrom(ips[0].Unmap(), uint16(p)), nil
}

func (n *Node) saveContactsPeriodically() {
	defer n.wg.Done()
	// Soon after start (a node killed early still rejoins through the
	// contacts it made), then every minute.
	t := time.NewTimer(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
			t.Reset(time.Minute)
			n.adoptSecureID()
			if err := n.dir.saveContacts(n.Routing()); err != nil {
				n.log.Warn("saving the routing table", "err", err)
			}
		}
	}
}

// adoptSecureID makes a Mainline node with a data directory take a BEP 42
// id at its next start once its peers agree on its public address: its id
// is then one that other nodes enforcing BEP 42 accept.
func (n *Node) adoptSecureID() {
	if n.net != Mainline || n.dir == nil || n.dir.id != n.ID() {
		return // not Mainline, no data directory, or adopted already
	}
	ext, votes := n.ExternalAddr()
	if votes < 3 || !ext.IsValid() || id.Exempt(ext.Addr()) || id.IsSecure(n.ID(), ext.Addr()) {
		return
	}
	next := id.Secure(nil, ext.Addr())
	if err := writeFileAtomic(filepath.Join(n.dir.path, idFile), []byte(next.String()+"\n")); err != nil {
		n.log.Warn("saving a BEP 42 node id", "err", err)
		return
	}
	n.dir.id = next
	n.log.Info("peers see this node at a public address its id does not match (BEP 42); it takes a matching id at its next start",
		"address", ext.Addr(), "next_id", next)
}

// Started is when the node started.
func (n *Node) Started() time.Time { return n.started }

// ExternalAddr is the node's address as its peers see it (the "ip" field
// of BEP 42 in their replies), and how many replies said so.
func (n *Node) ExternalAddr() (netip.AddrPort, int) {
	var a netip.AddrPort
	var votes int
	if n.kad == nil {
		return a, votes // Chord carries no "ip" field
	}
	n.rt.Inspect(func() { a, votes = n.kad.ExternalAddr() })
	return a, votes
}

// ID is the node's id.
func (n *Node) ID() id.ID { return n.eng.ID() }

// Addr is the bound UDP address.
func (n *Node) Addr() netip.AddrPort { return n.rt.Addr() }

// Network is the network the node belongs to.
func (n *Node) Network() string { return n.net }

// Close shuts the node down: every pending call returns with an error
// wrapping kademlia.ErrClosed, and no goroutine of the node is left when
// Close returns.
func (n *Node) Close() error {
	if n.dir != nil {
		if err := n.dir.saveContacts(n.Routing()); err != nil {
			n.log.Warn("saving the routing table", "err", err)
		}
	}
	n.cancel()
	err := n.rt.Close()
	n.wg.Wait()
	if n.dir != nil {
		if cerr := n.dir.store.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("dhtkit: closing the socket: %w", err)
	}
	return nil
}

// Bootstrap joins the network through addrs (and the addresses given in
// Config.Bootstrap): it returns once one of them has answered and the
// node has looked up its own id, or when ctx ends.
func (n *Node) Bootstrap(ctx context.Context, addrs ...netip.AddrPort) error {
	if _, err := n.rt.Do(ctx, kademlia.Bootstrap{Addrs: addrs}); err != nil {
		return fmt.Errorf("dhtkit: bootstrap: %w", err)
	}
	return nil
}

// Ping asks addr for its id.
func (n *Node) Ping(ctx context.Context, addr netip.AddrPort) (id.ID, error) {
	res, err := n.rt.Do(ctx, kademlia.Ping{Addr: addr})
	if err != nil {
		return id.ID{}, fmt.Errorf("dhtkit: ping %v: %w", addr, err)
	}
	return res.ID, nil
}

// Lookup finds the nodes closest to target (K of them, nearest first) by
// an iterative find_node lookup.
func (n *Node) Lookup(ctx context.Context, target id.ID) ([]krpc.NodeInfo, error) {
	res, err := n.Do(ctx, kademlia.FindNode{Target: target})
	if err != nil {
		return res.Nodes, fmt.Errorf("dhtkit: lookup %v: %w", target, err)
	}
	return res.Nodes, nil
}

// GetPeers returns the peers announced for infohash.
func (n *Node) GetPeers(ctx context.Context, infohash id.ID) ([]netip.AddrPort, error) {
	res, err := n.rt.Do(ctx, kademlia.GetPeers{InfoHash: infohash})
	if n.kad != nil {
		// This node is one of the network's too: the peers announced to
		// it count (in a network of two, its lookup reaches only the other).
		n.rt.Inspect(func() {
			for _, p := range n.kad.LocalPeers(time.Now(), infohash) {
				if !slices.Contains(res.Peers, p) {
					res.Peers = append(res.Peers, p)
				}
			}
		})
	}
	if err != nil {
		return res.Peers, fmt.Errorf("dhtkit: get_peers %v: %w", infohash, err)
	}
	return res.Peers, nil
}

// Announce tells the nodes closest to infohash that this node's IP
// address, on port, is a peer for it. It fails with ErrNotStored if no
// node accepted the announce.
func (n *Node) Announce(ctx context.Context, infohash id.ID, port int) error {
	if port <= 0 || port > 65535 {
		return fmt.Errorf("dhtkit: announce %v: port %d out of range", infohash, port)
	}
	res, err := n.rt.Do(ctx, kademlia.Announce{InfoHash: infohash, Port: port})
	if err != nil {
		return fmt.Errorf("dhtkit: announce %v: %w", infohash, err)
	}
	if res.Stored == 0 {
		return fmt.Errorf("dhtkit: announce %v: %w", infohash, ErrNotStored)
	}
	return nil
}

// SampleInfohashes asks addr for a sample of the infohashes it stores
// (BEP 51).
func (n *Node) SampleInfohashes(ctx context.Context, addr netip.AddrPort, target id.ID) (kademlia.Result, error) {
	res, err := n.rt.Do(ctx, kademlia.SampleInfohashes{Addr: addr, Target: target})
	if err != nil {
		return res, fmt.Errorf("dhtkit: sample_infohashes %v: %w", addr, err)
	}
	return res, nil
}

// Do runs any engine operation and waits for its result.
func (n *Node) Do(ctx context.Context, op kademlia.Op) (kademlia.Result, error) {
	res, err := n.rt.Do(ctx, op)
	n.fillSelf(&res)
	return res, err
}

// Routing returns a snapshot of the routing table. A Chord node has no
// buckets: it returns one, holding its predecessor, successor list and
// fingers.
func (n *Node) Routing() []routing.Bucket {
	var b []routing.Bucket
	n.rt.Inspect(func() {
		if n.kad != nil {
			b = n.kad.Table().Buckets()
		} else {
			b = chordRouting(n.chord)
		}
	})
	return b
}

// Stats returns the engine's counters. A Chord node's are converted (see
// chordStats); ChordStats has them as the engine counts them.
func (n *Node) Stats() kademlia.Stats {
	var s kademlia.Stats
	n.rt.Inspect(func() {
		if n.kad != nil {
			s = n.kad.Stats()
		} else {
			s = chordStats(n.chord.Stats())
		}
	})
	return s
}

// IOStats returns the socket counters: datagrams and system calls.
func (n *Node) IOStats() runtime.Stats { return n.rt.Stats() }

func (n *Node) contacts() int {
	var k int
	for _, b := range n.Routing() {
		k += len(b.Contacts)
	}
	return k
}

// Logger is the node's logger.
func (n *Node) Logger() *slog.Logger { return n.log }
