package kademlia

import (
	"net/netip"
	"time"
)

// limiter bounds what sources can make the node do, and what the node's
// replies can do to a victim whose address a flood forges.
//
// Per source (an IPv4 address, or an IPv6 /64: one host or one customer),
// a token bucket of queries answered (Config.RateLimit, RateBurst) and a
// token bucket of reply bytes (RateBytes) for replies to a source that has
// not proven it receives at its address (no valid token). Over all sources,
// a bucket of queries (GlobalRate) and one of unproven reply bytes
// (GlobalBytes), so that a flood from many addresses, or spoofing many,
// cannot buy more than that in all.
//
// It fails closed: at most maxSources sources are tracked; a new source
// past that evicts the one heard from least recently (whose bucket was the
// least likely to hold a debt) and starts with a fresh burst, never
// unlimited. Loopback is exempt only when Config.TrustLoopback says so.
type limiter struct {
	rate, burst           float64 // queries per source; rate <= 0: off
	byteRate, byteBurst   float64 // unproven reply bytes per source; <= 0: off
	global                bucket  // queries over all sources
	globalRate, globalMax float64
	bytes                 bucket // unproven reply bytes over all sources
	bytesRate, bytesMax   float64
	trustLoopback         bool
	max                   int // sources tracked

	sources    map[netip.Addr]*sourceState
	head, tail *sourceState // most and least recently heard from
	evicted    uint64
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

// sourceState is one source's buckets, in the limiter's recency list.
type sourceState struct {
	key        netip.Addr
	queries    bucket
	bytes      bucket
	prev, next *sourceState
}

// defaultMaxSources bounds the limiter's memory (about 150 bytes each).
const defaultMaxSources = 1 << 16

func newLimiter(cfg *Config) limiter {
	return limiter{
		rate: cfg.RateLimit, burst: float64(cfg.RateBurst),
		byteRate: float64(cfg.RateBytes), byteBurst: 2 * float64(cfg.RateBytes),
		globalRate: cfg.GlobalRate, globalMax: 2 * cfg.GlobalRate,
		bytesRate: float64(cfg.GlobalBytes), bytesMax: 2 * float64(cfg.GlobalBytes),
		trustLoopback: cfg.TrustLoopback,
		max:           defaultMaxSources,
	}
}

// sourceKey groups an address with the others of its host: an IPv4
// address alone, an IPv6 address with the rest of its /64, which one
// customer usually gets whole.
func sourceKey(a netip.Addr) netip.Addr {
	a = a.Unmap()
	if a.Is4() {
		return a
	}
	p, _ := a.WithZone("").Prefix(64)
	return p.Addr()
}

func (l *limiter) exempt(a netip.Addr) bool {
	return l.trustLoopback && a.Unmap().IsLoopback()
}

// allowQuery reports whether a query from ip may be answered (dropQuota
// on its own source's limit, dropGlobal on the node's).
func (l *limiter) allowQuery(now time.Time, ip netip.Addr) (bool, DropReason) {
	if l.exempt(ip) {
		return true, 0
	}
	if l.rate > 0 {
		s := l.source(now, ip)
		if !s.queries.take(now, 1, l.rate, l.burst) {
			return false, DropRateLimit
		}
	}
	if !l.global.take(now, 1, l.globalRate, l.globalMax) {
		return false, DropGlobalRate
	}
	return true, 0
}

// spend charges n bytes of a reply to an unproven source against the
// source's byte budget and the node's; false means the reply is dropped.
func (l *limiter) spend(now time.Time, ip netip.Addr, n int) (bool, DropReason) {
	if l.exempt(ip) {
		return true, 0
	}
	if l.byteRate > 0 {
		s := l.source(now, ip)
		if !s.bytes.take(now, float64(n), l.byteRate, l.byteBurst) {
			return false, DropByteBudget
		}
	}
	if !l.bytes.take(now, float64(n), l.bytesRate, l.bytesMax) {
		return false, DropGlobalBytes
	}
	return true, 0
}

// source returns ip's entry, made most recent; a new one evicts the least
// recent when the table is full.
func (l *limiter) source(now time.Time, ip netip.Addr) *sourceState {
	k := sourceKey(ip)
	if l.sources == nil {
		l.sources = make(map[netip.Addr]*sourceState)
	}
	s := l.sources[k]
	if s == nil {
		if len(l.sources) >= l.max && l.tail != nil {
			old := l.tail
			l.unlink(old)
			delete(l.sources, old.key)
			l.evicted++
			s = old // reuse: a flood of new sources allocates nothing
			*s = sourceState{}
		} else {
			s = new(sourceState)
		}
		s.key = k
		l.sources[k] = s
	} else {
		l.unlink(s)
	}
	s.next = l.head
	if l.head != nil {
		l.head.prev = s
	}
	l.head = s
	if l.tail == nil {
		l.tail = s
	}
	return s
}

func (l *limiter) unlink(s *sourceState) {
	if s.prev != nil {
		s.prev.next = s.next
	} else {
		l.head = s.next
	}
	if s.next != nil {
		s.next.prev = s.prev
	} else {
		l.tail = s.prev
	}
	s.prev, s.next = nil, nil
}

// sweep forgets sources idle long enough for every bucket to refill: they
// hold no state a fresh entry would not. The oldest are at the tail.
func (l *limiter) sweep(now time.Time) {
	idle := time.Minute
	if l.rate > 0 {
		idle = max(idle, time.Duration(l.burst/l.rate*float64(time.Second)))
	}
	for s := l.tail; s != nil && now.Sub(maxTime(s.queries.last, s.bytes.last)) >= idle; s = l.tail {
		l.unlink(s)
		delete(l.sources, s.key)
	}
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
