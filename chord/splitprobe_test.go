package chord

import (
	"flag"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/kademlia"
)

var (
	splitProbe = flag.String("split-probe", "8+3,12+5,20+8", "TestSplitProbe's rings, as NODES+CUT pairs separated by commas")
	splitSeeds = flag.Int("split-seeds", 20, "TestSplitProbe's seeds per ring")
)

// TestSplitProbe holds the quorum rule on rings larger than
// TestSplitSoonAfterJoin's: for each NODES+CUT ring of -split-probe and
// -split-seeds seeds, the first CUT nodes to join are cut off from the
// rest 30 virtual seconds after the ring is right, and every node writes
// each of 8 keys twice. It fails on any write acknowledged by a side
// holding a minority of the key's replicas, and on any write refused a
// minute after the ring is one again once the split heals; it reports
// the writes a majority side refused meanwhile. Without blind.go's
// rules the suite's rings and seeds fail (2 minority acknowledgements in
// the 8-node ring, 7 in the 20-node one), and over 40 seeds 6 of the 13
// rings of the wider run do (16 writes). The wider run, by hand:
//
//	go test ./chord -run TestSplitProbe -v -timeout 30m -args -split-seeds 40 -split-probe 6+2,9+4,12+5,20+8,30+12,6+3,8+3,10+4,14+6,16+7,24+10,26+12,30+14
func TestSplitProbe(t *testing.T) {
	if *splitProbe == "" {
		t.Skip("no rings given (-split-probe)")
	}
	for _, ring := range strings.Split(*splitProbe, ",") {
		var size, cut int
		if _, err := fmt.Sscanf(ring, "%d+%d", &size, &cut); err != nil || cut <= 0 || cut >= size {
			t.Fatalf("-split-probe %q: want NODES+CUT such as 12+5", ring)
		}
		t.Run(ring, func(t *testing.T) {
			badSeeds, acked, tried, refused, majority, healed, healRefused := 0, 0, 0, 0, 0, 0, 0
			for seed := uint64(1); seed <= uint64(*splitSeeds); seed++ {
				n := newSplit(t, seed, size, cut, 30*time.Second)
				before := acked
				for round := range 2 {
					for _, w := range n.Order {
						for k := range 8 {
							key := fmt.Sprintf("reg/%d", k)
							err := n.do(w, kademlia.KVPut{Key: key, Value: fmt.Appendf(nil, "%d-%d", seed, round)}).Err
							if n.mine(key, w) >= 2 {
								majority++
								if err != nil {
									refused++
								}
								continue
							}
							tried++
							if err == nil {
								acked++
							}
						}
					}
				}
				if acked > before {
					badSeeds++
				}
				// Heal; once the ring is one again, every write must go
				// through: nothing the split left blind may outlast it.
				n.Drop = nil
				if !n.RunUntil(10*time.Minute, func() bool { return n.ringErrors() == 0 }) {
					t.Errorf("seed %d: %d nodes have a wrong neighbour 10 minutes after the heal", seed, n.ringErrors())
					continue
				}
				n.Run(time.Minute)
				for _, w := range n.Order {
					for k := range 8 {
						healed++
						if err := n.do(w, kademlia.KVPut{Key: fmt.Sprintf("reg/%d", k), Value: []byte("healed")}).Err; err != nil {
							healRefused++
							if healRefused == 1 {
								t.Logf("seed %d: after the heal, %v", seed, err)
							}
						}
					}
				}
			}
			t.Logf("%d nodes cut %d|%d: %d of %d seeds let a minority side acknowledge (%d of %d writes); a majority side refused %d of %d writes",
				size, cut, size-cut, badSeeds, *splitSeeds, acked, tried, refused, majority)
			t.Logf("a minute after the ring was one again: %d of %d writes refused", healRefused, healed)
			if healRefused > 0 {
				t.Errorf("%d writes refused after the heal", healRefused)
			}
			if acked > 0 {
				t.Errorf("%d writes acknowledged by a side holding a minority of the key's replicas", acked)
			}
		})
	}
}
