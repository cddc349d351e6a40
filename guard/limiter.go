// Package guard is what keeps a node from being a weapon or an easy
// target, shared by the Kademlia and Chord engines: per-source and global
// query rates, byte budgets for replies to sources that have not proven
// they receive at their address, the 3× rule for dhtkit's own methods,
// write tokens, and the reasons a drop is counted under. Like the engines
// it is sans-I/O: the time is handed in.
package guard

import (
	"cmp"
	"net/netip"
	"time"

	"github.com/dhtkit/dhtkit/internal/lru"
)

// Config sets a Limiter's bounds, as kademlia.Config's fields of the
// same names (documented there) and chord.Config.Guard set them. The
// zero value of a field means its default (DefaultConfig); a negative
// rate or budget turns that limit off. Per source: RateLimit queries a
// second with a burst of RateBurst, and RateBytes reply bytes a second
// to an unproven source; over all sources: GlobalRate queries and
// GlobalBytes unproven reply bytes a second. TrustLoopback exempts
// loopback from all of it.
type Config struct {
	RateLimit, GlobalRate             float64
	RateBurst, RateBytes, GlobalBytes int
	TrustLoopback                     bool
}

// DefaultConfig returns the defaults, modelled on libtorrent's and
// OpenDHT's.
func DefaultConfig() Config {
	return Config{RateLimit: 100, RateBurst: 200, RateBytes: 16 << 10, GlobalRate: 8192, GlobalBytes: 1 << 20}
}

// Off is a Config with every limit off: what a simulator that models the
// protocol, not abuse, uses.
func Off() Config {
	return Config{RateLimit: -1, GlobalRate: -1, RateBytes: -1, GlobalBytes: -1}
}

// WithDefaults fills the zero fields of c from DefaultConfig (a burst
// below one takes the default too).
func (c Config) WithDefaults() Config {
	d := DefaultConfig()
	c.RateLimit = cmp.Or(c.RateLimit, d.RateLimit)
	c.RateBurst = cmp.Or(max(c.RateBurst, 0), d.RateBurst)
	c.RateBytes = cmp.Or(c.RateBytes, d.RateBytes)
	c.GlobalRate = cmp.Or(c.GlobalRate, d.GlobalRate)
	c.GlobalBytes = cmp.Or(c.GlobalBytes, d.GlobalBytes)
	return c
}

// Limiter bounds what sources can make the node do, and what the node's
// replies can do to a victim whose address a flood forges.
//
// Per source (an IPv4 address, or an IPv6 /64: one host or one customer),
// a token bucket of queries answered (RateLimit, RateBurst) and a token
// bucket of reply bytes (RateBytes) for replies to a source that has not
// proven it receives at its address. Over all sources, a bucket of queries
// (GlobalRate) and one of unproven reply bytes (GlobalBytes), so that a
// flood from many addresses, or spoofing many, cannot buy more than that
// in all.
//
// It fails closed: at most MaxSources sources are tracked; a new source
// past that evicts the one heard from least recently (whose bucket was the
// least likely to hold a debt) and starts with a fresh burst, never
// unlimited. Loopback is exempt only when Config.TrustLoopback says so.
type Limiter struct {
	rate, burst           float64 // queries per source; rate <= 0: off
	byteRate, byteBurst   float64 // unproven reply bytes per source; <= 0: off
	global                bucket  // queries over all sources
	globalRate, globalMax float64
	bytes                 bucket // unproven reply bytes over all sources
	bytesRate, bytesMax   float64
	trustLoopback         bool
	sources               lru.Map[netip.Addr, sourceState] // by SourceKey, at most MaxSources
}

// bucket is a token bucket: tokens refill at a rate up to a burst.
type bucket struct {
	tokens float64
	last   time.Time
}

// take refills b to now and takes n tokens if it holds them.
func (b *bucket) take(now time.Time, n, rate, burst float64) bool {
	if rate <= 0 {
		return true
	}
	if b.last.IsZero() {
		b.tokens, b.last = burst, now
	}
	if dt := now.Sub(b.last); dt > 0 {
		b.tokens = min(burst, b.tokens+dt.Seconds()*rate)
		b.last = now
	}
	if b.tokens < n {
		return false
	}
	b.tokens -= n
	return true
}

// sourceState is one source's buckets.
type sourceState struct {
	queries bucket
	bytes   bucket
}

// MaxSources bounds the limiter's memory (about 150 bytes each).
const MaxSources = 1 << 16

