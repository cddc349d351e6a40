package replica

import (
	"flag"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/krpc"
	"github.com/dhtkit/dhtkit/store"
)

// everyone places every record on both nodes of a pair.
type everyone struct{ peer krpc.NodeInfo }

func (e everyone) Replicas(id.ID) ([]krpc.NodeInfo, bool) { return []krpc.NodeInfo{e.peer}, true }

// half places a record on both nodes when its target's first bit is 0,
// and on this node alone otherwise.
type half struct{ peer krpc.NodeInfo }

func (h half) Replicas(t id.ID) ([]krpc.NodeInfo, bool) {
	if t.Bit(0) == 0 {
		return []krpc.NodeInfo{h.peer}, true
	}
	return nil, true
}

var t0 = time.Unix(1_700_000_000, 0)

func ver(i int) store.Version { return store.Version{Time: uint64(i+1) << 16, Writer: 7} }

func fill(t testing.TB, st store.Store, from, to int, v func(int) store.Version) {
	t.Helper()
	var batch []store.Record
	for i := from; i < to; i++ {
		batch = append(batch, store.Record{Key: fmt.Sprintf("key-%07d", i), Value: []byte("v"), Version: v(i)})
		if len(batch) == 1000 || i == to-1 {
			if _, err := st.PutAll(batch); err != nil {
				t.Fatal(err)
			}
			batch = batch[:0]
		}
	}
}

