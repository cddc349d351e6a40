package chord

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/kademlia"
)

// TestHandOffFromHolders: a node that holds a copy of a key without
// being one of its replicas (left behind by a join, or by a healed
// partition, or a join between the key and it) hands it to the replicas and drops it once they all hold
// it; a replica that is not the key's primary keeps its copy. Table of
// where the copy sits and what the replicas hold.
func TestHandOffFromHolders(t *testing.T) {
	cases := []struct {
		name string
		at   int  // the holder: this many nodes after the key's primary
		only bool // the replicas lack the key: the holder's is the only copy
		keep bool // the holder is a replica: its copy stays
		join bool // no planted copy: a node joins at the key, and the third replica is the holder
	}{
		{name: "a join pushes the third replica out of the set", at: 2, join: true},
		{name: "only copy on the next node past the set", at: 3, only: true},
		{name: "only copy far from the set", at: 12, only: true},
		{name: "older copy past the set", at: 4},
		{name: "second replica keeps its copy", at: 1, keep: true},
		{name: "third replica keeps its copy", at: 2, keep: true},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := newTestNet(t, uint64(60+i))
			n.build(20, Config{})
			if !n.RunUntil(5*time.Minute, func() bool { return n.ringErrors() == 0 }) {
				t.Fatalf("setup: %d nodes have a wrong neighbour", n.ringErrors())
			}
			key := fmt.Sprint("handed-off-", i)
			ring := n.live()
			first := slices.Index(ring, n.trueSuccessor(id.FromString(key)))
			holder := ring[(first+tc.at)%len(ring)]
			reps := n.replicaSet(key, 3)

			old := n.do(n.Order[0], kademlia.KVPut{Key: key, Value: []byte("old")})
			if old.Err != nil {
				t.Fatal(old.Err)
			}
			n.Run(time.Second)
			copyRec, ok, _ := reps[0].e.Store().Get(key)
			if !ok {
				t.Fatal("setup: the primary lacks the key")
			}
			want := old
			if tc.only {
				for _, r := range reps {
					if err := r.e.Store().Remove(key, old.Version); err != nil {
						t.Fatal(err)
					}
				}
			} else {
				want = n.do(n.Order[1], kademlia.KVPut{Key: key, Value: []byte("new")})
				if want.Err != nil {
					t.Fatal(want.Err)
				}
				n.Run(time.Second)
			}
			if tc.join {
				n.add(Config{ID: id.FromString(key), Bootstrap: []netip.AddrPort{n.Order[0].addr}})
			} else if _, err := holder.e.Store().Put(copyRec); err != nil {
				t.Fatal(err)
			}

			settled := func() bool {
				_, held, _ := holder.e.Store().Get(key)
				return len(n.missing(key, want, false)) == 0 && held == tc.keep
			}
			if tc.keep {
				n.Run(4 * 15 * time.Second) // what holds now must still hold after the rounds
			}
			if !n.RunUntil(4*15*time.Second, settled) {
				_, held, _ := holder.e.Store().Get(key)
				t.Fatalf("after four sync intervals: %d of the 3 replicas lack the key at its newest version; the holder %d past the primary still holds it: %v (want %v)",
					len(n.missing(key, want, false)), tc.at, held, tc.keep)
			}
			for _, r := range n.replicaSet(key, 3) {
				if rec, _, _ := r.e.Store().Get(key); rec.Version != want.Version {
					t.Errorf("a replica holds version %v, want %v", rec.Version, want.Version)
				}
			}
			if g := n.do(n.Order[2], kademlia.KVGet{Key: key}); g.Err != nil || g.Version != want.Version {
				t.Fatalf("get: version %v, %v; want %v", g.Version, g.Err, want.Version)
			}
		})
	}
}
