package chord

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/kademlia"
	"github.com/dhtkit/dhtkit/store"
)

// replicaSet returns the key's true replica set: the live successor of
// its target and the n-1 live nodes after it.
func (n *testNet) replicaSet(key string, size int) []*testNode {
	out := []*testNode{n.trueSuccessor(id.FromString(key))}
	for len(out) < size {
		out = append(out, n.trueSuccessor(id.AddPow2(out[len(out)-1].e.ID(), 0)))
	}
	return out
}

// missing returns the nodes of the key's true replica set that do not
// hold it at version v or newer (deleted as asked).
func (n *testNet) missing(key string, v kademlia.Result, deleted bool) []*testNode {
	var out []*testNode
	for _, tn := range n.replicaSet(key, 3) {
		rec, ok, _ := tn.e.Store().Get(key)
		if !ok || v.Version.Newer(rec.Version) || rec.Deleted != deleted {
			out = append(out, tn)
		}
	}
	return out
}

func TestSyncRestoresKilledReplica(t *testing.T) {
	for _, victim := range []int{0, 1, 2} { // the primary, then each other replica
		net := newTestNet(t, 31)
		net.build(30, Config{})
		net.run(time.Minute)
		key := "restored"
		res := net.do(net.order[0], kademlia.KVPut{Key: key, Value: []byte("x")})
		if res.Err != nil {
			t.Fatal(res.Err)
		}
		net.run(time.Second)
		net.replicaSet(key, 3)[victim].down = true
		// Stabilize notices the dead node, the next round replaces it.
		if !net.runUntil(4*15*time.Second, func() bool { return len(net.missing(key, res, false)) == 0 }) {
			t.Fatalf("replica %d killed: %d of the 3 live replicas lack the key after four sync intervals", victim, len(net.missing(key, res, false)))
		}
	}
}

func TestSyncReachesJoiner(t *testing.T) {
	net := newTestNet(t, 32)
	net.build(30, Config{})
	net.run(time.Minute)
	key := "joined"
	res := net.do(net.order[0], kademlia.KVPut{Key: key, Value: []byte("x")})
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	set := net.replicaSet(key, 3)
	// A node joins right after the primary, between it and the other
	// replicas: the primary's range does not change, so nothing is handed
	// to it on notify.
	joinID := id.AddPow2(set[0].e.ID(), 8)
	if !id.Between(joinID, set[0].e.ID(), set[1].e.ID()) {
		t.Fatal("no room after the primary")
	}
	joiner := net.add(Config{ID: joinID, Bootstrap: []netip.AddrPort{net.order[5].addr}})
	if !net.runUntil(2*time.Minute, func() bool { return joiner.e.Joined() && net.ringErrors() == 0 }) {
		t.Fatal("the joiner did not join")
	}
	if got := net.replicaSet(key, 3); got[1] != joiner {
		t.Fatal("the joiner is not the second replica")
	}
	if !net.runUntil(4*15*time.Second, func() bool { return len(net.missing(key, res, false)) == 0 }) {
		t.Fatalf("%d of the 3 replicas lack the key after four sync intervals", len(net.missing(key, res, false)))
	}
	// The node pushed out of the set keeps its copy: maintenance drops
	// nothing.
	if _, ok, _ := set[2].e.Store().Get(key); !ok {
		t.Error("the former third replica dropped its copy")
	}
}

