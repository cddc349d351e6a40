package kademlia

import (
	"errors"
	"net/netip"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/replica"
	"github.com/dhtkit/dhtkit/store"
)

// holderIDs returns the ids of the replicas a get heard from, sorted.
func holderIDs(r Result) []id.ID {
	var ids []id.ID
	for _, h := range r.Holders {
		ids = append(ids, h.Node.ID)
	}
	slices.SortFunc(ids, func(a, b id.ID) int { return id.CompareDistance(id.ID{}, a, b) })
	return ids
}

func nodeIDs(tns []*testNode) []id.ID {
	var ids []id.ID
	for _, tn := range tns {
		ids = append(ids, tn.e.ID())
	}
	slices.SortFunc(ids, func(a, b id.ID) int { return id.CompareDistance(id.ID{}, a, b) })
	return ids
}

// On a settled network small enough that no bucket is full, every put and
// get goes straight to the replicas, and the replica set it uses is the
// one a lookup finds.
func TestOneHopSameReplicasAsLookup(t *testing.T) {
	n := newTestNet(t, 31)
	n.build(7, Config{})
	for k := range 40 {
		key := "onehop-" + strconv.Itoa(k)
		from := n.Order[k%len(n.Order)]
		// After a quiet spell the first operation looks up (oneHopFresh);
		// its answers make the next ones one hop.
		from.e.onehop.off = true
		looked := n.do(from, KVGet{Key: key})
		from.e.onehop.off = false
		if !errors.Is(looked.Err, ErrNotFound) || looked.Stats.Queries == 0 {
			t.Fatalf("get %s with one-hop off: %v after %d lookup queries", key, looked.Err, looked.Stats.Queries)
		}
		hops := from.e.stats.OneHops
		p := n.do(from, KVPut{Key: key, Value: []byte("v")})
		if p.Err != nil {
			t.Fatalf("put %s: %v", key, p.Err)
		}
		if from.e.stats.OneHops != hops+1 || p.Stats.Queries != 0 {
			t.Fatalf("put %s: looked up (%d lookup queries), want one hop", key, p.Stats.Queries)
		}
		oneHop := n.do(from, KVGet{Key: key})
		if oneHop.Err != nil || oneHop.Record == nil || string(oneHop.Record.Value) != "v" || oneHop.Stats.Queries != 0 {
			t.Fatalf("get %s: %v after %d lookup queries", key, oneHop.Err, oneHop.Stats.Queries)
		}
		want := nodeIDs(closestLive(n, key, 3))
		if got, lk := holderIDs(oneHop), holderIDs(looked); !slices.Equal(got, lk) || !slices.Equal(got, want) {
			t.Fatalf("get %s: one hop asked %x, the lookup %x, the 3 closest are %x", key, got, lk, want)
		}
	}
	for _, tn := range n.Order {
		if tn.e.stats.OneHopFallbacks != 0 {
			t.Errorf("%v fell back to a lookup %d times on a settled network", tn.addr, tn.e.stats.OneHopFallbacks)
		}
	}
}

