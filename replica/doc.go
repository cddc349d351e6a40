// Package replica is the replication layer both protocol engines (package
// kademlia and package chord) run on top of the one question they answer:
// which nodes should hold target T.
//
// This file set holds anti-entropy: two replicas compare what they hold
// with a hash tree walked level by level, as Cassandra's and Riak's Merkle
// trees are, so that replicas that agree exchange a few hundred bytes
// whatever they store, and repair costs what differs.
//
// # The tree
//
// The id space is split by target prefix: the node at depth L and index P
// covers every target whose first L bits are P. Its hash is the XOR of
// store.Entry.Hash over the records it covers (store.Digest's hash), so a
// record's key, version and tombstone flag all count, and the hash does
// not depend on the order records arrived in. A node keeps its tree in a
// cache (Tree) of a depth that follows its record count, rebuilt from the
// store's own digest at most once per second after a write: answering a
// request never walks the store.
//
// # The exchange (dk_sync)
//
// A round runs between a node and one peer, over the parts of the id space
// they should both hold (the shared set, from the engine's placement). The
// node asks for the hashes of the 2^c children of a prefix (c at most
// MaxFanout, so at most 64 hashes, 512 bytes); it descends into the
// children that differ from its own and that it shares with the peer;
// once a prefix holds a few records (by its own count) it asks for the
// prefix's entries (key and version), in pages that each fit a datagram.
// It then pushes the records the peer lacks or holds older and should
// hold, and pulls the ones it lacks or holds older and should hold itself.
// Every message, whatever either store holds, fits one datagram; a request
// costs its answerer at most a bounded scan (maxScan entries) of its index.
//
//	digests  a.x: {"l": L, "p": prefix, "c": c}          r.x: {"h": 8-byte hashes, 2^c of them}
//	entries  a.x: {"l": L, "p": prefix, "e": 1[, "a": after-key]}
//	                                                      r.x: {"e": [[key, time, writer, deleted], ...], "m": 0|1}
//
// prefix is the first L bits of the node's targets, in ceil(L/8) bytes,
// the bits past L zero; "m" 1 says the page is not the prefix's last (the
// asker then splits the prefix, or at MaxDepth asks for the next page
// after the last key it got).
package replica
