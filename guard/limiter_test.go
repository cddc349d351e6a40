package guard

import (
	"net/netip"
	"testing"
	"time"
)

// publicIP is an address no test treats as local (RFC 5737).
var publicIP = netip.MustParseAddr("203.0.113.1")

// TestReply is the rule every reply of both engines passes: proven and
// exempt sources pass; dhtkit's own methods stay within 3× of the query
// for the unproven; every unproven reply spends the byte budgets.
func TestReply(t *testing.T) {
	public, loop := publicIP, netip.MustParseAddr("127.0.0.1")
	cases := []struct {
		name           string
		cfg            Config
		ip             netip.Addr
		proven, own    bool
		in, out, times int
		want           DropReason // of the last reply
	}{
		{"proven, any size", Config{}, public, true, true, 50, 10000, 1, 0},
		{"own method within 3×", Config{}, public, false, true, 100, 300, 1, 0},
		{"own method over 3×", Config{}, public, false, true, 100, 301, 1, DropUnproven},
		{"standard method over 3×, within budget", Config{}, public, false, false, 100, 1200, 1, 0},
		{"source budget spent", Config{RateBytes: 1000}, public, false, false, 100, 600, 4, DropByteBudget},
		{"node budget spent", Config{RateBytes: -1, GlobalBytes: 1000}, public, false, false, 100, 600, 4, DropGlobalBytes},
		{"loopback, not trusted", Config{}, loop, false, true, 100, 301, 1, DropUnproven},
		{"loopback, trusted", Config{TrustLoopback: true}, loop, false, true, 100, 10000, 1, 0},
		{"budgets off", Off(), public, false, false, 100, 1 << 20, 10, 0},
	}
	now := time.Unix(0, 0)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l := NewLimiter(c.cfg)
			var got DropReason
			for range c.times {
				got = l.Reply(now, c.ip, c.proven, c.own, c.in, c.out)
			}
			if got != c.want {
				t.Fatalf("got %v, want %v", got, c.want)
			}
		})
	}
}

// TestAdmit: past the node's rate only proven sources get through, and a
// source over its own rate never does.
func TestAdmit(t *testing.T) {
	now := time.Unix(0, 0)
	cases := []struct {
		name   string
		cfg    Config
		proven bool
		want   DropReason
	}{
		{"source over its rate", Config{RateLimit: 1, RateBurst: 1, GlobalRate: -1}, true, DropRateLimit},
		{"node over its rate, unproven", Config{RateLimit: -1, GlobalRate: 0.5}, false, DropGlobalRate},
		{"node over its rate, proven", Config{RateLimit: -1, GlobalRate: 0.5}, true, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l := NewLimiter(c.cfg)
			var got DropReason
			for range 3 {
				got = l.Admit(now, publicIP, func() bool { return c.proven })
			}
			if got != c.want {
				t.Fatalf("got %v, want %v", got, c.want)
			}
		})
	}
}