// NewLimiter returns a limiter with cfg's bounds (zero fields take the
// defaults).
func NewLimiter(cfg Config) *Limiter {
	cfg = cfg.WithDefaults()
	return &Limiter{
		rate: cfg.RateLimit, burst: float64(cfg.RateBurst),
		byteRate: float64(cfg.RateBytes), byteBurst: 2 * float64(cfg.RateBytes),
		globalRate: cfg.GlobalRate, globalMax: 2 * cfg.GlobalRate,
		bytesRate: float64(cfg.GlobalBytes), bytesMax: 2 * float64(cfg.GlobalBytes),
		trustLoopback: cfg.TrustLoopback,
		sources:       lru.Map[netip.Addr, sourceState]{Max: MaxSources},
	}
}

// SourceKey groups an address with the others of its host: an IPv4
// address alone, an IPv6 address with the rest of its /64, which one
// customer usually gets whole.
func SourceKey(a netip.Addr) netip.Addr {
	a = a.Unmap()
	if a.Is4() {
		return a
	}
	p, _ := a.WithZone("").Prefix(64)
	return p.Addr()
}

// Exempt reports whether a is exempt from every limit (trusted loopback).
func (l *Limiter) Exempt(a netip.Addr) bool {
	return l.trustLoopback && a.Unmap().IsLoopback()
}

// Sources is the number of sources tracked.
func (l *Limiter) Sources() int { return l.sources.Len() }

// Evicted counts the sources forgotten to make room for new ones
// (DropSourceEvicted).
func (l *Limiter) Evicted() uint64 { return l.sources.Evicted() }

// AllowQuery reports whether a query from ip may be answered
// (DropRateLimit on its own source's limit, DropGlobalRate on the node's).
func (l *Limiter) AllowQuery(now time.Time, ip netip.Addr) (bool, DropReason) {
	if l.Exempt(ip) {
		return true, 0
	}
	if l.rate > 0 {
		s := l.source(ip)
		if !s.queries.take(now, 1, l.rate, l.burst) {
			return false, DropRateLimit
		}
	}
	if !l.global.take(now, 1, l.globalRate, l.globalMax) {
		return false, DropGlobalRate
	}
	return true, 0
}

// Admit decides whether a query from ip is answered: 0 if so, else the
// reason to count it dropped under. Past the node's own rate, a proven
// source (proven is asked only then) is still answered: a flood from many
// addresses must not cut a node off from the peers it relies on.
func (l *Limiter) Admit(now time.Time, ip netip.Addr, proven func() bool) DropReason {
	if ok, why := l.AllowQuery(now, ip); !ok && !(why == DropGlobalRate && proven()) {
		return why
	}
	return 0
}

// Spend charges n bytes of a reply to an unproven source against the
// source's byte budget and the node's; false means the reply is dropped.
func (l *Limiter) Spend(now time.Time, ip netip.Addr, n int) (bool, DropReason) {
	if l.Exempt(ip) {
		return true, 0
	}
	if l.byteRate > 0 {
		s := l.source(ip)
		if !s.bytes.take(now, float64(n), l.byteRate, l.byteBurst) {
			return false, DropByteBudget
		}
	}
	if !l.bytes.take(now, float64(n), l.bytesRate, l.bytesMax) {
		return false, DropGlobalBytes
	}
	return true, 0
}

// MaxAmplification is how many times its query's bytes a reply to an
// unproven source may be, for dhtkit's own methods (QUIC's limit toward
// an unverified address).
const MaxAmplification = 3

// Reply decides a reply of out bytes to a query of in bytes from ip:
// 0 to send it; DropUnproven when it is a reply of dhtkit's own methods
// (own) to an unproven source over MaxAmplification times the query (the
// caller answers with a short error that asks for proof instead); the
// byte budgets' reasons when it would exceed them. A proven source (a
// valid token, a contact that answered us at that address, a sealed
// datagram) and an exempt one pass.
func (l *Limiter) Reply(now time.Time, ip netip.Addr, proven, own bool, in, out int) DropReason {
	if proven || l.Exempt(ip) {
		return 0
	}
	if own && out > MaxAmplification*in {
		return DropUnproven
	}
	if ok, why := l.Spend(now, ip, out); !ok {
		return why
	}
	return 0
}

// source returns ip's entry, made most recent; a new one evicts the least
// recent when the table is full, and starts with a fresh burst.
func (l *Limiter) source(ip netip.Addr) *sourceState { return l.sources.Touch(SourceKey(ip)) }

// Sweep forgets sources idle long enough for every bucket to refill: they
// hold no state a fresh entry would not. The oldest go first.
func (l *Limiter) Sweep(now time.Time) {
	idle := time.Minute
	if l.rate > 0 {
		idle = max(idle, time.Duration(l.burst/l.rate*float64(time.Second)))
	}
	for {
		k, s, ok := l.sources.Oldest()
		if !ok || now.Sub(maxTime(s.queries.last, s.bytes.last)) < idle {
			return
		}
		l.sources.Delete(k)
	}
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
