package kademlia

import (
	"io"
	"net/netip"
	"time"

	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/krpc"
	"github.com/dhtkit/dhtkit/replica"
	"github.com/dhtkit/dhtkit/routing"
	"github.com/dhtkit/dhtkit/store"
)

// Config configures an Engine. The zero value of every field means its
// default, listed in DefaultConfig.
type Config struct {
	// ID is the node id. Zero: random, drawn from Rand.
	ID id.ID
	// K is the bucket size and the number of closest nodes a lookup
	// returns (BEP 5: 8).
	K int
	// Alpha is the number of queries a lookup keeps in flight (3).
	Alpha int
	// Beta is how many of the closest nodes found must answer before a
	// lookup that only reads (FindNode, GetPeers, GetItem, the engine's
	// own refreshes) ends (3). Its Result then lists the Beta closest
	// nodes exactly and, after them, the next nodes that answered, which
	// may pass over a closer one that had not answered yet. A lookup that
	// stores waits for all K (announce_peer and put need each node's
	// token), a key-value operation for its Replicas. Beta >= K is the
	// original Kademlia rule: wait for all K, and list the K closest.
	Beta int

	// StrictBEP5 keeps BEP 5's rule that a bucket full of good nodes
	// turns a newcomer away. By default a full bucket trades its slowest
	// node for a newcomer that answered in under 3/4 of that node's
	// round-trip time, as libtorrent does: the first hops of a lookup,
	// which come from our own table, are then short ones.
	StrictBEP5 bool
	// QueryTimeout bounds the wait for one response before the contact's
	// RTT is known (2s). With RTT samples the timeout adapts to
	// srtt+4·rttvar, clamped to [MinQueryTimeout, QueryTimeout].
	QueryTimeout    time.Duration
	MinQueryTimeout time.Duration // 250ms
	// Network is the network name: "" or "mainline" is the public BitTorrent
	// DHT; any other name is a private network whose messages carry the
	// name and which drops every message that does not.
	Network string
	// Version is the client version sent as "v" (BEP 5/20): "DK" and two
	// version bytes.
	Version []byte
	// ReadOnly makes the node a BEP 43 read-only node: it asks but never
	// answers, and flags its queries with ro=1 so peers do not add it.
	ReadOnly bool
	// SecureIDs enforces BEP 42: a node whose id does not derive from its
	// IP address (loopback and private addresses exempt) is answered but
	// never enters the routing table or a lookup, so an attacker cannot
	// pick ids next to a target. Off by default, as in libtorrent, since
	// many Mainline nodes still use random ids.
	SecureIDs bool
	// IPv6 says the engine's socket is IPv6: its table holds IPv6 contacts
	// and it answers with nodes6 (BEP 32).
	IPv6 bool
	// Bootstrap lists nodes to join through; see the Bootstrap op.
	Bootstrap []netip.AddrPort
	// Rand supplies randomness (ids, tokens, transaction ids). nil means
	// crypto/rand; a seeded source makes the engine deterministic.
	Rand io.Reader
	// NewTable builds the routing table for the node's id. nil: the BEP 5
	// k-bucket table.
	NewTable func(self id.ID, k int) routing.Table
	// TokenRotation is how often the announce token secret changes (5m);
	// a token is accepted for two periods.
	TokenRotation time.Duration
	// RefreshInterval is how long a bucket may stay unchanged before it is
	// refreshed by a lookup of a random id in it (15m).
	RefreshInterval time.Duration
	// PeerTTL is how long an announced peer is kept (30m).
	PeerTTL time.Duration
	// MaxInfohashes and MaxPeersPerInfohash bound the peer store
	// (libtorrent's max_torrents and max_peers: 2000 and 500). A new
	// infohash past MaxInfohashes evicts the least recently announced one;
	// a new peer past MaxPeersPerInfohash the swarm's least recent peer.
	MaxInfohashes       int
	MaxPeersPerInfohash int
	// RateLimit is the queries per second answered for one source (an IPv4
	// address or an IPv6 /64), with a burst of RateBurst (100/s, 200). Zero
	// values take the defaults; a negative RateLimit disables the limit.
	RateLimit float64
	RateBurst int
	// RateBytes is the reply bytes per second (burst twice that) sent to
	// one source that has not proven it receives at its address (16 KiB):
	// what one forged source can make this node send its victim. Negative
	// disables it.
	RateBytes int
	// GlobalRate is the queries per second answered over all sources, and
	// GlobalBytes the reply bytes per second to unproven sources over all
	// (8192/s and 1 MiB/s, bursts twice that; negative disables): a flood
	// from, or spoofing, many addresses buys no more than that.
	GlobalRate  float64
	GlobalBytes int
	// TrustLoopback exempts loopback sources from the limits above, from
	// write quotas and from routing IP diversity: a local cluster, or a
	// test, whose nodes all share 127.0.0.1. Off by default.
	TrustLoopback bool
	// MaxNodesPerIP and MaxNodesPerPrefix keep the routing table and every
	// lookup diverse (libtorrent's restrict_routing_ips and
	// restrict_search_ips): a bucket holds at most MaxNodesPerIP nodes of
	// one IP and MaxNodesPerPrefix of one /24 (IPv4) or /64 (IPv6), and a
	// lookup asks one node per IP, so that one host with many ports and
	// made-up ids cannot become every replica of a key (1 and 2; negative
	// disables). Loopback and private addresses are exempt, as BEP 42
	// exempts them, unless DiverseLocal is set.
	MaxNodesPerIP     int
	MaxNodesPerPrefix int
	DiverseLocal      bool
	// MaxItems bounds the BEP 44 items stored for others (libtorrent's
	// max_dht_items: 700); a new item past it evicts the least recently
	// put. Each is kept for ItemTTL after its last put (2h; publishers
	// re-put hourly).
	MaxItems int
	ItemTTL  time.Duration
	// Store keeps the key-value records this node holds for the network.
	// nil: an in-memory store with default limits, made on first use.
	Store store.Store
	// Replicas is how many nodes keep each key-value record (3, at most K).
	Replicas int
	// WriteQuorum is how many replicas must hold a write before a put
	// succeeds; ReadQuorum is how many must answer a get. Both default to
	// a majority of Replicas, so that a get sees the newest acknowledged put.
	WriteQuorum int
	ReadQuorum  int
	// Alone lets the node be a network of one: while it finds no other
	// node, it is the whole replica set and a put needs its own
	// acknowledgement only. Otherwise the quorums count from Replicas,
	// never from the nodes found, and a put that finds fewer replicas
	// than WriteQuorum fails with ErrQuorum, writing nothing.
	Alone bool
	// DownFor is how long a node that stopped answering still counts in
	// the replica sets of its keys (5m): a put or get counts its quorum
	// among the Replicas nodes nearest the key of every node heard from
	// within DownFor, answering or not, so that the minority side of a
	// partition refuses writes rather than calling itself the set. After
	// DownFor of silence (or once the table evicts it) the node no longer
	// counts and the next nearest take its place.
	DownFor time.Duration
	// SyncInterval is how often replicas compare digests and repair (15s).
	SyncInterval time.Duration
	// CommitWindow holds a group commit until its oldest write has waited
	// this long, so that more writes share one fsync (replica.Commits.Window).
	// Zero or less: commit the writes of each batch of datagrams at once
	// (package dhtkit sets DurableCommitWindow for a node with a data
	// directory unless this is negative).
	CommitWindow time.Duration
	// DefaultTTL is the life of a value put without a TTL (24h).
	DefaultTTL time.Duration
	// ListenRefresh is how often a KVListen looks its key's replicas up
	// again and renews its registrations (1m, at most half of ListenTTL):
	// it bounds how long a listener misses the writes of a replica that
	// took over from a dead one.
	ListenRefresh time.Duration
	// MaxListeners bounds the dk_listen registrations this node keeps for
	// others (10000; see also replica.ListenersPerKey and
	// replica.ListenersPerSource).
	MaxListeners int
	// SampleInterval is the interval BEP 51 responders ask requesters to
	// wait before asking again (6h is typical; default 60s).
	SampleInterval time.Duration
	// QueryHook, when set, sees every valid query after the engine has
	// composed its reply, and may change the reply (LightDHT-style
	// research). Returning false drops the query unanswered. q and reply
	// are valid only during the call.
	QueryHook func(from netip.AddrPort, q *krpc.Msg, reply *krpc.Msg) bool
	// Tap, when set, sees every message sent or received (after decoding).
	// m is valid only during the call.
	Tap func(dir Direction, peer netip.AddrPort, m *krpc.Msg)
	// Sender, when set, returns the node id that authenticated the
	// datagram being received (a network key's sealed envelope carries
	// it), or false when there is none. A replica then refuses a direct
	// write whose sender or version writer is another node (store.CheckWriter).
	Sender func() (id.ID, bool)
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		K:                   8,
		Alpha:               3,
		Beta:                3,
		QueryTimeout:        2 * time.Second,
		MinQueryTimeout:     250 * time.Millisecond,
		Version:             []byte{'D', 'K', 0, 1},
		TokenRotation:       5 * time.Minute,
		RefreshInterval:     15 * time.Minute,
		PeerTTL:             30 * time.Minute,
		MaxInfohashes:       2000,
		MaxPeersPerInfohash: 500,
		RateLimit:           100,
		RateBurst:           200,
		RateBytes:           16 << 10,
		GlobalRate:          8192,
		GlobalBytes:         1 << 20,
		MaxNodesPerIP:       1,
		MaxNodesPerPrefix:   2,
		SampleInterval:      60 * time.Second,
		MaxItems:            700,
		Replicas:            3,
		SyncInterval:        15 * time.Second,
		DefaultTTL:          24 * time.Hour,
		ListenRefresh:       time.Minute,
		DownFor:             5 * time.Minute,
		MaxListeners:        10000,
		ItemTTL:             2 * time.Hour,
	}
}

