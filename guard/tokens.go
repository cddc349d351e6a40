package guard

import (
	"crypto/sha1"
	"crypto/subtle"
	"net/netip"
	"time"
)

// TokenLen is the length of the announce tokens we hand out. Eight bytes
// of a keyed hash are far beyond guessing within a token's 10-minute life.
const TokenLen = 8

// Tokens issues and checks write tokens (BEP 5's get_peers tokens, and
// dhtkit's for dk_store and dk_sync on both engines): a token is a keyed
// hash of the requester's IP under a secret that rotates every period; the
// previous secret is still accepted, so a token lives one to two periods
// and only ever works for the IP it was given to.
type Tokens struct {
	cur, prev [20]byte
	rotated   time.Time
	period    time.Duration
}

// Init draws the first secrets; a token lives period to 2×period.
func (t *Tokens) Init(now time.Time, period time.Duration, secret func([]byte)) {
	t.period = period
	secret(t.cur[:])
	secret(t.prev[:])
	t.rotated = now
}

// MaybeRotate moves to a new secret once a period has passed.
func (t *Tokens) MaybeRotate(now time.Time, secret func([]byte)) {
	if now.Sub(t.rotated) < t.period {
		return
	}
	t.prev = t.cur
	secret(t.cur[:])
	t.rotated = now
}

// Next is when the secret rotates next.
func (t *Tokens) Next() time.Time { return t.rotated.Add(t.period) }

func tokenFor(secret *[20]byte, ip netip.Addr, dst []byte) []byte {
	var buf [20 + 16]byte
	copy(buf[:20], secret[:])
	a := ip.Unmap().As16()
	copy(buf[20:], a[:])
	sum := sha1.Sum(buf[:])
	return append(dst, sum[:TokenLen]...)
}

// Issue appends the current token for ip to dst.
func (t *Tokens) Issue(ip netip.Addr, dst []byte) []byte { return tokenFor(&t.cur, ip, dst) }

// Valid reports whether tok was issued to ip under the current or the
// previous secret.
func (t *Tokens) Valid(ip netip.Addr, tok []byte) bool {
	if len(tok) != TokenLen {
		return false
	}
	var buf [TokenLen]byte
	if subtle.ConstantTimeCompare(tokenFor(&t.cur, ip, buf[:0]), tok) == 1 {
		return true
	}
	return subtle.ConstantTimeCompare(tokenFor(&t.prev, ip, buf[:0]), tok) == 1
}
