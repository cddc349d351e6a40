// Package dhtkit runs nodes of a distributed hash table: a private
// Kademlia network by default, or a standard member of the BitTorrent
// Mainline DHT (BEP 5).
//
// A Node is the protocol engine of package kademlia driven over a UDP
// socket by package runtime. Its methods block until the network answers
// or their context ends, and are safe for concurrent use: many lookups can
// be in flight at once, and many nodes can live in one process.
//
//	node, err := dhtkit.Listen(ctx, dhtkit.Config{
//		Listen:    ":6881",
//		Bootstrap: []string{"seed.example.org:6881"},
//	})
//	...
//	defer node.Close()
//	closest, err := node.Lookup(ctx, id.FromString("hello"))
package dhtkit
