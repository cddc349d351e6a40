package chord

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
	"github.com/dhtkit/dhtkit/kademlia"
	"github.com/dhtkit/dhtkit/krpc"
	"github.com/dhtkit/dhtkit/replica"
	"github.com/dhtkit/dhtkit/store"
)

// replicasOf returns the key's three replicas on the true ring.
func replicasOf(n *testNet, key string) []*testNode {
	first := n.trueSuccessor(store.KeyTarget(key))
	out := []*testNode{first}
	for len(out) < 3 {
		out = append(out, n.trueSuccessor(id.AddPow2(out[len(out)-1].e.ID(), 0)))
	}
	return out
}

// outsiders returns two live nodes that are not among key's replicas.
func outsiders(n *testNet, key string) (a, b *testNode) {
	reps := replicasOf(n, key)
	var out []*testNode
	for _, tn := range n.Order {
		if !tn.down && !slices.Contains(reps, tn) {
			out = append(out, tn)
		}
	}
	return out[0], out[len(out)-1]
}

// eventsOf returns the events of op, in order.
func eventsOf(tn *testNode, op kademlia.OpID) []timedEvent {
	var out []timedEvent
	for _, ev := range tn.events {
		if ev.Op == op {
			out = append(out, ev)
		}
	}
	return out
}

// listen starts a KVListen and lets its registrations land.
func listen(n *testNet, tn *testNode, key string) kademlia.OpID {
	op := tn.e.Start(n.Now, kademlia.KVListen{Key: key})
	n.Flush(tn)
	n.Run(5 * time.Second)
	return op
}

