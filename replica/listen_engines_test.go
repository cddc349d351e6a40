package replica_test

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/chord"
	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/kademlia"
	"github.com/dhtkit/dhtkit/krpc"
	"github.com/dhtkit/dhtkit/replica"
	"github.com/dhtkit/dhtkit/store"
)

// TestEnginesListenSensors is issue 12's sensor must-show on both
// engines, without sockets: 3 sensors put 5 readings each to one key,
// concurrently and back to back; every listener hears all 15 versions,
// pushed (no listener sends a dk_fetch meanwhile), and a get of every
// value afterwards returns 3, the latest reading of each sensor. Then a
// new listener of a key holding 64 values of 1 KiB, more than the first
// answer to dk_listen has room for, hears every one of them.
func TestEnginesListenSensors(t *testing.T) {
	forEach(t, func(t *testing.T, p protocol) {
		n := newNetwork(t, p, 41)
		n.build(12, nodeConfig{replicas: 3})
		const key, sensors, readings = "pollution_level", 3, 5
		reps := p.replicas(n.live(), store.KeyTarget(key), 3)
		var others []*node
		for _, nd := range n.Order {
			if !slices.Contains(reps, nd) {
				others = append(others, nd)
			}
		}
		listeners, writers := others[:3], others[3:3+sensors]
		ops := make([]kademlia.OpID, len(listeners))
		for i, l := range listeners {
			ops[i] = l.e.Start(n.Now, kademlia.KVListen{Key: key})
			n.Flush(l)
		}
		n.Run(5 * time.Second)
		heard := func(l *node, op kademlia.OpID) map[string]bool {
			seen := map[string]bool{}
			for _, ev := range l.events {
				if ev.Op == op {
					seen[string(ev.Record.Value)] = true
				}
			}
			return seen
		}

		// The sensors: each puts its next reading as soon as its last
		// is acknowledged, all three at once.
		fetches := func() (sum uint64) {
			for _, l := range listeners {
				sum += fetchesOut(l)
			}
			return sum
		}
		before := fetches()
		next := make([]int, sensors)
		pending := make([]kademlia.OpID, sensors)
		put := func(s int) {
			next[s]++
			w := writers[s]
			pending[s] = w.e.Start(n.Now, kademlia.KVPut{Key: store.ValueKey(key, store.ValueID(s+1)), Value: []byte(fmt.Sprintf("sensor %d reading %d", s+1, next[s]))})
			n.Flush(w)
		}
		for s := range sensors {
			put(s)
		}
		done := func() bool {
			all := true
			for s := range sensors {
				r, ok := writers[s].results[pending[s]]
				if !ok {
					all = false
					continue
				}
				if r.Err != nil {
					t.Fatalf("sensor %d reading %d: %v", s+1, next[s], r.Err)
				}
				if next[s] < readings {
					put(s)
					all = false
				}
			}
			return all
		}
		if !n.RunUntil(5*time.Minute, done) {
			t.Fatal("the sensors did not finish within 5 virtual minutes")
		}
		n.Run(2 * time.Second)
		for i, l := range listeners {
			if got := heard(l, ops[i]); len(got) != sensors*readings {
				t.Errorf("listener %d heard %d of the %d readings", i+1, len(got), sensors*readings)
			}
		}
		if got := fetches() - before; got != 0 {
			t.Errorf("the listeners sent %d dk_fetch while the sensors wrote: they poll", got)
		}
		g := n.do(n.Order[0], kademlia.KVGet{Key: key, All: true})
		if g.Err != nil || len(g.Records) != sensors {
			t.Fatalf("get of every value: %d records, %v; want %d", len(g.Records), g.Err, sensors)
		}
		for _, r := range g.Records {
			if !strings.HasSuffix(string(r.Value), fmt.Sprintf("reading %d", readings)) {
				t.Errorf("%q: not the latest reading", r.Value)
			}
		}

		// A new listener of 64 values of 1 KiB hears each once.
		const crowded = "crowded"
		for i := range store.MaxValuesPerKey {
			v := []byte(strings.Repeat(fmt.Sprint(i%10), 1024))
			if r := n.do(writers[0], kademlia.KVPut{Key: store.ValueKey(crowded, store.ValueID(i+1)), Value: v}); r.Err != nil {
				t.Fatalf("put %d: %v", i, r.Err)
			}
		}
		l := listeners[0]
		op := l.e.Start(n.Now, kademlia.KVListen{Key: crowded})
		n.Flush(l)
		n.Run(5 * time.Second)
		count := map[string]int{}
		for _, ev := range l.events {
			if ev.Op == op && len(ev.Record.Value) == 1024 {
				count[ev.Record.Key]++
			}
		}
		if len(count) != store.MaxValuesPerKey {
			t.Errorf("the new listener heard %d of the %d values", len(count), store.MaxValuesPerKey)
		}
		for k, c := range count {
			if c != 1 {
				t.Errorf("%q heard %d times", k, c)
			}
		}
	})
}