// A coordinator whose table misses the nodes that joined next to a key
// still writes to the key's true replicas: the members it asks check
// against their own tables, refuse when they are not replicas, and the
// coordinator falls back to a lookup.
func TestOneHopStaleTableFallsBack(t *testing.T) {
	n := newTestNet(t, 32)
	n.build(6, Config{})
	key := "stale"
	target := id.FromString(key)
	coord := n.Order[0]
	// Two newcomers closer to the target than any node so far: they take
	// two of the three replica places.
	var newcomers []*testNode
	for i := range 2 {
		x := target
		x[19] ^= byte(1 + i) // differs from the target in the last bits only
		nn := n.add(Config{ID: x, Bootstrap: []netip.AddrPort{n.Order[1].addr}})
		newcomers = append(newcomers, nn)
	}
	if !n.RunUntil(5*time.Minute, func() bool { return newcomers[0].e.boot.joined && newcomers[1].e.boot.joined }) {
		t.Fatal("the newcomers did not join")
	}
	n.RunUntil(30*time.Second, func() bool { return false })
	// A lookup (the first operation after a quiet spell) freshens the
	// coordinator's contacts near the key.
	coord.e.onehop.off = true
	n.do(coord, KVGet{Key: "warm-up"})
	n.do(coord, KVGet{Key: key})
	coord.e.onehop.off = false
	// The coordinator has not heard of them (a stale table).
	for _, nn := range newcomers {
		coord.e.table.Remove(nn.e.ID())
	}
	if !coord.e.oneHopCovered(n.Now, target) {
		t.Fatal("the coordinator's table does not cover the key: the test needs it to try one hop")
	}
	p := n.do(coord, KVPut{Key: key, Value: []byte("fresh")})
	if p.Err != nil {
		t.Fatalf("put: %v", p.Err)
	}
	if coord.e.stats.OneHopFallbacks == 0 || p.Stats.Queries == 0 {
		t.Errorf("the put ended without a fallback lookup (fallbacks %d, lookup queries %d)", coord.e.stats.OneHopFallbacks, p.Stats.Queries)
	}
	n.RunUntil(time.Second, func() bool { return false })
	want := closestLive(n, key, 3)
	for _, nn := range newcomers {
		if !slices.Contains(want, nn) {
			t.Fatalf("newcomer %x is not among the 3 closest: the test's ids are wrong", nn.e.ID())
		}
	}
	held := 0
	for _, tn := range want {
		if r, ok, _ := tn.e.Store().Get(key); ok && string(r.Value) == "fresh" {
			held++
		}
	}
	if held < 2 {
		t.Errorf("%d of the 3 true replicas hold the write, want at least the write quorum (2)", held)
	}
	// One put, one version: the fallback writes the version the one hop
	// began with, wherever either attempt landed.
	versions := map[store.Version]int{}
	for _, tn := range n.Order {
		if r, ok, _ := tn.e.Store().Get(key); ok {
			versions[r.Version]++
		}
	}
	if len(versions) != 1 {
		t.Errorf("the put left %d versions on the nodes (%v), want 1", len(versions), versions)
	}
	g := n.do(newcomers[0], KVGet{Key: key})
	if g.Err != nil || g.Record == nil || string(g.Record.Value) != "fresh" {
		t.Errorf("get from a newcomer: %+v, %v", g.Record, g.Err)
	}
}

// A replica asked in one hop answers only for targets its own table makes
// it a replica of.
func TestNotReplicaRefuses(t *testing.T) {
	n := newTestNet(t, 33)
	n.build(6, Config{})
	for k := range 20 {
		key := "nr-" + strconv.Itoa(k)
		target := id.FromString(key)
		want := closestLive(n, key, 3)
		for _, tn := range n.Order {
			if got, is := tn.e.isReplica(target), slices.Contains(want, tn); got != is {
				t.Errorf("key %s, node %v: counts itself a replica %v, is one %v", key, tn.addr, got, is)
			}
		}
	}
}

// appendAcks writes what the generic encoder writes for the same answer.
func TestAppendAcks(t *testing.T) {
	fail := errors.New("refused")
	cases := []struct {
		n    int
		idx  []int
		errs []error
		want []any
	}{
		{0, nil, nil, []any{}},
		{1, []int{0}, []error{nil}, []any{1}},
		{1, []int{0}, []error{fail}, []any{0}},
		{4, []int{0, 2, 3}, []error{nil, fail, nil}, []any{1, 0, 0, 1}},
		{3, nil, nil, []any{0, 0, 0}},
	}
	for _, c := range cases {
		want := encodeX(nil, map[string]any{"ok": c.want})
		if got := replica.AppendAcks(nil, c.n, c.idx, c.errs, nil); string(got) != string(want) {
			t.Errorf("appendAcks(%d, %v, %v) = %q, want %q", c.n, c.idx, c.errs, got, want)
		}
	}
}
