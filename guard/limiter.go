// Package guard is what keeps a node from being a weapon or an easy
// target, shared by the Kademlia and Chord engines: per-source and global
// query rates, byte budgets for replies to sources that have not proven
// they receive at their address, the 3× rule for dhtkit's own methods,
// write tokens, and the reasons a drop is counted under. Like the engines
// it is sans-I/O: the time is handed in.
package guard

import (
	"net/netip"
	"time"

	"github.com/dhtkit/dhtkit/internal/lru"
)

// Config sets a Limiter's bounds. The zero value of a field means its
// default (DefaultConfig); a negative rate turns that limit off.
type Config struct {
	// RateLimit is the queries per second answered for one source (an
	// IPv4 address or an IPv6 /64), with a burst of RateBurst (100/s,
	// 200).
	RateLimit float64
	RateBurst int
	// RateBytes is the reply bytes per second (burst twice that) sent to
	// one source that has not proven it receives at its address (16 KiB).
	RateBytes int
	// GlobalRate is the queries per second answered over all sources, and
	// GlobalBytes the reply bytes per second to unproven sources over all
	// of them (8192/s, 1 MiB/s), each with a burst of twice that.
	GlobalRate  float64
	GlobalBytes int
	// TrustLoopback exempts loopback sources from every limit: for a local
	// cluster whose nodes share 127.0.0.1.
	TrustLoopback bool
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

// WithDefaults fills the zero fields of c from DefaultConfig.
func (c Config) WithDefaults() Config {
	d := DefaultConfig()
	if c.RateLimit == 0 {
		c.RateLimit = d.RateLimit
	}
	if c.RateBurst <= 0 {
		c.RateBurst = d.RateBurst
	}
	if c.RateBytes == 0 {
		c.RateBytes = d.RateBytes
	}
	if c.GlobalRate == 0 {
		c.GlobalRate = d.GlobalRate
	}
	if c.GlobalBytes == 0 {
		c.GlobalBytes = d.GlobalBytes
	}
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
	max                   int // sources tracked

	sources map[netip.Addr]*lru.Elem[sourceState]
	recent  lru.List[sourceState] // most recently heard from first
	evicted uint64
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
	key     netip.Addr
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
		max:           MaxSources,
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
func (l *Limiter) Sources() int { return len(l.sources) }

// Evicted counts the sources forgotten to make room for new ones
// (DropSourceEvicted).
func (l *Limiter) Evicted() uint64 { return l.evicted }

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
// recent when the table is full.
func (l *Limiter) source(ip netip.Addr) *sourceState {
	k := SourceKey(ip)
	if l.sources == nil {
		l.sources = make(map[netip.Addr]*lru.Elem[sourceState])
	}
	e := l.sources[k]
	if e == nil {
		if len(l.sources) >= l.max && l.recent.Back() != nil {
			e = l.recent.Back()
			l.recent.Remove(e)
			delete(l.sources, e.Value.key)
			l.evicted++
			e.Value = sourceState{} // reuse: a flood of new sources allocates nothing
		} else {
			e = new(lru.Elem[sourceState])
		}
		e.Value.key = k
		l.sources[k] = e
	}
	l.recent.Touch(e)
	return &e.Value
}

// Sweep forgets sources idle long enough for every bucket to refill: they
// hold no state a fresh entry would not. The oldest are at the back.
func (l *Limiter) Sweep(now time.Time) {
	idle := time.Minute
	if l.rate > 0 {
		idle = max(idle, time.Duration(l.burst/l.rate*float64(time.Second)))
	}
	for e := l.recent.Back(); e != nil && now.Sub(maxTime(e.Value.queries.last, e.Value.bytes.last)) >= idle; e = l.recent.Back() {
		l.recent.Remove(e)
		delete(l.sources, e.Value.key)
	}
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