// fetchesOut is the number of dk_fetch queries nd sent.
func fetchesOut(nd *node) uint64 { return queriesOut(nd, krpc.MethodFetch) }

// queriesOut is the number of queries of method m nd sent.
func queriesOut(nd *node, m krpc.Method) uint64 {
	switch e := nd.e.(type) {
	case *kademlia.Engine:
		return e.Stats().QueriesOut[m]
	case *chord.Engine:
		st := e.Stats()
		for i, c := range st.QueriesOut {
			if chord.MethodName(i) == m.String() {
				return c
			}
		}
		return 0
	}
	panic("queriesOut: an engine of neither protocol")
}

// listen starts a KVListen at nd and lets its registrations land.
func (n *network) listen(nd *node, key string) kademlia.OpID {
	op := nd.e.Start(n.Now, kademlia.KVListen{Key: key})
	n.Flush(nd)
	n.Run(5 * time.Second)
	return op
}

// eventsOf returns nd's events of op, in order.
func eventsOf(nd *node, op kademlia.OpID) []heard {
	var out []heard
	for _, ev := range nd.events {
		if ev.Op == op {
			out = append(out, ev)
		}
	}
	return out
}

// outsiders returns two live nodes that are not among key's replicas.
func (n *network) outsiders(key string) (a, b *node) {
	reps := n.p.replicas(n.live(), store.KeyTarget(key), 3)
	var out []*node
	for _, nd := range n.live() {
		if !slices.Contains(reps, nd) {
			out = append(out, nd)
		}
	}
	return out[0], out[len(out)-1]
}

