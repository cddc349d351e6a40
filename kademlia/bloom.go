package kademlia

import (
	"crypto/sha1"
	"math"
	"math/bits"
	"net/netip"

	"github.com/dhtkit/dhtkit/krpc"
)

// Bloom is a BEP 33 Bloom filter of IP addresses: m = 2048 bits, k = 2
// hashes taken from the SHA-1 of the address. Every implementation must
// build it bit for bit the same way, since nodes OR each other's filters
// to count a swarm none of them holds whole.
type Bloom [krpc.BloomBytes]byte

// bloomBits is the filter's m.
const bloomBits = krpc.BloomBytes * 8

// bloomIndex returns the two bits an address sets: the first two little
// endian 16-bit words of SHA-1 over its 4 (IPv4) or 16 (IPv6) bytes, mod
// m. Only the address counts, never the port: BEP 33 counts hosts.
func bloomIndex(a netip.Addr) [2]uint16 {
	a = a.Unmap()
	b := a.AsSlice()
	h := sha1.Sum(b)
	return [2]uint16{
		(uint16(h[0]) | uint16(h[1])<<8) % bloomBits,
		(uint16(h[2]) | uint16(h[3])<<8) % bloomBits,
	}
}

// set sets the bits of a precomputed index.
func (f *Bloom) set(ix [2]uint16) {
	for _, i := range ix {
		f[i/8] |= 1 << (i % 8)
	}
}

// Insert adds an address.
func (f *Bloom) Insert(a netip.Addr) { f.set(bloomIndex(a)) }

// Has reports whether a may be in the filter (false positives possible).
func (f *Bloom) Has(a netip.Addr) bool {
	for _, i := range bloomIndex(a) {
		if f[i/8]&(1<<(i%8)) == 0 {
			return false
		}
	}
	return true
}

// Union ORs g into f: the filter of the union of the two sets.
func (f *Bloom) Union(g *Bloom) {
	for i := range f {
		f[i] |= g[i]
	}
}

// UnionBytes ORs a filter as carried on the wire (BFsd, BFpe) into f. It
// reports false, and leaves f alone, if b is not BloomBytes long.
func (f *Bloom) UnionBytes(b []byte) bool {
	if len(b) != len(f) {
		return false
	}
	for i := range f {
		f[i] |= b[i]
	}
	return true
}

// Empty reports whether no bit is set.
func (f *Bloom) Empty() bool { return *f == Bloom{} }

// Estimate is BEP 33's estimate of how many distinct addresses went into
// the filter: log(c/m) / (k log(1 - 1/m)), c the zero bits clamped to
// m-1. An empty filter is 0 (the formula's clamp would say 0.5), and a
// full one counts as one zero bit, the largest finite answer (about
// 7.8k), where the formula would say infinity. Past about 6000
// addresses the estimate is no longer meaningful.
func (f *Bloom) Estimate() float64 {
	ones := 0
	for _, b := range f {
		ones += bits.OnesCount8(b)
	}
	if ones == 0 {
		return 0
	}
	c := max(1, min(bloomBits-1, bloomBits-ones))
	const k = 2
	return math.Log(float64(c)/bloomBits) / (k * math.Log(1-1.0/bloomBits))
}
