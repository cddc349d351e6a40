package dhtkit

import (
	"log/slog"

	"github.com/dhtkit/dhtkit/chord"
	"github.com/dhtkit/dhtkit/kademlia"
	"github.com/dhtkit/dhtkit/store"
)

// Network names with a meaning of their own.
const (
	// DefaultNetwork is the private network nodes join unless told
	// otherwise, so that a dhtkit node never mixes with the public DHT by
	// accident.
	DefaultNetwork = "dhtkit"
	// Mainline is the public BitTorrent DHT: a node on it is a standard
	// BEP 5 node.
	Mainline = "mainline"
)

// Protocol names: the routing protocols a Node runs.
const (
	// Kademlia is the default: BEP 5's Kademlia, with dhtkit's key-value
	// methods.
	Kademlia = "kademlia"
	// Chord runs package chord's engine: a ring of successors and fingers.
	// It stores keys and values, but has none of BitTorrent's methods
	// (get_peers, announce_peer, BEP 44 items, BEP 51), and cannot join
	// Mainline.
	Chord = "chord"
)

// Config configures a Node.
type Config struct {
	// Protocol is Kademlia (the default, when empty) or Chord.
	Protocol string
	// Listen is the UDP address to bind, host:port (":6881"). An empty or
	// IPv4 host makes an IPv4 node; an IPv6 host an IPv6 node (BEP 32).
	// Tests use "127.0.0.1:0".
	Listen string
	// Network is the network name: DefaultNetwork, Mainline, or any other
	// private name. Nodes only talk to nodes of the same network.
	Network string
	// Bootstrap lists host:port addresses of nodes to join through. Names
	// are resolved, and addresses retried with back-off until one answers.
	// Empty: the node waits to be contacted (or for Node.Bootstrap). A
	// library node never contacts the public routers on its own, not even
	// on Mainline; the CLI adds them when asked to.
	Bootstrap []string
	// Kademlia tunes the engine (K, Alpha, timeouts, ReadOnly, NewTable,
	// QueryHook, Tap, ...). Its Network and IPv6 fields are set from
	// Network and Listen.
	Kademlia kademlia.Config
	// Chord tunes the engine when Protocol is Chord (successor list,
	// stabilization periods, quorums, ...). Its ID, Store and Replicas
	// are set from DataDir, Limits and Replicas; its Network from Network
	// (DefaultNetwork stands for chord.DefaultNetwork, so that Chord and
	// Kademlia nodes of one default setup do not mix).
	Chord chord.Config
	// Logger receives the node's logs; nil: slog.Default().
	Logger *slog.Logger
	// DataDir, when set, keeps the node id, the stored values (bbolt) and
	// the routing table's contacts across restarts. Empty: memory only.
	DataDir string
	// Replicas is how many nodes keep each value (kademlia's default, 3,
	// when 0).
	Replicas int
	// Limits bound what the node stores for others: value size, bytes in
	// all, records per writer (store's defaults when zero).
	Limits store.Config
	// Alone makes the node a network of its own on purpose (`dhtkit node
	// --bootstrap none`): it contacts nobody, and serves reads and writes
	// with the nodes it knows, itself alone if need be. Without it, a node
	// serves no read or write before it has joined through its bootstrap
	// addresses and knows the nodes a write quorum needs (see JoinWait).
	// It excludes Bootstrap, and sets the engine's Alone (Kademlia.Alone,
	// Chord.Alone: its write quorum may be the node itself); setting the
	// engine's Alone makes the node alone on purpose too.
	Alone bool
	// NetworkKey is the path of a key file (`dhtkit network-key`): every
	// datagram is then sealed with its first key and opened with any of
	// them, and the node answers nothing else. The node reads the file
	// again when it changes, and on Node.ReloadNetworkKey, so that keys
	// rotate on a running network (docs/architecture.md). Empty: no key,
	// and on a non-loopback address anyone who reaches the port can read
	// and change the data. Not for Mainline.
	NetworkKey string
}

// DefaultConfig returns the defaults: port 6881 on every IPv4 address,
// the private network DefaultNetwork, no bootstrap nodes.
func DefaultConfig() Config {
	return Config{
		Listen:   ":6881",
		Network:  DefaultNetwork,
		Protocol: Kademlia,
		Kademlia: kademlia.DefaultConfig(),
		Chord:    chord.DefaultConfig(),
	}
}
