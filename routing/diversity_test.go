package routing

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/id"
)

// TestDiversity fills one bucket from a table whose first bucket takes
// every id that differs from self in the first bit, and counts what each
// bound lets in.
func TestDiversity(t *testing.T) {
	var self id.ID // ids with the first bit set all fall in bucket 0
	far := func(i int) id.ID {
		x := id.FromString(fmt.Sprint("node", i))
		x[0] |= 0x80
		return x
	}
	for _, tc := range []struct {
		name string
		div  Diversity
		addr func(i int) netip.AddrPort
		want int // contacts and replacements admitted of 16
	}{
		{"off: one IP, many ports", Diversity{}, func(i int) netip.AddrPort {
			return netip.AddrPortFrom(netip.MustParseAddr("198.51.100.7"), uint16(1000+i))
		}, 16},
		{"one IP, many ports", Diversity{PerIP: 1, PerPrefix: 2}, func(i int) netip.AddrPort {
			return netip.AddrPortFrom(netip.MustParseAddr("198.51.100.7"), uint16(1000+i))
		}, 1},
		{"one /24, many IPs", Diversity{PerIP: 1, PerPrefix: 2}, func(i int) netip.AddrPort {
			return netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}), 6881)
		}, 2},
		{"many /24s", Diversity{PerIP: 1, PerPrefix: 2}, func(i int) netip.AddrPort {
			return netip.AddrPortFrom(netip.AddrFrom4([4]byte{45, byte(i), 0, 1}), 6881)
		}, 16},
		{"one /64, many IPs", Diversity{PerIP: 1, PerPrefix: 2}, func(i int) netip.AddrPort {
			return netip.AddrPortFrom(netip.AddrFrom16([16]byte{0x20, 1, 0xd, 0xb8, 0, 0, 0, 1, 15: byte(i)}), 6881)
		}, 2},
		{"IPv4 and IPv6 apart", Diversity{PerIP: 1, PerPrefix: 1}, func(i int) netip.AddrPort {
			if i%2 == 0 {
				return netip.AddrPortFrom(netip.MustParseAddr("198.51.100.7"), uint16(1000+i))
			}
			return netip.AddrPortFrom(netip.MustParseAddr("2001:db8::7"), uint16(1000+i))
		}, 2},
		{"private addresses exempt", Diversity{PerIP: 1, PerPrefix: 2}, func(i int) netip.AddrPort {
			return netip.AddrPortFrom(netip.MustParseAddr("10.0.0.7"), uint16(1000+i))
		}, 16},
		{"loopback exempt", Diversity{PerIP: 1, PerPrefix: 2}, func(i int) netip.AddrPort {
			return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(1000+i))
		}, 16},
		{"local bounded when asked", Diversity{PerIP: 1, PerPrefix: 2, Local: true}, func(i int) netip.AddrPort {
			return netip.AddrPortFrom(netip.MustParseAddr("10.0.0.7"), uint16(1000+i))
		}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tb := NewBEP5(self, 8, seeded(1))
			tb.SetDiversity(tc.div)
			for i := range 16 {
				tb.Observe(t0, far(i), tc.addr(i), Responded, time.Millisecond)
			}
			checkBEP5(t, tb)
			got := len(tb.buckets[0].contacts) + len(tb.buckets[0].repl)
			if got != tc.want {
				t.Errorf("%d admitted, want %d", got, tc.want)
			}
			if rejected := int(tb.DiversityRejects()); rejected != 16-tc.want && tc.want < 8 {
				t.Errorf("%d rejects counted, want %d", rejected, 16-tc.want)
			}
			// A known node is seen again without counting against itself.
			tb.Observe(at(time.Second), far(0), tc.addr(0), Responded, time.Millisecond)
			if _, ok := tb.Get(far(0)); !ok {
				t.Error("the first node was lost on a second answer")
			}
		})
	}
}
