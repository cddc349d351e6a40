package chord

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/id"
)

// TestFingerLookupNeverStuck: a finger lookup that ends as it starts (the
// node answers it itself, or has no one to ask) must not leave the node
// waiting for it, or the node never fixes a finger again.
func TestFingerLookupNeverStuck(t *testing.T) {
	for seed := range uint64(12) {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			net := newTestNet(t, seed)
			net.build(6, Config{})
			net.Run(time.Minute)
			for _, tn := range net.Order {
				if f := tn.e.ring.fixing; f != 0 {
					if _, ok := tn.e.ops[f]; !ok {
						t.Fatalf("node %v waits for finger lookup %d, which has ended", tn.e.ID(), f)
					}
				}
			}
			// The ring grows: every node's fingers follow.
			for range 10 {
				c := Config{Bootstrap: []netip.AddrPort{net.Order[net.Rng.IntN(len(net.Order))].addr}}
				net.add(c)
				net.Run(time.Second)
			}
			net.Run(3 * time.Minute)
			for _, tn := range net.Order {
				for i := range id.Bits {
					want := net.trueSuccessor(id.AddPow2(tn.e.ID(), i))
					if f, ok := tn.e.Finger(i); want != tn && (!ok || f.ID != want.e.ID()) {
						t.Fatalf("node %v: finger %d is %v, want %v", tn.e.ID(), i, f.ID, want.e.ID())
					}
				}
			}
		})
	}
}
