package kademlia

import (
	"bytes"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/internal/enginetest"
	"github.com/dhtkit/dhtkit/store"
)

// holders returns the nodes whose store holds key (tombstones included).
func holders(n *testNet, key string) []*testNode {
	var out []*testNode
	for _, tn := range n.Order {
		if tn.e.cfg.Store == nil {
			continue
		}
		if _, ok, _ := tn.e.cfg.Store.Get(key); ok {
			out = append(out, tn)
		}
	}
	return out
}

// closestLive returns the k live nodes closest to key's target.
func closestLive(n *testNet, key string, k int) []*testNode {
	var live []*testNode
	for _, tn := range n.Order {
		if !tn.down {
			live = append(live, tn)
		}
	}
	t := id.FromString(key)
	slices.SortFunc(live, func(a, b *testNode) int { return id.CompareDistance(t, a.e.ID(), b.e.ID()) })
	return live[:k]
}

func TestKVPutGetDelete(t *testing.T) {
	n := newTestNet(t, 21)
	n.build(20, Config{})
	a, b := n.Order[2], n.Order[15]
	r := n.do(a, KVPut{Key: "greeting", Value: []byte("hello")})
	if r.Err != nil || r.Acks < 2 {
		t.Fatalf("put: acks %d, err %v", r.Acks, r.Err)
	}
	// Let the remaining replica's acknowledgement land.
	n.RunUntil(time.Second, func() bool { return false })
	if got, want := holders(n, "greeting"), closestLive(n, "greeting", 3); !enginetest.SameSet(got, want) {
		t.Errorf("the value is on %d nodes, want exactly the 3 closest", len(got))
	}
	g := n.do(b, KVGet{Key: "greeting"})
	if g.Err != nil || g.Record == nil || string(g.Record.Value) != "hello" || g.Partial {
		t.Fatalf("get: %+v, err %v", g.Record, g.Err)
	}
	if g.Version != r.Version {
		t.Errorf("get returned version %v, put wrote %v", g.Version, r.Version)
	}
	if len(g.Holders) != 3 {
		t.Errorf("get reported %d holders, want 3", len(g.Holders))
	}

	r2 := n.do(b, KVPut{Key: "greeting", Value: []byte("bonjour")})
	if r2.Err != nil || !r2.Version.Newer(r.Version) {
		t.Fatalf("overwrite: version %v after %v, err %v", r2.Version, r.Version, r2.Err)
	}
	if g := n.do(a, KVGet{Key: "greeting"}); g.Err != nil || string(g.Record.Value) != "bonjour" {
		t.Fatalf("get after overwrite: %v", g.Err)
	}
	if d := n.do(a, KVPut{Key: "greeting", Delete: true}); d.Err != nil {
		t.Fatalf("delete: %v", d.Err)
	}
	if g := n.do(b, KVGet{Key: "greeting"}); !errors.Is(g.Err, ErrNotFound) {
		t.Fatalf("get after delete: err %v, want ErrNotFound", g.Err)
	}
	// A write older than the tombstone, arriving late, does not resurrect
	// the key (MyDHT's bug).
	stale := store.Record{Key: "greeting", Value: []byte("zombie"), Version: r.Version, Expires: n.Now.Add(time.Hour)}
	for _, h := range holders(n, "greeting") {
		if applied, _ := h.e.cfg.Store.Put(stale); applied {
			t.Fatal("a replica applied a write older than the tombstone")
		}
	}
	if g := n.do(a, KVGet{Key: ""}); !errors.Is(g.Err, ErrNoKey) {
		t.Errorf("empty key: %v", g.Err)
	}
	if g := n.do(a, KVPut{Key: "big", Value: make([]byte, MaxRecordValue+1)}); !errors.Is(g.Err, ErrTooLarge) {
		t.Errorf("oversized value: %v", g.Err)
	}
}

