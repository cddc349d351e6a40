package kademlia

import (
	"math/rand/v2"
	"net/netip"
	"time"

	"github.com/dhtkit/dhtkit/id"
)

// peerStore keeps the peers announced for each infohash (BEP 5), each for
// a limited time. Infohashes also sit in a slice so that BEP 51 can sample
// them uniformly without walking the map.
type peerStore struct {
	ttl        time.Duration
	maxHashes  int
	maxPerHash int
	swarms     map[id.ID]*swarm
	hashes     []id.ID
}

type swarm struct {
	idx   int // position in peerStore.hashes
	peers []storedPeer
}

type storedPeer struct {
	addr    netip.AddrPort
	expires time.Time
}

// add stores or refreshes a peer. It reports false when the store is full.
func (s *peerStore) add(now time.Time, h id.ID, addr netip.AddrPort) bool {
	if s.swarms == nil {
		s.swarms = make(map[id.ID]*swarm)
	}
	sw := s.swarms[h]
	if sw == nil {
		if len(s.swarms) >= s.maxHashes {
			return false
		}
		sw = &swarm{idx: len(s.hashes)}
		s.swarms[h] = sw
		s.hashes = append(s.hashes, h)
	}
	exp := now.Add(s.ttl)
	for i := range sw.peers {
		if sw.peers[i].addr == addr {
			sw.peers[i].expires = exp
			return true
		}
	}
	if len(sw.peers) >= s.maxPerHash {
		// Replace the peer closest to expiry: the one least recently announced.
		old := 0
		for i := range sw.peers {
			if sw.peers[i].expires.Before(sw.peers[old].expires) {
				old = i
			}
		}
		sw.peers[old] = storedPeer{addr, exp}
		return true
	}
	sw.peers = append(sw.peers, storedPeer{addr, exp})
	return true
}

// appendPeers appends up to n live peers of h to dst, picked at random
// when there are more than n, so that every peer gets found.
func (s *peerStore) appendPeers(now time.Time, h id.ID, n int, rng *rand.Rand, dst []netip.AddrPort) []netip.AddrPort {
	sw := s.swarms[h]
	if sw == nil {
		return dst
	}
	live := 0
	for _, p := range sw.peers {
		if p.expires.After(now) {
			live++
		}
	}
	if live <= n {
		for _, p := range sw.peers {
			if p.expires.After(now) {
				dst = append(dst, p.addr)
			}
		}
		return dst
	}
	// Reservoir sampling over the live peers.
	start := len(dst)
	seen := 0
	for _, p := range sw.peers {
		if !p.expires.After(now) {
			continue
		}
		if seen < n {
			dst = append(dst, p.addr)
		} else if j := rng.IntN(seen + 1); j < n {
			dst[start+j] = p.addr
		}
		seen++
	}
	return dst
}

// expire drops expired peers and empty swarms.
func (s *peerStore) expire(now time.Time) {
	for i := 0; i < len(s.hashes); {
		h := s.hashes[i]
		sw := s.swarms[h]
		live := sw.peers[:0]
		for _, p := range sw.peers {
			if p.expires.After(now) {
				live = append(live, p)
			}
		}
		sw.peers = live
		if len(live) > 0 {
			i++
			continue
		}
		last := len(s.hashes) - 1
		s.hashes[i] = s.hashes[last]
		s.swarms[s.hashes[i]].idx = i
		s.hashes = s.hashes[:last]
		delete(s.swarms, h)
	}
}

// sample appends up to n distinct infohashes chosen uniformly (BEP 51).
func (s *peerStore) sample(n int, rng *rand.Rand, dst []id.ID) []id.ID {
	if len(s.hashes) <= n {
		return append(dst, s.hashes...)
	}
	for _, i := range rng.Perm(len(s.hashes))[:n] {
		dst = append(dst, s.hashes[i])
	}
	return dst
}

func (s *peerStore) len() int { return len(s.hashes) }

// LocalPeers returns the live peers announced to this node for h (at most
// maxValues of them). A get_peers lookup asks other nodes only; a driver
// adds these, so that a node that is itself one of the closest to h (in
// a network of two, always) finds the peers announced to it.
func (e *Engine) LocalPeers(now time.Time, h id.ID) []netip.AddrPort {
	return e.peers.appendPeers(now, h, maxValues, e.rng, nil)
}
