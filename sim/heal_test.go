package sim

import (
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/routing"
)

// TestPartitionHeals splits the network for four minutes, long enough for
// every node to mark the other side bad, then lets it run for as long
// again: the tables must return to the truth with no action from anyone.
// No node may still call a live node bad, and the tables must be as
// correct as those of the same run without a partition.
func TestPartitionHeals(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    Config
	}{
		{"kademlia", Config{Nodes: 300, Lookups: 300, Duration: 9 * time.Minute}},
		{"chord", Config{Protocol: "chord", Nodes: 100, Lookups: 100, Duration: 9 * time.Minute}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := run(t, tc.c)
			c := tc.c
			c.Partitions = []Partition{{At: time.Minute, For: 4 * time.Minute, Fraction: 0.4}}
			r := run(t, c)
			if r.Partitioned == 0 {
				t.Fatal("setup: the partition dropped nothing")
			}
			// Lookups ran across the partition; the heal leaves four
			// minutes, eight times routing.ProbeMax.
			if 4*time.Minute < 8*routing.ProbeMax {
				t.Fatal("setup: the run after the heal is too short for the probes")
			}
			if r.RoutingFalseBad > 0 {
				t.Errorf("%.3f of table entries call a live node bad four minutes after the heal", r.RoutingFalseBad)
			}
			if r.RoutingCorrectness < base.RoutingCorrectness-0.01 {
				t.Errorf("routing correctness %.3f after the heal, %.3f without a partition", r.RoutingCorrectness, base.RoutingCorrectness)
			}
			t.Logf("correctness %.3f (no partition %.3f), false bad %.3f, dead %.3f",
				r.RoutingCorrectness, base.RoutingCorrectness, r.RoutingFalseBad, r.RoutingDead)
		})
	}
}
