package kademlia

import (
	"math/rand/v2"
	"net/netip"
	"time"

	"github.com/dhtkit/dhtkit/internal/lru"

	"github.com/dhtkit/dhtkit/id"
)

// peerStore keeps the peers announced for each infohash (BEP 5), each for
// a limited time, within bounds modelled on libtorrent's: at most
// maxHashes swarms, the least recently announced evicted for a new one,
// and maxPerHash peers a swarm, its least recently announced replaced.
// Infohashes also sit in a slice so that BEP 51 can sample them without
// walking the map; the sample is drawn once per SampleInterval, so a
// sample_infohashes costs the same whatever the store holds.
type peerStore struct {
	ttl        time.Duration
	maxHashes  int
	maxPerHash int
	swarms     map[id.ID]*swarm
	hashes     []id.ID
	recent     lru.List[*swarm] // most recently announced first
	evicted    uint64

	samples  []id.ID
	sampleAt time.Time // when samples was drawn

	bf [2]Bloom // BEP 33: a reply's BFsd and BFpe, reused
}

type swarm struct {
	hash  id.ID
	idx   int // position in peerStore.hashes
	peers []storedPeer
	el    lru.Elem[*swarm] // its place in peerStore.recent
}

type storedPeer struct {
	addr    netip.AddrPort
	expires time.Time
	seed    bool      // BEP 33: announced with seed=1
	bloom   [2]uint16 // BEP 33: the filter bits of addr, hashed once
}

// add stores or refreshes a peer that did not say it seeds.
func (s *peerStore) add(now time.Time, h id.ID, addr netip.AddrPort) {
	s.announce(now, h, addr, false)
}

// announce stores or refreshes a peer, with its BEP 33 seed status. A new
// infohash in a full store evicts the least recently announced one.
func (s *peerStore) announce(now time.Time, h id.ID, addr netip.AddrPort, seed bool) {
	if s.swarms == nil {
		s.swarms = make(map[id.ID]*swarm)
	}
	sw := s.swarms[h]
	if sw == nil {
		if len(s.swarms) >= s.maxHashes && s.recent.Back() != nil {
			s.remove(s.recent.Back().Value)
			s.evicted++
		}
		sw = &swarm{hash: h, idx: len(s.hashes)}
		sw.el.Value = sw
		s.swarms[h] = sw
		s.hashes = append(s.hashes, h)
	}
	s.recent.Touch(&sw.el)
	exp := now.Add(s.ttl)
	for i := range sw.peers {
		if sw.peers[i].addr == addr {
			sw.peers[i].expires = exp
			sw.peers[i].seed = seed
			return
		}
	}
	p := storedPeer{addr: addr, expires: exp, seed: seed, bloom: bloomIndex(addr.Addr())}
	if len(sw.peers) >= s.maxPerHash {
		// Replace the peer closest to expiry: the one least recently announced.
		old := 0
		for i := range sw.peers {
			if sw.peers[i].expires.Before(sw.peers[old].expires) {
				old = i
			}
		}
		sw.peers[old] = p
		return
	}
	sw.peers = append(sw.peers, p)
}

// remove drops a swarm.
func (s *peerStore) remove(sw *swarm) {
	s.recent.Remove(&sw.el)
	last := len(s.hashes) - 1
	s.hashes[sw.idx] = s.hashes[last]
	s.swarms[s.hashes[sw.idx]].idx = sw.idx
	s.hashes = s.hashes[:last]
	delete(s.swarms, sw.hash)
}

// appendPeers appends up to n live peers of h to dst, picked at random
// when there are more than n, so that every peer gets found.
func (s *peerStore) appendPeers(now time.Time, h id.ID, n int, rng *rand.Rand, dst []netip.AddrPort) []netip.AddrPort {
	return s.appendPeersOf(now, h, n, rng, dst, anyPeer)
}

// peerClass picks the peers appendPeersOf returns (BEP 33's noseed).
type peerClass uint8

const (
	anyPeer peerClass = iota
	leechers
	seeds
)

func (c peerClass) has(p *storedPeer) bool {
	return c == anyPeer || p.seed == (c == seeds)
}

// appendPeersOf appends up to n live peers of class c, at random when
// there are more.
func (s *peerStore) appendPeersOf(now time.Time, h id.ID, n int, rng *rand.Rand, dst []netip.AddrPort, c peerClass) []netip.AddrPort {
	sw := s.swarms[h]
	if sw == nil || n <= 0 {
		return dst
	}
	live := 0
	for i := range sw.peers {
		if p := &sw.peers[i]; p.expires.After(now) && c.has(p) {
			live++
		}
	}
	if live <= n {
		for i := range sw.peers {
			if p := &sw.peers[i]; p.expires.After(now) && c.has(p) {
				dst = append(dst, p.addr)
			}
		}
		return dst
	}
	// Reservoir sampling over the live peers.
	start := len(dst)
	seen := 0
	for i := range sw.peers {
		p := &sw.peers[i]
		if !p.expires.After(now) || !c.has(p) {
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
		sw := s.swarms[s.hashes[i]]
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
		s.remove(sw) // moves the last hash to i
	}
}

// sample appends the current BEP 51 sample to dst and returns the seconds
// until it is drawn again (the reply's honest "interval"). The sample,
// up to maxSamples distinct infohashes chosen uniformly, is drawn at most
// once per interval, in O(maxSamples): a flood of sample_infohashes costs
// no more with a full store than with an empty one.
func (s *peerStore) sample(now time.Time, interval time.Duration, rng *rand.Rand, dst []id.ID) ([]id.ID, int) {
	if s.samples == nil || !now.Before(s.sampleAt.Add(interval)) {
		s.samples, s.sampleAt = s.draw(rng, s.samples[:0]), now
	}
	left := s.sampleAt.Add(interval).Sub(now)
	return append(dst, s.samples...), max(1, int((left+time.Second-1)/time.Second))
}

// draw appends up to maxSamples distinct infohashes chosen uniformly: all
// of them when there are no more than that, a partial shuffle of indices
// up to twice that, else by rejection, which takes about maxSamples draws.
func (s *peerStore) draw(rng *rand.Rand, dst []id.ID) []id.ID {
	const n = maxSamples
	if dst == nil {
		dst = make([]id.ID, 0, n)
	}
	if len(s.hashes) <= n {
		return append(dst, s.hashes...)
	}
	if len(s.hashes) <= 2*n {
		// Partial Fisher-Yates over indices: bounded by 2n.
		var idx [2 * maxSamples]int
		m := len(s.hashes)
		for i := range m {
			idx[i] = i
		}
		for i := range n {
			j := i + rng.IntN(m-i)
			idx[i], idx[j] = idx[j], idx[i]
			dst = append(dst, s.hashes[idx[i]])
		}
		return dst
	}
	var picked [maxSamples]int
	k := 0
next:
	for k < n {
		j := rng.IntN(len(s.hashes))
		for _, p := range picked[:k] {
			if p == j {
				continue next
			}
		}
		picked[k] = j
		k++
		dst = append(dst, s.hashes[j])
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
