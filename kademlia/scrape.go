package kademlia

import (
	"math/rand/v2"
	"net/netip"
	"time"

	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/krpc"
)

// BEP 33, DHT scrapes. A node answers get_peers with scrape=1 with two
// Bloom filters of the swarm it stores, the seeds' addresses (BFsd) and
// the other peers' (BFpe); an asker ORs the filters of every node it
// asks and estimates the swarm from the union, since announces scatter
// over a dozen nodes round the infohash and none holds the whole swarm.

// scrapeValues bounds the peers in a reply that carries the two filters
// (512 bytes between them), so that it stays about the size of a plain
// reply, as BEP 33 asks of BEP 32 nodes: 32 IPv6 peers, 304 bytes of
// nodes6 and the filters come to about 1.6 kB.
const scrapeValues = 32

// filters fills sd and pe with the filters of h's live seeds and other
// peers, and reports whether h has any. The bits of each peer were hashed
// when it announced: a scrape costs at most MaxPeersPerInfohash bit sets,
// whatever is asked, never a hash.
func (s *peerStore) filters(now time.Time, h id.ID, sd, pe *Bloom) bool {
	*sd, *pe = Bloom{}, Bloom{}
	sw := s.swarms[h]
	if sw == nil {
		return false
	}
	any := false
	for i := range sw.peers {
		p := &sw.peers[i]
		if !p.expires.After(now) {
			continue
		}
		any = true
		if p.seed {
			sd.set(p.bloom)
		} else {
			pe.set(p.bloom)
		}
	}
	return any
}

// appendNoSeed appends up to n live peers of h, the ones that did not say
// they seed first (BEP 33's noseed): a leecher asks for peers that still
// need pieces, and only when there are too few of those gets seeds.
func (s *peerStore) appendNoSeed(now time.Time, h id.ID, n int, rng *rand.Rand, dst []netip.AddrPort) []netip.AddrPort {
	start := len(dst)
	dst = s.appendPeersOf(now, h, n, rng, dst, leechers)
	return s.appendPeersOf(now, h, n-(len(dst)-start), rng, dst, seeds)
}

// answerGetPeers puts the peers of a get_peers query into r: values, and
// with scrape=1 the two filters when the node stores the infohash.
func (e *Engine) answerGetPeers(now time.Time, q, r *krpc.Msg) {
	h := q.A.InfoHash
	n := maxValues
	if q.A.Scrape && e.peers.filters(now, h, &e.peers.bf[0], &e.peers.bf[1]) {
		r.R.Has |= krpc.HasBFsd | krpc.HasBFpe
		r.R.BFsd, r.R.BFpe = e.peers.bf[0][:], e.peers.bf[1][:]
		n = scrapeValues
	}
	if q.A.NoSeed {
		r.R.Values = e.peers.appendNoSeed(now, h, n, e.rng, r.R.Values[:0])
	} else {
		r.R.Values = e.peers.appendPeers(now, h, n, e.rng, r.R.Values[:0])
	}
	if len(r.R.Values) > 0 {
		r.R.Has |= krpc.HasValues
	}
}

// Scrape is what a GetPeers with Scrape learned of the swarm: the union of
// the filters the nodes returned, and how many nodes sent any.
type Scrape struct {
	Seeds Bloom // BFsd of every node, ORed
	Peers Bloom // BFpe of every node, ORed, and the legacy values
	// Filters counts the answers that carried filters; Legacy those that
	// carried values but no filters (a node without BEP 33), whose
	// addresses count as peers unless some node's seed filter has them.
	Filters, Legacy int

	legacy []netip.Addr // from legacy answers, sorted out at the end
}

// maxLegacy bounds the addresses a scrape keeps from legacy answers.
const maxLegacy = 1024

// SeedCount and PeerCount are BEP 33's estimates of the swarm's seeds and
// other peers.
func (s *Scrape) SeedCount() float64 { return s.Seeds.Estimate() }
func (s *Scrape) PeerCount() float64 { return s.Peers.Estimate() }

// take merges one get_peers answer into the scrape.
func (s *Scrape) take(m *krpc.Msg) {
	if m.R.Has&(krpc.HasBFsd|krpc.HasBFpe) != 0 {
		s.Filters++
		s.Seeds.UnionBytes(m.R.BFsd)
		s.Peers.UnionBytes(m.R.BFpe)
		return
	}
	if len(m.R.Values) == 0 {
		return
	}
	s.Legacy++
	for _, v := range m.R.Values {
		if len(s.legacy) == maxLegacy {
			break
		}
		s.legacy = append(s.legacy, v.Addr())
	}
}

// finish puts the legacy answers' addresses into Peers, those no seed
// filter has: BEP 33 has a legacy value count as a peer, never twice.
func (s *Scrape) finish() {
	for _, a := range s.legacy {
		if !s.Seeds.Has(a) {
			s.Peers.Insert(a)
		}
	}
	s.legacy = nil
}