// exchange runs one round from a to b and applies its repairs, returning
// the payload bytes both ways and the queries sent.
func exchange(t testing.TB, a, b store.Store, place Placement, peer krpc.NodeInfo, ring bool, page int) (bytes, queries int) {
	t.Helper()
	ta, tb := NewTree(a), NewTree(b)
	if err := ta.Refresh(t0); err != nil {
		t.Fatal(err)
	}
	plan, err := MakePlan(a, place, 0)
	if err != nil {
		t.Fatal(err)
	}
	shared := plan.Peer(peer).Shared
	if ring {
		// As a Chord primary does: the whole range, held or not.
		shared.AddRing(peer.ID, peer.ID)
	}
	r := NewRound(peer, ta, place, shared)
	type reply struct {
		h uint64
		x []byte
	}
	var inbox []reply
	next := uint64(0)
	send := func(x []byte) (uint64, bool) {
		if len(x) > MaxPayload {
			t.Fatalf("query payload of %d bytes, over %d", len(x), MaxPayload)
		}
		queries++
		next++
		out, err := tb.ServeUpTo(t0, nil, x, page)
		if err != nil {
			t.Fatalf("serve %q: %v", x, err)
		}
		if len(out) > MaxPayload {
			t.Fatalf("answer payload of %d bytes, over %d", len(out), MaxPayload)
		}
		inbox = append(inbox, reply{next, out})
		return next, true
	}
	for {
		r.Next(send)
		if len(inbox) == 0 {
			break
		}
		rp := inbox[0]
		inbox = inbox[1:]
		if err := r.Answer(t0, rp.h, rp.x); err != nil {
			t.Fatal(err)
		}
		push, pull := r.Repairs()
		for _, e := range push {
			rec, ok, err := a.Get(e.Key)
			if err != nil || !ok {
				t.Fatalf("push of %q: %v %v", e.Key, ok, err)
			}
			if _, err := b.Put(rec); err != nil {
				t.Fatal(err)
			}
		}
		for _, ks := range pull {
			for _, k := range ks {
				rec, ok, err := b.Get(k)
				if err != nil || !ok {
					t.Fatalf("pull of %q: %v %v", k, ok, err)
				}
				if _, err := a.Put(rec); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	if !r.Done() {
		t.Fatal("round not done with nothing in flight")
	}
	return r.BytesIn + r.BytesOut, queries
}

func digest(t testing.TB, st store.Store) []uint64 {
	d, err := st.Digest(12)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func sameStores(t testing.TB, a, b store.Store) bool {
	da, db := digest(t, a), digest(t, b)
	for i := range da {
		if da[i] != db[i] {
			return false
		}
	}
	return true
}

var peerB = krpc.NodeInfo{ID: id.FromString("b"), Addr: netip.MustParseAddrPort("127.0.0.1:2")}

func TestRoundRepairs(t *testing.T) {
	cases := []struct {
		name      string
		n         int
		setup     func(a, b store.Store)
		maxRounds int
	}{
		{"b empty", 3000, func(a, b store.Store) {}, 1},
		{"a empty, shares the ring", 3000, nil, 1},
		{"b older", 2000, func(a, b store.Store) {
			fill(t, b, 0, 2000, func(i int) store.Version { return store.Version{Time: ver(i).Time - 1, Writer: 7} })
		}, 1},
		{"b newer for some", 2000, func(a, b store.Store) {
			fill(t, b, 0, 2000, ver)
			fill(t, b, 100, 200, func(i int) store.Version { return ver(i + 1_000_000) })
		}, 1},
		{"b lacks a few", 20000, func(a, b store.Store) {
			fill(t, b, 0, 19990, ver)
		}, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a, b := store.NewMemory(store.Config{}), store.NewMemory(store.Config{})
			if c.setup == nil {
				fill(t, b, 0, c.n, ver)
			} else {
				fill(t, a, 0, c.n, ver)
				c.setup(a, b)
			}
			for range c.maxRounds {
				exchange(t, a, b, everyone{peerB}, peerB, c.setup == nil, MaxPayload)
			}
			if !sameStores(t, a, b) {
				ka, _ := a.Stats()
				kb, _ := b.Stats()
				t.Fatalf("stores differ after %d rounds: %d and %d records", c.maxRounds, ka, kb)
			}
			// In sync: a round costs one query.
			bytes, q := exchange(t, a, b, everyone{peerB}, peerB, c.setup == nil, MaxPayload)
			if q != 1 || bytes > 1024 {
				t.Fatalf("in sync, a round sent %d queries, %d bytes", q, bytes)
			}
		})
	}
}

// TestRoundShared checks that a round pushes only what the peer should
// hold, and that it stays cheap where the stores differ outside what they
// share.
func TestRoundShared(t *testing.T) {
	a, b := store.NewMemory(store.Config{}), store.NewMemory(store.Config{})
	fill(t, a, 0, 20000, ver)
	exchange(t, a, b, half{peerB}, peerB, false, MaxPayload)
	n := 0
	_ = a.Bucket(0, 0, func(e store.Entry) bool {
		_, ok, _ := b.Get(e.Key)
		if ok != (id.FromString(e.Key).Bit(0) == 0) {
			t.Fatalf("key %q on b: %v", e.Key, ok)
		}
		if ok {
			n++
		}
		return true
	})
	if n < 9000 {
		t.Fatalf("b holds %d records, want about 10000", n)
	}
	bytes, q := exchange(t, a, b, half{peerB}, peerB, false, MaxPayload)
	if q > 1 || bytes > 1024 {
		t.Fatalf("in sync on the shared half, a round sent %d queries, %d bytes", q, bytes)
	}
}

var scale = flag.Bool("scale", false, "run the tests at 100,000 keys")

// TestInSyncCost measures what a round costs when nothing differs,
// against the data held: 20,000 records of 100-byte values (100,000 with
// -scale).
func TestInSyncCost(t *testing.T) {
	keys := 20000
	if *scale {
		keys = 100000
	}
	a, b := store.NewMemory(store.Config{}), store.NewMemory(store.Config{})
	val := make([]byte, 100)
	for _, st := range []store.Store{a, b} {
		var batch []store.Record
		for i := range keys {
			batch = append(batch, store.Record{Key: fmt.Sprintf("key-%07d", i), Value: val, Version: ver(i)})
		}
		if _, err := st.PutAll(batch); err != nil {
			t.Fatal(err)
		}
	}
	bytes, q := exchange(t, a, b, everyone{peerB}, peerB, false, MaxPayload)
	_, held := a.Stats()
	t.Logf("in sync: %d queries, %d payload bytes for %d bytes held (%.2e)", q, bytes, held, float64(bytes)/float64(held))
	if q != 1 || bytes > 1024 {
		t.Fatalf("in sync, a round sent %d queries, %d bytes", q, bytes)
	}
}

// TestRoundSmallPages: a node that answers an unproven asker with small
// pages (ServeUpTo, SmallPage) still lets its round complete, and no
// answer is much larger than a query.
func TestRoundSmallPages(t *testing.T) {
	a, b := store.NewMemory(store.Config{}), store.NewMemory(store.Config{})
	fill(t, a, 0, 3000, ver)
	fill(t, b, 0, 2000, ver)
	_, q := exchange(t, a, b, everyone{peerB}, peerB, false, SmallPage)
	if !sameStores(t, a, b) {
		t.Fatal("stores differ after a round of small pages")
	}
	tb := NewTree(b)
	x := AppendRequest(nil, Request{Prefix: Root, Entries: true})
	out, err := tb.ServeUpTo(t0, nil, x, SmallPage)
	if err != nil || len(out) > SmallPage+maxKey+entryOverhead+16 {
		t.Fatalf("a small page of %d bytes (%v)", len(out), err)
	}
	t.Logf("%d queries with pages of %d bytes", q, SmallPage)
}
