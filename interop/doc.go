// Package interop runs other implementations of the BitTorrent DHT (BEP 5)
// on loopback next to dhtkit: github.com/anacrolix/dht/v2 in-process, and
// libtorrent through Debian's python3-libtorrent in a child process. Its
// tests check that each kind answers the other's ping, find_node,
// get_peers and announce_peer, and that announces cross between kinds in a
// mixed network; cmd/dhtload compares their answered rates and CPU cost.
//
// It is a Go module of its own so that the other implementations'
// dependencies never enter dhtkit's go.mod.
//
// Nothing here ever contacts a public address: every server is given an
// explicit, loopback-only list of starting nodes.
package interop