func TestSyncKeepsDeletes(t *testing.T) {
	net := newTestNet(t, 33)
	net.build(30, Config{})
	net.run(time.Minute)
	key := "deleted"
	if res := net.do(net.order[0], kademlia.KVPut{Key: key, Value: []byte("x")}); res.Err != nil {
		t.Fatal(res.Err)
	}
	set := net.replicaSet(key, 3)
	// The third replica misses the delete and keeps the value.
	net.drop = func(_, to netip.AddrPort, data []byte) bool {
		return to == set[2].addr && bytes.Contains(data, []byte("dk_store"))
	}
	del := net.do(net.order[1], kademlia.KVPut{Key: key, Delete: true})
	if del.Err != nil {
		t.Fatal(del.Err)
	}
	net.run(time.Second)
	net.drop = nil
	if rec, _, _ := set[2].e.Store().Get(key); rec.Deleted {
		t.Fatal("the third replica got the delete after all")
	}
	if !net.runUntil(4*15*time.Second, func() bool { return len(net.missing(key, del, true)) == 0 }) {
		t.Fatalf("%d of the 3 replicas lack the tombstone after four sync intervals", len(net.missing(key, del, true)))
	}
	// With the two replicas that took the delete gone, the value must not
	// come back.
	set[0].down, set[1].down = true, true
	net.run(4 * 15 * time.Second)
	if r := net.do(net.order[2], kademlia.KVGet{Key: key}); !errors.Is(r.Err, kademlia.ErrNotFound) {
		t.Fatalf("get after delete and churn: %v %v, want ErrNotFound", r.Err, r.Record)
	}
	if m := net.missing(key, del, true); len(m) != 0 {
		t.Fatalf("%d of the 3 replicas lack the tombstone after churn", len(m))
	}
}

// TestSyncBatches checks that a range's entries split into batches that
// each fit a datagram, cover the range in order and decode as sent.
func TestSyncBatches(t *testing.T) {
	lo := id.FromString("lo")
	hi := id.AddPow2(lo, 159) // half the ring
	var entries []store.Entry
	for i := range 5000 {
		k := fmt.Sprintf("key-%d-%s", i, strings.Repeat("x", i%200))
		if id.Between(id.FromString(k), lo, hi) {
			entries = append(entries, store.Entry{Key: k, Version: store.Version{Time: uint64(i + 1), Writer: 7}})
		}
	}
	slices.SortFunc(entries, func(a, b store.Entry) int {
		return id.Compare(id.RingDistance(lo, id.FromString(a.Key)), id.RingDistance(lo, id.FromString(b.Key)))
	})
	batches := syncBatches(lo, hi, entries)
	if len(batches) < 2 {
		t.Fatalf("%d entries in %d batch", len(entries), len(batches))
	}
	var got []store.Entry
	prev := lo
	for i, b := range batches {
		x := encodeSync(nil, b)
		if len(x) > maxPayload {
			t.Fatalf("batch %d is %d bytes, more than %d", i, len(x), maxPayload)
		}
		d, err := decodeSync(x)
		if err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
		if d.lo != prev {
			t.Fatalf("batch %d starts at %v, want %v", i, d.lo, prev)
		}
		prev = d.hi
		got = append(got, d.entries...)
	}
	if prev != hi {
		t.Fatalf("the batches end at %v, want %v", prev, hi)
	}
	if !slices.Equal(got, entries) {
		t.Fatalf("%d entries back of %d sent, or changed", len(got), len(entries))
	}
	if b := syncBatches(lo, hi, nil); len(b) != 1 || len(b[0].entries) != 0 {
		t.Fatalf("an empty range makes %d batches, want one empty", len(b))
	}
}

