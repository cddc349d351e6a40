package kademlia

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/guard"
	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/krpc"
	"github.com/dhtkit/dhtkit/replica"
)

// registered reports whether tn keeps a live dk_listen registration of
// addr for key.
func registered(n *testNet, tn *testNode, key string, addr netip.AddrPort) bool {
	return tn.e.listeners.Registered(n.Now, key, addr)
}

// eventsOf returns the events of op, in order.
func eventsOf(tn *testNode, op OpID) []timedEvent {
	var out []timedEvent
	for _, ev := range tn.events {
		if ev.Op == op {
			out = append(out, ev)
		}
	}
	return out
}

// listen starts a KVListen and lets its registrations land.
func listen(n *testNet, tn *testNode, key string) OpID {
	op := tn.e.Start(n.Now, KVListen{Key: key})
	n.Flush(tn)
	n.RunUntil(5*time.Second, func() bool { return false })
	return op
}

func TestListenFloodIsBounded(t *testing.T) {
	n := newTestNet(t, 36)
	node := n.add(Config{TrustLoopback: true, MaxListeners: 500}) // floods from 127.x, beyond any rate
	query := func(from netip.AddrPort, key string, token bool) []byte {
		m := krpc.Msg{Y: krpc.Query, Q: krpc.MethodListen, T: []byte("aa"), Net: []byte("test")}
		m.A.Has = krpc.HasID | krpc.HasX
		m.A.ID = id.FromString(from.String())
		m.A.X = encodeX(nil, map[string]any{"k": key})
		if token {
			m.A.Has |= krpc.HasToken
			m.A.Token = node.e.tokens.Issue(from.Addr(), nil)
		}
		return m.Append(nil)
	}
	attacker := netip.MustParseAddrPort("127.66.0.1:4000")
	if back := n.Inject(node, attacker, query(attacker, "k", false)); len(back) != 1 || !strings.Contains(string(back[0]), "i203e") {
		t.Fatalf("dk_listen without a token answered %q, want error 203", back)
	}
	honest := netip.MustParseAddrPort("127.70.0.1:4000")
	for _, tc := range []struct {
		name    string
		flood   func(i int) (netip.AddrPort, string)
		limit   int
		survive bool // the honest registration outlives a second flood (else it may not: many addresses look like many honest listeners)
	}{
		{"one address, many keys", func(i int) (netip.AddrPort, string) { return attacker, fmt.Sprint("key-", i) }, replica.ListenersPerSource, true},
		{"one address, many ports", func(i int) (netip.AddrPort, string) {
			return netip.AddrPortFrom(attacker.Addr(), uint16(1000+i)), fmt.Sprint("key-", i)
		}, replica.ListenersPerSource, true},
		{"one key, many ports", func(i int) (netip.AddrPort, string) {
			return netip.AddrPortFrom(attacker.Addr(), uint16(1000+i)), "hot"
		}, replica.ListenersPerKey, true},
		{"one key, many addresses", func(i int) (netip.AddrPort, string) {
			return netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 67, byte(i >> 8), byte(i)}), 4000), "hot"
		}, replica.ListenersPerKey, false},
		{"40 addresses, many keys", func(i int) (netip.AddrPort, string) {
			return netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 71, 0, byte(i % 40)}), 4000), fmt.Sprint("forty-", i)
		}, 500, true},
		{"many addresses, many keys", func(i int) (netip.AddrPort, string) {
			return netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 68, byte(i >> 8), byte(i)}), 4000), fmt.Sprint("many-", i)
		}, 500, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			node.e.listeners = replica.Listeners{}
			before := node.e.Stats().Drops[guard.DropListenerEvicted]
			flood := func(from, to int) (refused int) {
				for i := from; i < to; i++ {
					src, key := tc.flood(i)
					back := n.Inject(node, src, query(src, key, true))
					if len(back) != 1 || strings.Contains(string(back[0]), "1:y1:e") {
						refused++
					}
				}
				return refused
			}
			refused := flood(0, 2000)
			lt := &node.e.listeners
			keys := lt.Count()
			evicted := node.e.Stats().Drops[guard.DropListenerEvicted] - before
			if lt.Len() != tc.limit || keys != lt.Len() || refused != 0 || evicted != uint64(2000-tc.limit) {
				t.Errorf("%d registrations (%d listed), %d refused, %d evicted; want %d kept, none refused, the rest evicted",
					lt.Len(), keys, refused, evicted, tc.limit)
			}
			// Renewing a registration does not count twice.
			from, key := tc.flood(1999)
			n.Inject(node, from, query(from, key, true))
			if lt.Len() != tc.limit {
				t.Errorf("a renewal changed the count to %d", lt.Len())
			}
			// An honest listener gets in at once, and a flood from few
			// addresses only displaces the flood.
			_, hk := tc.flood(0)
			if back := n.Inject(node, honest, query(honest, hk, true)); len(back) != 1 || strings.Contains(string(back[0]), "1:y1:e") {
				t.Fatalf("an honest dk_listen after the flood got %q", back)
			}
			flood(2000, 4000)
			if tc.survive && !registered(n, node, hk, honest) {
				t.Error("a flood from one address evicted the honest registration")
			}
		})
	}
	// Expired registrations go at the next maintenance.
	n.Now = n.Now.Add(ListenTTL)
	node.e.Tick(n.Now)
	from := netip.MustParseAddrPort("127.69.0.1:4000")
	if back := n.Inject(node, from, query(from, "late", true)); len(back) != 1 || strings.Contains(string(back[0]), "1:y1:e") {
		t.Errorf("a registration after the others expired was refused: %q", back)
	}
	if node.e.Listeners() != 1 {
		t.Errorf("%d registrations after expiry, want 1", node.e.Listeners())
	}
}

// A read-only node (BEP 43) answers no query, but it takes the
// notifications it asked for.
func TestKVListenReadOnly(t *testing.T) {
	n := newTestNet(t, 37)
	n.build(10, Config{})
	ro := n.add(Config{ReadOnly: true, Bootstrap: []netip.AddrPort{n.Order[0].addr}})
	n.RunUntil(time.Minute, func() bool { return ro.e.boot.joined })
	op := listen(n, ro, "k")
	r := n.do(n.Order[3], KVPut{Key: "k", Value: []byte("v")})
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	if !n.RunUntil(time.Second, func() bool { return len(eventsOf(ro, op)) > 0 }) {
		t.Fatal("a read-only listener heard nothing")
	}
	if ev := eventsOf(ro, op)[0]; ev.Record.Version != r.Version {
		t.Errorf("event version %v, want %v", ev.Record.Version, r.Version)
	}
}
