package kademlia

import (
	"crypto/sha1"
	"crypto/subtle"
	"net/netip"
	"time"
)

// tokenLen is the length of the announce tokens we hand out. Eight bytes
// of a keyed hash are far beyond guessing within a token's 10-minute life.
const tokenLen = 8

// tokens issues and checks get_peers tokens (BEP 5): a token is a keyed
// hash of the requester's IP under a secret that rotates every period; the
// previous secret is still accepted, so a token lives one to two periods
// and only ever works for the IP it was given to.
type tokens struct {
	cur, prev [20]byte
	rotated   time.Time
	period    time.Duration
}

func (t *tokens) init(now time.Time, period time.Duration, secret func([]byte)) {
	t.period = period
	secret(t.cur[:])
	secret(t.prev[:])
	t.rotated = now
}

// maybeRotate moves to a new secret once a period has passed.
func (t *tokens) maybeRotate(now time.Time, secret func([]byte)) {
	if now.Sub(t.rotated) < t.period {
		return
	}
	t.prev = t.cur
	secret(t.cur[:])
	t.rotated = now
}

func (t *tokens) next() time.Time { return t.rotated.Add(t.period) }

func tokenFor(secret *[20]byte, ip netip.Addr, dst []byte) []byte {
	var buf [20 + 16]byte
	copy(buf[:20], secret[:])
	a := ip.Unmap().As16()
	copy(buf[20:], a[:])
	sum := sha1.Sum(buf[:])
	return append(dst, sum[:tokenLen]...)
}

// issue appends the current token for ip to dst.
func (t *tokens) issue(ip netip.Addr, dst []byte) []byte { return tokenFor(&t.cur, ip, dst) }

// valid reports whether tok was issued to ip under the current or the
// previous secret.
func (t *tokens) valid(ip netip.Addr, tok []byte) bool {
	if len(tok) != tokenLen {
		return false
	}
	var buf [tokenLen]byte
	if subtle.ConstantTimeCompare(tokenFor(&t.cur, ip, buf[:0]), tok) == 1 {
		return true
	}
	return subtle.ConstantTimeCompare(tokenFor(&t.prev, ip, buf[:0]), tok) == 1
}