// withDefaults fills the zero fields of c from DefaultConfig.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.K <= 0 {
		c.K = d.K
	}
	if c.Alpha <= 0 {
		c.Alpha = d.Alpha
	}
	if c.Beta <= 0 {
		c.Beta = d.Beta
	}

	if c.DownFor <= 0 {
		c.DownFor = d.DownFor
	}
	if c.QueryTimeout <= 0 {
		c.QueryTimeout = d.QueryTimeout
	}
	if c.MinQueryTimeout <= 0 {
		c.MinQueryTimeout = d.MinQueryTimeout
	}
	if c.MinQueryTimeout > c.QueryTimeout {
		c.MinQueryTimeout = c.QueryTimeout
	}
	if c.Version == nil {
		c.Version = d.Version
	}
	if c.TokenRotation <= 0 {
		c.TokenRotation = d.TokenRotation
	}
	if c.RefreshInterval <= 0 {
		c.RefreshInterval = d.RefreshInterval
	}
	if c.PeerTTL <= 0 {
		c.PeerTTL = d.PeerTTL
	}
	if c.MaxInfohashes <= 0 {
		c.MaxInfohashes = d.MaxInfohashes
	}
	if c.MaxPeersPerInfohash <= 0 {
		c.MaxPeersPerInfohash = d.MaxPeersPerInfohash
	}
	c.setGuard(c.Guard()) // the limits' defaults are package guard's
	if c.MaxNodesPerIP == 0 {
		c.MaxNodesPerIP = d.MaxNodesPerIP
	}
	if c.MaxNodesPerPrefix == 0 {
		c.MaxNodesPerPrefix = d.MaxNodesPerPrefix
	}
	if c.SampleInterval <= 0 {
		c.SampleInterval = d.SampleInterval
	}
	if c.MaxItems <= 0 {
		c.MaxItems = d.MaxItems
	}
	if c.ItemTTL <= 0 {
		c.ItemTTL = d.ItemTTL
	}
	if c.Replicas <= 0 {
		c.Replicas = d.Replicas
	}
	c.WriteQuorum, c.ReadQuorum = replica.Quorums(c.replicas(), c.WriteQuorum, c.ReadQuorum)
	if c.SyncInterval <= 0 {
		c.SyncInterval = d.SyncInterval
	}
	if c.DefaultTTL <= 0 {
		c.DefaultTTL = d.DefaultTTL
	}
	if c.ListenRefresh <= 0 {
		c.ListenRefresh = d.ListenRefresh
	}
	c.ListenRefresh = min(c.ListenRefresh, ListenTTL/2)
	if c.MaxListeners <= 0 {
		c.MaxListeners = d.MaxListeners
	}
	if c.Network == "mainline" {
		c.Network = ""
	}
	return c
}

// diversity is the routing table's share of the IP diversity bounds.
func (c *Config) diversity() routing.Diversity {
	return routing.Diversity{PerIP: c.MaxNodesPerIP, PerPrefix: c.MaxNodesPerPrefix, Local: c.DiverseLocal}
}

// DurableCommitWindow is the group-commit window of a node whose store
// syncs to disk, chosen with BenchmarkPutDurable (BENCHMARKS.md, "Group
// commit window" and "Session 5"). It was 5 ms when a commit cost bbolt's
// two fsyncs; with the log's one fdatasync in place (store/wal.go) the
// wait itself became most of a durable put's latency, and 1 ms gave
// 1.4–1.6× the puts per second of 5 ms and of no window. A store in
// memory has no fsync to share, and takes no window.
const DurableCommitWindow = time.Millisecond