// A listener is pushed each version of its key within one round trip of
// the put, once, although three replicas send it, and polls nothing;
// it takes no notification from a node it did not register with, and
// once canceled it refuses the next one, so that the replicas drop it
// at once rather than at expiry. A key naming a value is refused.
func TestEnginesListenHearsWrites(t *testing.T) {
	forEach(t, func(t *testing.T, p protocol) {
		n := newNetwork(t, p, 31)
		n.build(20, nodeConfig{replicas: 3})
		const key = "watched"
		l, w := n.outsiders(key)
		op := n.listen(l, key)
		reps := p.replicas(n.live(), store.KeyTarget(key), 3)
		for _, r := range reps {
			if r.e.Listeners() == 0 {
				t.Fatalf("replica %v holds no registration of the listener", r.addr)
			}
		}
		if evs := eventsOf(l, op); len(evs) != 0 {
			t.Fatalf("%d events before any write", len(evs))
		}
		if got := l.listening[op]; got != 1 {
			t.Fatalf("%d Listening events once registered, want 1", got)
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
		// Writes to other keys are not reported, and between refreshes
		// the listener sends no dk_fetch.
		fetches := fetchesOut(l)
		for i := range 10 {
			if r := n.do(w, kademlia.KVPut{Key: fmt.Sprintf("other-%d", i), Value: []byte("x")}); r.Err != nil {
				t.Fatal(r.Err)
			}
		}
		n.Run(30 * time.Second)
		if got := len(eventsOf(l, op)); got != seen {
			t.Errorf("%d events for writes of other keys", got-seen)
		}
		if got := fetchesOut(l) - fetches; got != 0 {
			t.Errorf("the listener sent %d dk_fetch in 30 s: it polls", got)
		}

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
		if r, ok := l.results[op]; !ok || !errors.Is(r.Err, kademlia.ErrCanceled) {
			t.Errorf("cancel: result %+v", r)
		}
		listens := queriesOut(l, krpc.MethodListen)
		if r := n.do(w, kademlia.KVPut{Key: key, Value: []byte("after")}); r.Err != nil {
			t.Fatal(r.Err)
		}
		n.Run(time.Second)
		for _, r := range reps {
			if r.e.Listeners() != 0 {
				t.Errorf("replica %v still holds a canceled listener", r.addr)
			}
		}
		n.Run(2 * time.Minute) // past the next refresh
		if got := queriesOut(l, krpc.MethodListen) - listens; got != 0 {
			t.Errorf("a canceled listener sent %d dk_listen", got)
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
	})
}

// When replicas die, the next refresh registers with the nodes that take
// over; a node alone is its own replica set and hears its own writes.
func TestEnginesListenSurvivesReplicaLoss(t *testing.T) {
	forEach(t, func(t *testing.T, p protocol) {
		n := newNetwork(t, p, 34)
		n.build(20, nodeConfig{replicas: 3, downFor: 20 * time.Second}) // the dead leave the replica sets before the refresh
		const key = "churn"
		l, w := n.outsiders(key)
		op := n.listen(l, key)
		old := p.replicas(n.live(), store.KeyTarget(key), 3)
		old[0].down, old[1].down = true, true
		n.Run(kademlia.DefaultConfig().ListenRefresh + 30*time.Second)
		for _, r := range p.replicas(n.live(), store.KeyTarget(key), 3) {
			if r.e.Listeners() == 0 {
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

		solo := newNetwork(t, p, 35)
		s := solo.add(nodeConfig{alone: true})
		op = solo.listen(s, "mine")
		if r := solo.do(s, kademlia.KVPut{Key: "mine", Value: []byte("v")}); r.Err != nil {
			t.Fatal(r.Err)
		}
		if evs := eventsOf(s, op); len(evs) != 1 || string(evs[0].Record.Value) != "v" {
			t.Errorf("alone: events %+v, want the write", evs)
		}
	})
}

// A listener that vanishes without a word loses its registrations after
// ListenTTL, and nothing is sent to it any more.
func TestEnginesListenRegistrationsExpire(t *testing.T) {
	forEach(t, func(t *testing.T, p protocol) {
		n := newNetwork(t, p, 36)
		n.build(12, nodeConfig{replicas: 3})
		const key = "fleeting"
		l, w := n.outsiders(key)
		n.listen(l, key)
		reps := p.replicas(n.live(), store.KeyTarget(key), 3)
		l.down = true
		n.Run(replica.ListenTTL + time.Minute)
		notifies := func() (sum uint64) {
			for _, r := range reps {
				sum += queriesOut(r, krpc.MethodNotify)
			}
			return sum
		}
		for _, r := range reps {
			if r.e.Listeners() != 0 {
				t.Errorf("replica %v keeps %d registrations past their expiry", r.addr, r.e.Listeners())
			}
		}
		before := notifies()
		if r := n.do(w, kademlia.KVPut{Key: key, Value: []byte("x")}); r.Err != nil {
			t.Fatal(r.Err)
		}
		n.Run(time.Second)
		if got := notifies() - before; got != 0 {
			t.Errorf("%d dk_notify sent to an expired listener", got)
		}
	})
}

// TestEnginesListenNotifyLost: a dk_notify lost on the way (a busy
// machine's socket buffers overflow) is sent again when it goes
// unanswered, so the listener hears the change within a few seconds, not
// at its next refresh a minute later.
func TestEnginesListenNotifyLost(t *testing.T) {
	forEach(t, func(t *testing.T, p protocol) {
		n := newNetwork(t, p, 33)
		n.build(20, nodeConfig{replicas: 3})
		const key = "watched"
		l, w := n.outsiders(key)
		op := n.listen(l, key)
		lost := map[netip.AddrPort]int{}
		n.Drop = func(from, to netip.AddrPort, data []byte) bool {
			if to == l.addr && bytes.Contains(data, []byte("9:dk_notify")) && lost[from] < replica.NotifyTries-1 {
				lost[from]++
				return true
			}
			return false
		}
		r := n.do(w, kademlia.KVPut{Key: key, Value: []byte("one")})
		if r.Err != nil {
			t.Fatal(r.Err)
		}
		if !n.RunUntil(20*time.Second, func() bool { return len(eventsOf(l, op)) > 0 }) {
			t.Fatalf("the listener heard nothing within 20 s; %d dk_notify lost", len(lost))
		}
		if len(lost) == 0 {
			t.Fatal("no dk_notify was lost: the test tests nothing")
		}
		if ev := eventsOf(l, op)[0]; ev.Record.Version != r.Version {
			t.Errorf("heard version %v, want %v", ev.Record.Version, r.Version)
		}
	})
}
