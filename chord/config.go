package chord

import (
	"io"
	"net/netip"
	"time"

	"github.com/dhtkit/dhtkit/guard"
	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/replica"
	"github.com/dhtkit/dhtkit/store"
)

// Config configures an Engine. The zero value of every field means its
// default, listed in DefaultConfig.
type Config struct {
	// ID is the node id, its place on the ring. Zero: random, drawn from
	// Rand.
	ID id.ID
	// Successors is r, the length of the successor list (8). The ring
	// stays connected as long as fewer than r consecutive nodes fail
	// between two stabilizations (Stoica et al., §5.3).
	Successors int
	// K is the number of nodes a FindNode returns: the target's successor
	// and the nodes that follow it (8, as in Kademlia, so that drivers
	// and metrics treat both engines alike).
	K int
	// StabilizeInterval is how often the node asks its successor for its
	// predecessor and successor list, then notifies it (5s). Each period
	// is jittered by ±25% so that nodes started together do not run in
	// lockstep.
	StabilizeInterval time.Duration
	// FixFingersInterval is how often one finger is refreshed by a
	// lookup (10s). Only fingers beyond the successor list need a lookup,
	// about log2(N)-log2(r) of them, so a full refresh takes that many
	// periods; right after a join they are all looked up back to back.
	FixFingersInterval time.Duration
	// CheckPredecessorInterval is how often the predecessor is pinged
	// (10s); one that does not answer is forgotten, so that a live node
	// may notify its way in.
	CheckPredecessorInterval time.Duration
	// SyncInterval is how often the node offers the records it is the
	// primary for to the rest of their replica set, which answers with
	// what it lacks (15s, as in package kademlia; see sync.go). Each
	// period is jittered by ±25%. A lost copy is made again within about
	// a period after stabilize noticed the loss.
	SyncInterval time.Duration
	// QueryTimeout bounds the wait for one response (1s). A lookup then
	// moves on to its next best candidate.
	QueryTimeout time.Duration
	// Network is the network name carried in every message ("nw"), as in
	// package kademlia; messages with another name are dropped. "" means
	// "dhtkit-chord": a Chord node never mixes with the public BitTorrent
	// DHT, whose nodes do not speak its methods.
	Network string
	// Version is the client version sent as "v".
	Version []byte
	// Bootstrap lists nodes to join through; see kademlia.Bootstrap.
	Bootstrap []netip.AddrPort
	// Rand supplies randomness (id, transaction ids, jitter). nil means
	// crypto/rand; a seeded source makes the engine deterministic.
	Rand io.Reader
	// Store keeps the key-value records this node holds. nil: an
	// in-memory store, made on first use.
	Store store.Store
	// Replicas is how many nodes keep each record: the key's successor
	// and the Replicas-1 nodes after it (3, at most Successors+1).
	Replicas int
	// WriteQuorum and ReadQuorum are how many replicas must acknowledge a
	// put and answer a get; both default to a majority of Replicas, so
	// that a get sees the newest acknowledged put.
	WriteQuorum int
	ReadQuorum  int
	// Alone lets the node be a network of one: while it finds no other
	// node, it is the whole replica set and a put needs its own
	// acknowledgement only. Otherwise the quorums count from Replicas,
	// never from the nodes found, and a put that finds fewer replicas
	// than WriteQuorum fails with kademlia.ErrQuorum, writing nothing.
	Alone bool
	// DownFor is how long a neighbour that stopped answering still
	// counts in the replica sets (5 minutes), as Kademlia's DownFor: a
	// key's replica set is the first Replicas nodes after it among every
	// node this one knows, its lost neighbours included, so that the
	// minority side of a partition refuses writes and reads.
	DownFor time.Duration
	// DefaultTTL is the life of a value put without a TTL (24h).
	DefaultTTL time.Duration
	// ListenRefresh is how often a KVListen looks its key's replicas up
	// again and renews its registrations (1m, at most half of
	// replica.ListenTTL), as Kademlia's: it bounds how long a listener
	// misses the writes of a node that took over the key's range.
	ListenRefresh time.Duration
	// MaxListeners bounds the dk_listen registrations this node keeps for
	// others (10000; see also replica.ListenersPerKey and
	// replica.ListenersPerSource).
	MaxListeners int
	// Routing is how lookups are forwarded: RoutingFingers (""), or
	// RoutingLinear, one successor at a time, for comparison.
	Routing string
	// Guard bounds what sources can make the node do: query rates, byte
	// budgets for replies to unproven sources, loopback trust (package
	// guard, the same bounds as Kademlia's; zero fields take guard's
	// defaults). A simulator turns them off with guard.Off().
	Guard guard.Config
	// Sender, when set, returns the node id that authenticated the
	// datagram being received (a network key's sealed envelope carries
	// it), or false when there is none: a sealed datagram proves its
	// source, as a token does.
	Sender func() (id.ID, bool)
}

// DefaultNetwork is the network name of a Config with none.
const DefaultNetwork = "dhtkit-chord"

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		Successors:               8,
		K:                        8,
		StabilizeInterval:        5 * time.Second,
		FixFingersInterval:       10 * time.Second,
		CheckPredecessorInterval: 10 * time.Second,
		SyncInterval:             15 * time.Second,
		QueryTimeout:             time.Second,
		Network:                  DefaultNetwork,
		Version:                  []byte{'D', 'C', 0, 1},
		Replicas:                 3,
		DownFor:                  5 * time.Minute,
		DefaultTTL:               24 * time.Hour,
		ListenRefresh:            time.Minute,
		MaxListeners:             10000,
	}
}

// withDefaults fills the zero fields of c from DefaultConfig.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Successors <= 0 {
		c.Successors = d.Successors
	}
	if c.K <= 0 {
		c.K = d.K
	}
	if c.StabilizeInterval <= 0 {
		c.StabilizeInterval = d.StabilizeInterval
	}
	if c.FixFingersInterval <= 0 {
		c.FixFingersInterval = d.FixFingersInterval
	}
	if c.CheckPredecessorInterval <= 0 {
		c.CheckPredecessorInterval = d.CheckPredecessorInterval
	}
	if c.SyncInterval <= 0 {
		c.SyncInterval = d.SyncInterval
	}
	if c.QueryTimeout <= 0 {
		c.QueryTimeout = d.QueryTimeout
	}
	if c.Network == "" {
		c.Network = d.Network
	}
	if c.Version == nil {
		c.Version = d.Version
	}
	if c.Replicas <= 0 {
		c.Replicas = d.Replicas
	}
	c.Replicas = min(c.Replicas, c.Successors+1)
	c.WriteQuorum, c.ReadQuorum = replica.Quorums(c.Replicas, c.WriteQuorum, c.ReadQuorum)
	if c.DefaultTTL <= 0 {
		c.DefaultTTL = d.DefaultTTL
	}
	if c.DownFor <= 0 {
		c.DownFor = d.DownFor
	}
	if c.ListenRefresh <= 0 {
		c.ListenRefresh = d.ListenRefresh
	}
	c.ListenRefresh = min(c.ListenRefresh, replica.ListenTTL/2)
	if c.MaxListeners <= 0 {
		c.MaxListeners = d.MaxListeners
	}
	return c
}
