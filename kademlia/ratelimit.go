package kademlia

import (
	"net/netip"
	"time"
)

// rateLimiter is a token bucket per source IP. It bounds what one host can
// make us do (and, through our replies, what we send to a spoofed victim).
// Idle buckets are forgotten so the map cannot grow without bound.
type rateLimiter struct {
	rate    float64 // tokens per second; <= 0 disables the limit
	burst   float64
	buckets map[netip.Addr]*ipBucket
	swept   time.Time
}

type ipBucket struct {
	tokens float64
	last   time.Time
}

// maxTrackedIPs caps the limiter's memory; past it, idle entries are swept
// at once and, if that is not enough, new IPs share no state (they pass).
const maxTrackedIPs = 1 << 16

func (r *rateLimiter) allow(now time.Time, ip netip.Addr) bool {
	// Loopback traffic comes from this machine: a local cluster or a
	// test, whose nodes all share 127.0.0.1.
	if r.rate <= 0 || ip.IsLoopback() {
		return true
	}
	if r.buckets == nil {
		r.buckets = make(map[netip.Addr]*ipBucket)
	}
	b := r.buckets[ip]
	if b == nil {
		if len(r.buckets) >= maxTrackedIPs {
			r.sweep(now)
			if len(r.buckets) >= maxTrackedIPs {
				return true
			}
		}
		b = &ipBucket{tokens: r.burst, last: now}
		r.buckets[ip] = b
	}
	b.tokens += now.Sub(b.last).Seconds() * r.rate
	if b.tokens > r.burst {
		b.tokens = r.burst
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// sweep forgets buckets that have refilled completely: they hold no state
// that a fresh bucket would not.
func (r *rateLimiter) sweep(now time.Time) {
	r.swept = now
	full := time.Duration(r.burst / r.rate * float64(time.Second))
	for ip, b := range r.buckets {
		if now.Sub(b.last) >= full {
			delete(r.buckets, ip)
		}
	}
}