func TestKVSurvivesReplicaLossAndRepairs(t *testing.T) {
	n := newTestNet(t, 22)
	n.build(20, Config{})
	var keys []string
	for i := range 60 {
		keys = append(keys, "key-"+string(rune('a'+i%26))+string(rune('a'+i/26)))
	}
	for _, k := range keys {
		if r := n.do(n.Order[0], KVPut{Key: k, Value: []byte("v-" + k)}); r.Err != nil {
			t.Fatalf("put %s: %v", k, r.Err)
		}
	}
	n.RunUntil(time.Second, func() bool { return false })
	// Two nodes die at once: some keys lose two of their three copies.
	n.Order[7].down, n.Order[13].down = true, true
	for _, k := range keys {
		g := n.do(n.Order[0], KVGet{Key: k})
		if g.Err != nil || string(g.Record.Value) != "v-"+k {
			t.Fatalf("get %s with a replica down: %v", k, g.Err)
		}
	}
	// Within a minute every key is back on three live replicas, the
	// three closest.
	n.RunUntil(90*time.Second, func() bool { return false })
	for _, k := range keys {
		var live []*testNode
		for _, h := range holders(n, k) {
			if !h.down {
				live = append(live, h)
			}
		}
		if want := closestLive(n, k, 3); !enginetest.SameSet(live, want) {
			t.Errorf("key %s: %d live holders after repair, want the 3 closest live nodes", k, len(live))
		}
	}
}

func TestKVJoinReceivesItsShare(t *testing.T) {
	n := newTestNet(t, 23)
	n.build(12, Config{})
	var keys []string
	for i := range 40 {
		k := string(rune('A'+i%26)) + string(rune('a'+i/26))
		keys = append(keys, k)
		if r := n.do(n.Order[i%12], KVPut{Key: k, Value: []byte(k)}); r.Err != nil {
			t.Fatalf("put: %v", r.Err)
		}
	}
	// New nodes join; after a few sync rounds each holds exactly the keys
	// it is now a replica of, and the old holders dropped theirs.
	for range 4 {
		n.add(Config{Bootstrap: []netip.AddrPort{n.Order[0].addr}})
	}
	n.RunUntil(2*time.Minute, func() bool { return false })
	for _, k := range keys {
		if got, want := holders(n, k), closestLive(n, k, 3); !enginetest.SameSet(got, want) {
			t.Errorf("key %q on %d nodes, want the 3 closest (joiners included)", k, len(got))
		}
	}
}

// leaverNet builds 10 nodes holding 30 keys and picks one to leave; mine
// are the keys it is a replica of.
func leaverNet(t *testing.T) (n *testNet, leaver *testNode, mine []string) {
	t.Helper()
	n = newTestNet(t, 24)
	n.build(10, Config{})
	leaver = n.Order[4]
	for i := range 30 {
		k := "key" + string(rune('a'+i))
		if r := n.do(n.Order[0], KVPut{Key: k, Value: []byte(k)}); r.Err != nil {
			t.Fatal(r.Err)
		}
		if slices.Contains(closestLive(n, k, 3), leaver) {
			mine = append(mine, k)
		}
	}
	if len(mine) == 0 {
		t.Skip("the leaver holds no key with this seed")
	}
	return n, leaver, mine
}

func TestKVHandoverBeforeLeaving(t *testing.T) {
	n, leaver, mine := leaverNet(t)
	h := n.do(leaver, Handover{})
	if h.Err != nil || h.Acks != len(mine) {
		t.Fatalf("handover: %d of %d values handed over, err %v", h.Acks, len(mine), h.Err)
	}
	leaver.down = true
	for _, k := range mine {
		var live int
		for _, x := range holders(n, k) {
			if !x.down {
				live++
			}
		}
		if live < 3 {
			t.Errorf("key %s: %d live copies right after the handover, want 3", k, live)
		}
	}
}