// Chord's listeners are pushed each version as Kademlia's are: within one
// round trip of the put, once, although three replicas send it; no
// polling (a listener sends nothing between refreshes).
func TestKVListenHearsWrites(t *testing.T) {
	n := newTestNet(t, 31)
	n.build(20, Config{})
	n.Run(time.Minute)
	const key = "watched"
	l, w := outsiders(n, key)
	op := listen(n, l, key)
	for _, r := range replicasOf(n, key) {
		if !r.e.listen.listeners.Registered(n.Now, key, l.addr) {
			t.Fatalf("replica %v holds no registration of the listener", r.addr)
		}
	}
	if evs := eventsOf(l, op); len(evs) != 0 {
		t.Fatalf("%d events before any write", len(evs))
	}
	seen := 0
	for _, tc := range []struct {
		name string
		put  kademlia.KVPut
	}{
		{"put", kademlia.KVPut{Key: key, Value: []byte("one")}},
		{"overwrite", kademlia.KVPut{Key: key, Value: []byte("two")}},
		{"another value", kademlia.KVPut{Key: store.ValueKey(key, 5), Value: []byte("five")}},
		{"delete", kademlia.KVPut{Key: key, Delete: true}},
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
		if ev.Record.Key != tc.put.Key || ev.Record.Version != r.Version || ev.Record.Deleted != tc.put.Delete || string(ev.Record.Value) != string(tc.put.Value) {
			t.Errorf("%s: event %+v, want version %v of %q", tc.name, ev.Record, r.Version, tc.put.Value)
		}
		n.Run(time.Second)
		if got := len(eventsOf(l, op)); got != seen+1 {
			t.Errorf("%s: %d events, want exactly one per version", tc.name, got-seen)
		}
		seen = len(eventsOf(l, op))
	}
	// Writes to other keys are not reported, and the listener polls
	// nothing: between refreshes it sends no dk_fetch.
	fetches := l.e.Stats().QueriesOut[mFetch]
	for i := range 10 {
		if r := n.do(w, kademlia.KVPut{Key: fmt.Sprintf("other-%d", i), Value: []byte("x")}); r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	n.Run(30 * time.Second)
	if got := len(eventsOf(l, op)); got != seen {
		t.Errorf("%d events for writes of other keys", got-seen)
	}
	if got := l.e.Stats().QueriesOut[mFetch] - fetches; got != 0 {
		t.Errorf("the listener sent %d dk_fetch in 30 s: it polls", got)
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

	// A listener that stopped refuses the next notification, and the
	// replicas drop it at once rather than at expiry.
	l.e.Cancel(n.Now, op)
	n.Flush(l)
	if r, ok := l.results[op]; !ok || !errors.Is(r.Err, kademlia.ErrCanceled) {
		t.Errorf("cancel: result %+v", r)
	}
	if r := n.do(w, kademlia.KVPut{Key: key, Value: []byte("after")}); r.Err != nil {
		t.Fatal(r.Err)
	}
	n.Run(time.Second)
	for _, r := range replicasOf(n, key) {
		if r.e.listen.listeners.Registered(n.Now, key, l.addr) {
			t.Errorf("replica %v still holds a canceled listener", r.addr)
		}
	}
	if got := len(l.e.listen.ops); got != 0 {
		t.Errorf("%d listeners left after cancel", got)
	}
}

// A new listener learns every value of its key, not only the ones the
// first answer to dk_listen has room for; a key naming a value is
// refused.
func TestKVListenGetsEveryValue(t *testing.T) {
	n := newTestNet(t, 32)
	n.build(12, Config{})
	n.Run(time.Minute)
	const key = "crowded"
	l, w := outsiders(n, key)
	want := make(map[string]bool)
	for i := range store.MaxValuesPerKey {
		rk := store.ValueKey(key, store.ValueID(i+1))
		if r := n.do(w, kademlia.KVPut{Key: rk, Value: []byte(strings.Repeat(fmt.Sprint(i%10), 1024))}); r.Err != nil {
			t.Fatalf("put %d: %v", i, r.Err)
		}
		want[rk] = true
	}
	op := listen(n, l, key)
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
	for _, tc := range []struct {
		key  string
		want error
	}{
		{"", kademlia.ErrNoKey},
		{strings.Repeat("k", store.DefaultMaxKeySize+1), store.ErrTooLarge},
		{store.ValueKey(key, 7), kademlia.ErrValueKey},
	} {
		if r := n.do(l, kademlia.KVListen{Key: tc.key}); !errors.Is(r.Err, tc.want) {
			t.Errorf("listen to a %d-byte key: %v, want %v", len(tc.key), r.Err, tc.want)
		}
	}
}

// When replicas die, the next refresh registers with the nodes that take
// over their range; a node alone is its own replica set.
func TestKVListenSurvivesReplicaLoss(t *testing.T) {
	n := newTestNet(t, 34)
	n.build(20, Config{DownFor: 20 * time.Second}) // the dead leave the replica sets before the refresh
	n.Run(time.Minute)
	const key = "churn"
	l, w := outsiders(n, key)
	op := listen(n, l, key)
	old := replicasOf(n, key)
	old[0].down, old[1].down = true, true
	n.Run(DefaultConfig().ListenRefresh + 30*time.Second)
	for _, r := range replicasOf(n, key) {
		if !r.e.listen.listeners.Registered(n.Now, key, l.addr) {
			t.Errorf("live replica %v holds no registration after the refresh", r.addr)
		}
	}
	r := n.do(w, kademlia.KVPut{Key: key, Value: []byte("after")})
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	if !n.RunUntil(time.Second, func() bool { return len(eventsOf(l, op)) > 0 }) {
		t.Fatal("the listener missed a write after its replicas changed")
	}
	if ev := eventsOf(l, op)[0]; ev.Record.Version != r.Version {
		t.Errorf("event version %v, want %v", ev.Record.Version, r.Version)
	}

	solo := newTestNet(t, 35)
	s := solo.add(Config{Alone: true})
	op = listen(solo, s, "mine")
	if r := solo.do(s, kademlia.KVPut{Key: "mine", Value: []byte("v")}); r.Err != nil {
		t.Fatal(r.Err)
	}
	if evs := eventsOf(s, op); len(evs) != 1 || string(evs[0].Record.Value) != "v" {
		t.Errorf("alone: events %+v, want the write", evs)
	}
}

// Registrations are bounded per source, and only a source that proved
// its address registers.
func TestListenFloodIsBounded(t *testing.T) {
	n := newTestNet(t, 36)
	node := n.add(Config{MaxListeners: 500, Guard: guard.Off()}) // floods beyond any rate
	query := func(from netip.AddrPort, key string, token bool) []byte {
		m := krpc.Msg{Y: krpc.Query, Q: krpc.MethodListen, T: []byte("aa"), Net: []byte("test")}
		m.A.Has = krpc.HasID | krpc.HasX
		m.A.ID = id.FromString(from.String())
		m.A.X = replica.AppendListen(nil, key)
		if token {
			m.A.Has |= krpc.HasToken
			m.A.Token = node.e.tokens.Issue(from.Addr(), nil)
		}
		return m.Append(nil)
	}
	attacker := netip.MustParseAddrPort("10.66.0.1:4000")
	if back := n.Inject(node, attacker, query(attacker, "k", false)); node.e.Listeners() != 0 || len(back) != 1 || !strings.Contains(string(back[0]), "5:again") {
		t.Fatalf("dk_listen without a token: %d registered, answered %q, want a request for a token", node.e.Listeners(), back)
	}
	for i := range 2000 {
		from := netip.AddrPortFrom(attacker.Addr(), uint16(1000+i))
		n.Inject(node, from, query(from, fmt.Sprint("key-", i), true))
	}
	if got := node.e.Listeners(); got != replica.ListenersPerSource {
		t.Errorf("%d registrations from one address, want %d", got, replica.ListenersPerSource)
	}
	if got := node.e.Stats().Drops[guard.DropListenerEvicted]; got != 2000-replica.ListenersPerSource {
		t.Errorf("%d evictions counted, want %d", got, 2000-replica.ListenersPerSource)
	}
	honest := netip.MustParseAddrPort("10.70.0.1:4000")
	if back := n.Inject(node, honest, query(honest, "key-0", true)); len(back) != 1 || strings.Contains(string(back[0]), "1:y1:e") {
		t.Fatalf("an honest dk_listen after the flood got %q", back)
	}
	if !node.e.listen.listeners.Registered(n.Now, "key-0", honest) {
		t.Error("the honest listener is not registered")
	}
	bad := krpc.Msg{Y: krpc.Query, Q: krpc.MethodListen, T: []byte("ab"), Net: []byte("test")}
	bad.A.Has = krpc.HasID | krpc.HasX | krpc.HasToken
	bad.A.ID = id.FromString("x")
	bad.A.Token = node.e.tokens.Issue(honest.Addr(), nil)
	bad.A.X = replica.AppendListen(nil, store.ValueKey("k", 3))
	if back := n.Inject(node, honest, bad.Append(nil)); len(back) != 1 || !strings.Contains(string(back[0]), "i203e") {
		t.Errorf("dk_listen of a value's record key answered %q, want error 203", back)
	}
}
