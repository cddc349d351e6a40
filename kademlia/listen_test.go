package kademlia

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/guard"

	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/krpc"
	"github.com/dhtkit/dhtkit/replica"
	"github.com/dhtkit/dhtkit/store"
)

// registered reports whether tn keeps a live dk_listen registration of
// addr for key.
func registered(n *testNet, tn *testNode, key string, addr netip.AddrPort) bool {
	return tn.e.listeners.Registered(n.Now, key, addr)
}

// outsiders returns two nodes that are not among key's replicas.
func outsiders(n *testNet, key string) (a, b *testNode) {
	reps := closestLive(n, key, 3)
	var out []*testNode
	for _, tn := range n.Order {
		if !tn.down && !slices.Contains(reps, tn) {
			out = append(out, tn)
		}
	}
	return out[0], out[len(out)-1]
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

func TestKVListenHearsWrites(t *testing.T) {
	n := newTestNet(t, 31)
	n.build(20, Config{})
	const key = "watched"
	l, w := outsiders(n, key)
	op := listen(n, l, key)
	for _, r := range closestLive(n, key, 3) {
		if !registered(n, r, key, l.addr) {
			t.Fatalf("replica %v holds no registration of the listener", r.addr)
		}
	}
	if evs := eventsOf(l, op); len(evs) != 0 {
		t.Fatalf("%d events before any write", len(evs))
	}

	// Each write reaches the listener within one round trip of the put's
	// acknowledgement, once, although three replicas send it.
	seen := 0
	for _, tc := range []struct {
		name string
		put  KVPut
	}{
		{"put", KVPut{Key: key, Value: []byte("one")}},
		{"overwrite", KVPut{Key: key, Value: []byte("two")}},
		{"delete", KVPut{Key: key, Delete: true}},
	} {
		r := n.do(w, tc.put)
		if r.Err != nil {
			t.Fatalf("%s: %v", tc.name, r.Err)
		}
		done := n.Now
		if !n.RunUntil(time.Second, func() bool { return len(eventsOf(l, op)) > seen }) {
			t.Fatalf("%s: the listener heard nothing within a second", tc.name)
		}
		ev := eventsOf(l, op)[seen]
		if lag := ev.at.Sub(done); lag > 2*n.Latency {
			t.Errorf("%s: heard %v after the put returned, want within one round trip (%v)", tc.name, lag, 2*n.Latency)
		}
		if ev.Record.Version != r.Version || ev.Record.Deleted != tc.put.Delete || string(ev.Record.Value) != string(tc.put.Value) {
			t.Errorf("%s: event %+v, want version %v of %q", tc.name, ev.Record, r.Version, tc.put.Value)
		}
		n.RunUntil(time.Second, func() bool { return false })
		if got := len(eventsOf(l, op)); got != seen+1 {
			t.Errorf("%s: %d events, want exactly one per version", tc.name, got-seen)
		}
		seen = len(eventsOf(l, op))
	}

	// Writes to other keys are not reported.
	for i := range 10 {
		if r := n.do(w, KVPut{Key: fmt.Sprintf("other-%d", i), Value: []byte("x")}); r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	n.RunUntil(time.Second, func() bool { return false })
	if got := len(eventsOf(l, op)); got != seen {
		t.Errorf("%d events for writes of other keys", got-seen)
	}

	// A notification from a node the listener did not register with is
	// refused and reported to nobody.
	forged := krpc.Msg{Y: krpc.Query, Q: krpc.MethodNotify, T: []byte("zz"), Net: []byte("test")}
	forged.A.Has = krpc.HasID | krpc.HasX
	forged.A.ID = id.FromString("forger")
	forged.A.X = replica.AppendNotify(nil, store.Record{Key: key, Value: []byte("lie"), Version: store.Version{Time: 1 << 62}})
	back := n.Inject(l, netip.MustParseAddrPort("127.9.9.9:6881"), forged.Append(nil))
	if len(back) != 1 || !strings.Contains(string(back[0]), "i253e") {
		t.Errorf("forged dk_notify answered %q, want error 253", back)
	}
	if got := len(eventsOf(l, op)); got != seen {
		t.Errorf("a forged notification was reported")
	}

	l.e.Cancel(n.Now, op)
	n.Flush(l)
	if r, ok := l.results[op]; !ok || !errors.Is(r.Err, ErrCanceled) {
		t.Errorf("cancel: result %+v", r)
	}
	if got := len(l.e.listenOps); got != 0 {
		t.Errorf("%d listeners left after cancel", got)
	}
}

func TestKVListenReportsCurrentValueAndBadKeys(t *testing.T) {
	n := newTestNet(t, 32)
	n.build(10, Config{})
	if r := n.do(n.Order[1], KVPut{Key: "k", Value: []byte("there")}); r.Err != nil {
		t.Fatal(r.Err)
	}
	l := n.Order[8]
	op := listen(n, l, "k")
	if evs := eventsOf(l, op); len(evs) != 1 || string(evs[0].Record.Value) != "there" {
		t.Fatalf("events %+v, want the current value once", evs)
	}
	for _, tc := range []struct {
		key  string
		want error
	}{
		{"", ErrNoKey},
		{strings.Repeat("k", store.DefaultMaxKeySize+1), store.ErrTooLarge},
	} {
		if r := n.do(l, KVListen{Key: tc.key}); !errors.Is(r.Err, tc.want) {
			t.Errorf("listen to a %d-byte key: %v, want %v", len(tc.key), r.Err, tc.want)
		}
	}
	// Alone, as asked, a node is its own replica set: it hears its own
	// writes.
	solo := newTestNet(t, 33)
	s := solo.add(Config{Alone: true})
	op = listen(solo, s, "mine")
	if r := solo.do(s, KVPut{Key: "mine", Value: []byte("v")}); r.Err != nil {
		t.Fatal(r.Err)
	}
	if evs := eventsOf(s, op); len(evs) != 1 || string(evs[0].Record.Value) != "v" {
		t.Errorf("alone: events %+v, want the write", evs)
	}
}

func TestKVListenSurvivesReplicaLoss(t *testing.T) {
	n := newTestNet(t, 34)
	n.build(20, Config{QueryTimeout: time.Second})
	const key = "churn"
	l, w := outsiders(n, key)
	op := listen(n, l, key)
	// Two of the three replicas die: the next refresh must register with
	// the nodes that replace them.
	old := closestLive(n, key, 3)
	old[0].down, old[1].down = true, true
	n.RunUntil(DefaultConfig().ListenRefresh+10*time.Second, func() bool { return false })
	for _, r := range closestLive(n, key, 3) {
		if !registered(n, r, key, l.addr) {
			t.Errorf("live replica %v holds no registration after the refresh", r.addr)
		}
	}
	r := n.do(w, KVPut{Key: key, Value: []byte("after")})
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	if !n.RunUntil(time.Second, func() bool { return len(eventsOf(l, op)) > 0 }) {
		t.Fatal("the listener missed a write after its replicas changed")
	}
	if ev := eventsOf(l, op)[0]; ev.Record.Version != r.Version {
		t.Errorf("event version %v, want %v", ev.Record.Version, r.Version)
	}
}

func TestKVListenRegistrationsExpire(t *testing.T) {
	n := newTestNet(t, 35)
	n.build(12, Config{})
	const key = "fleeting"
	l, w := outsiders(n, key)
	listen(n, l, key)
	reps := closestLive(n, key, 3)
	// The listener vanishes without a word: its registrations lapse
	// after ListenTTL and nothing is sent to it any more.
	l.down = true
	n.RunUntil(ListenTTL+time.Minute, func() bool { return false })
	notifies := func() (sum uint64) {
		for _, r := range reps {
			sum += r.e.Stats().QueriesOut[krpc.MethodNotify]
		}
		return sum
	}
	for _, r := range reps {
		if registered(n, r, key, l.addr) || r.e.Listeners() != 0 {
			t.Errorf("replica %v keeps %d registrations past their expiry", r.addr, r.e.Listeners())
		}
	}
	before := notifies()
	if r := n.do(w, KVPut{Key: key, Value: []byte("x")}); r.Err != nil {
		t.Fatal(r.Err)
	}
	n.RunUntil(time.Second, func() bool { return false })
	if got := notifies() - before; got != 0 {
		t.Errorf("%d dk_notify sent to an expired listener", got)
	}

	// A listener that stopped refuses the next notification, and the
	// replicas drop it at once rather than at expiry.
	l2 := w
	op := listen(n, l2, key)
	l2.e.Cancel(n.Now, op)
	n.Flush(l2)
	if r := n.do(reps[2], KVPut{Key: key, Value: []byte("y")}); r.Err != nil {
		t.Fatal(r.Err)
	}
	n.RunUntil(time.Second, func() bool { return false })
	for _, r := range closestLive(n, key, 3) {
		if registered(n, r, key, l2.addr) {
			t.Errorf("replica %v still holds a canceled listener", r.addr)
		}
	}
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

// A new listener learns every value its key holds, not only the ones the
// first answer to dk_listen has room for: 64 values of 1 KiB are five
// datagrams' worth.
func TestKVListenGetsEveryValue(t *testing.T) {
	n := newTestNet(t, 38)
	n.build(12, Config{})
	const key = "crowded"
	l, w := outsiders(n, key)
	want := make(map[string]bool)
	for i := range store.MaxValuesPerKey {
		rk := store.ValueKey(key, store.ValueID(i+1))
		if r := n.do(w, KVPut{Key: rk, Value: []byte(strings.Repeat(fmt.Sprint(i%10), 1024))}); r.Err != nil {
			t.Fatalf("put %d: %v", i, r.Err)
		}
		want[rk] = true
	}
	op := listen(n, l, key)
	n.RunUntil(5*time.Second, func() bool { return false })
	got := make(map[string]int)
	for _, ev := range eventsOf(l, op) {
		got[ev.Record.Key]++
		if len(ev.Record.Value) != 1024 {
			t.Errorf("%q: %d bytes, want 1024", ev.Record.Key, len(ev.Record.Value))
		}
	}
	for rk := range want {
		if got[rk] != 1 {
			t.Errorf("value %q reported %d times, want once", rk, got[rk])
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d values reported, want %d", len(got), len(want))
	}
	// A key that names a value is refused: a listener hears every value
	// of a key.
	if r := n.do(l, KVListen{Key: store.ValueKey(key, 7)}); !errors.Is(r.Err, ErrValueKey) {
		t.Errorf("listen to a value's record key: %v, want ErrValueKey", r.Err)
	}
}