func TestSyncDecodeRejects(t *testing.T) {
	a, b := id.FromString("a"), id.FromString("b")
	outside := "k0"
	for id.Between(id.FromString(outside), a, b) {
		outside += "0"
	}
	cases := map[string][]byte{
		"not a dict":     []byte("i1e"),
		"no range":       encodeX(nil, map[string]any{"e": []any{}}),
		"short id":       encodeX(nil, map[string]any{"a": a[:19], "b": b[:]}),
		"e not a list":   encodeX(nil, map[string]any{"a": a[:], "b": b[:], "e": 1}),
		"short entry":    encodeX(nil, map[string]any{"a": a[:], "b": b[:], "e": []any{[]any{"k", 1}}}),
		"empty key":      encodeX(nil, map[string]any{"a": a[:], "b": b[:], "e": []any{[]any{"", 1, 1}}}),
		"no version":     encodeX(nil, map[string]any{"a": a[:], "b": b[:], "e": []any{[]any{"k", 0, 0}}}),
		"outside range":  encodeX(nil, map[string]any{"a": a[:], "b": b[:], "e": []any{[]any{outside, 1, 1}}}),
		"time not int":   encodeX(nil, map[string]any{"a": a[:], "b": b[:], "e": []any{[]any{"k", "1", 1}}}),
		"entry not list": encodeX(nil, map[string]any{"a": a[:], "b": b[:], "e": []any{"k"}}),
	}
	for name, x := range cases {
		if _, err := decodeSync(x); !errors.Is(err, errBadPayload) {
			t.Errorf("%s: %v, want errBadPayload", name, err)
		}
	}
	for name, x := range map[string][]byte{
		"not a dict":   []byte("le"),
		"w not a list": []byte("d1:wi1ee"),
		"negative":     []byte("d1:wli-1eee"),
		"too large":    []byte("d1:wli2eee"),
		"not an int":   []byte("d1:wl1:0ee"),
		"too many":     []byte("d1:wli0ei0ei0eee"),
	} {
		if _, err := decodeWant(x, 2); !errors.Is(err, errBadPayload) {
			t.Errorf("want, %s: %v, want errBadPayload", name, err)
		}
	}
}

// TestSyncRefillsPrimary checks the way back: a primary that lacks a
// record of its range (its hand-over was lost) gets it from its successor.
func TestSyncRefillsPrimary(t *testing.T) {
	net := newTestNet(t, 34)
	net.build(30, Config{})
	net.run(time.Minute)
	key := "refilled"
	res := net.do(net.order[0], kademlia.KVPut{Key: key, Value: []byte("x")})
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	net.run(time.Second)
	primary := net.replicaSet(key, 3)[0]
	if err := primary.e.Store().Remove(key, res.Version); err != nil {
		t.Fatal(err)
	}
	if !net.runUntil(4*15*time.Second, func() bool { return len(net.missing(key, res, false)) == 0 }) {
		t.Fatal("the primary did not get its record back within four sync intervals")
	}
}

// TestEachEntry compares the bucket walk with a filter of every record,
// for ranges inside one bucket, across buckets, wrapping past zero, and
// around the whole ring.
func TestEachEntry(t *testing.T) {
	e := New(Config{Network: "test", Rand: seededReader{rand.New(rand.NewPCG(2, 2))}}, testEpoch)
	st := e.Store()
	var keys []string
	for i := range 3000 {
		k := fmt.Sprint("k", i)
		keys = append(keys, k)
		if _, err := st.Put(store.Record{Key: k, Value: []byte{1}, Version: store.Version{Time: 1, Writer: 1}}); err != nil {
			t.Fatal(err)
		}
	}
	at := func(k string) id.ID { return id.FromString(k) }
	near := id.AddPow2(at("k7"), 100) // in k7's bucket, almost surely
	cases := []struct {
		name   string
		lo, hi id.ID
	}{
		{"one bucket", at("k7"), near},
		{"wrapping within one bucket", near, at("k7")},
		{"across buckets", at("k1"), at("k2")},
		{"the other way", at("k2"), at("k1")},
		{"whole ring", at("k3"), at("k3")},
		{"from zero", id.ID{}, at("k4")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var want []string
			for _, k := range keys {
				if id.Between(at(k), c.lo, c.hi) {
					want = append(want, k)
				}
			}
			// Ring order from lo, lo itself last: the interval is (lo, hi].
			slices.SortFunc(want, func(a, b string) int {
				if (at(a) == c.lo) != (at(b) == c.lo) {
					return cmp.Compare(boolInt(at(a) == c.lo), boolInt(at(b) == c.lo))
				}
				return id.Compare(id.RingDistance(c.lo, at(a)), id.RingDistance(c.lo, at(b)))
			})
			var got []string
			e.eachEntry(c.lo, c.hi, func(en store.Entry) { got = append(got, en.Key) })
			if !slices.Equal(got, want) {
				t.Fatalf("%d entries, want %d (or out of order)", len(got), len(want))
			}
		})
	}
}