func TestKVQuorum(t *testing.T) {
	n := newTestNet(t, 25)
	n.build(10, Config{QueryTimeout: time.Second})
	key := "quorum"
	reps := closestLive(n, key, 3)
	var writer *testNode
	for _, tn := range n.Order {
		if !slices.Contains(reps, tn) {
			writer = tn
			break
		}
	}
	reps[0].down, reps[1].down = true, true
	// Two of the key's three replicas are silent: they still count in its
	// replica set, so the put is refused, writing nothing, rather than
	// acknowledged by nodes that are not the key's replicas (the quorum
	// rule). Once they have been silent for DownFor they no longer count:
	// the next-closest live nodes take their place and the put succeeds.
	if r := n.do(writer, KVPut{Key: key, Value: []byte("x")}); !errors.Is(r.Err, ErrQuorum) || !strings.Contains(r.Err.Error(), "found 1 of the 3 replicas") {
		t.Fatalf("put with two of the three replicas just gone: %v, want ErrQuorum naming 1 of 3", r.Err)
	}
	n.RunUntil(DefaultConfig().DownFor+time.Second, func() bool { return false })
	if r := n.do(writer, KVPut{Key: key, Value: []byte("x")}); r.Err != nil {
		t.Fatalf("put with two of the old replicas down for DownFor: %v", r.Err)
	}
	// Refusals are told apart from silence: every replica refusing (here:
	// a value over their store limit) fails the put with the reason.
	small := newTestNet(t, 26)
	small.build(5, Config{Store: nil})
	for _, tn := range small.Order {
		tn.e.cfg.Store = store.NewMemory(store.Config{MaxValueSize: 4})
	}
	r := small.do(small.Order[0], KVPut{Key: "k", Value: []byte("too long")})
	if !errors.Is(r.Err, ErrQuorum) {
		t.Fatalf("put refused by every replica: err %v, want ErrQuorum", r.Err)
	}
}

func TestKVRetriesALostReplicaQuery(t *testing.T) {
	// With every replica needed (quorum 3 of 3), one lost dk_store or
	// dk_fetch would hold the operation up until its hard timeout and
	// then fail it. It is asked again at its soft timeout instead.
	for _, method := range []string{"dk_store", "dk_fetch"} {
		t.Run(method, func(t *testing.T) {
			n := newTestNet(t, 23)
			n.build(20, Config{WriteQuorum: 3, ReadQuorum: 3})
			a, b := n.Order[3], n.Order[11]
			lost := 0
			n.Drop = func(_, _ netip.AddrPort, data []byte) bool {
				if lost == 0 && bytes.Contains(data, []byte(method)) {
					lost++
					return true
				}
				return false
			}
			r := n.do(a, KVPut{Key: "k", Value: []byte("v")})
			g := n.do(b, KVGet{Key: "k"})
			if lost != 1 {
				t.Fatalf("%d %s queries lost, want 1", lost, method)
			}
			op, want := r, 3
			if method == "dk_fetch" {
				op, want = g, 3
				if g.Record == nil || string(g.Record.Value) != "v" || g.Partial || len(g.Holders) != want {
					t.Fatalf("get: %+v, partial %v, %d holders, err %v", g.Record, g.Partial, len(g.Holders), g.Err)
				}
			} else if r.Acks != want {
				t.Fatalf("put: %d acks, want %d (err %v)", r.Acks, want, r.Err)
			}
			if op.Err != nil || op.Stats.Duration >= time.Second {
				t.Errorf("%s: took %v, err %v; want well under the 2s hard timeout", method, op.Stats.Duration, op.Err)
			}
		})
	}
}

func TestKVHandoverRetriesALostQuery(t *testing.T) {
	// A node about to leave hands its values over. One lost datagram, the
	// token query or a dk_store batch, is asked again at its soft timeout
	// instead of costing the hand-over its values or a 2s hard timeout.
	for _, lose := range []string{"1:q3:get", "1:q8:dk_store"} {
		t.Run(lose, func(t *testing.T) {
			n, leaver, mine := leaverNet(t)
			lost := 0
			n.Drop = func(from, _ netip.AddrPort, data []byte) bool {
				if from == leaver.addr && lost == 0 && bytes.Contains(data, []byte(lose)) {
					lost++
					return true
				}
				return false
			}
			h := n.do(leaver, Handover{})
			if lost != 1 {
				t.Fatalf("%d datagrams lost, want 1", lost)
			}
			if h.Err != nil || h.Acks != len(mine) {
				t.Fatalf("handover: %d of %d values handed over, err %v", h.Acks, len(mine), h.Err)
			}
			if h.Stats.Duration >= time.Second {
				t.Errorf("handover took %v: it waited out a hard timeout", h.Stats.Duration)
			}
		})
	}
}
