package sim

import (
	"testing"
	"time"
)

// TestPermanentThroughChurn: permanent values stay readable through an
// hour of churn (every node but the writers replaced about once) while
// their writers run, and are gone within their TTL once cancelled; with
// both protocols. The writers refresh by replica.Keeper, the rule
// dhtkit.Node follows. Chord's rings stabilize every few seconds on every
// node, so its hour of 120 nodes costs minutes under the race detector:
// with -race it runs on permanentRaceNodes nodes instead, with the same
// churn rate, workload and assertions, so that CI checks Chord too.
func TestPermanentThroughChurn(t *testing.T) {
	for _, proto := range []string{"kademlia", "chord"} {
		t.Run(proto, func(t *testing.T) {
			nodes := 120
			if proto == "chord" && raceEnabled {
				nodes = permanentRaceNodes
			}
			c := Config{Protocol: proto, Nodes: nodes, Lookups: 10, KV: true, Churn: 1, Seed: 9,
				Permanent: 8, PermanentTTL: 5 * time.Minute, PermanentCancel: time.Hour, Duration: 75 * time.Minute}
			r := run(t, c)
			t.Logf("%s: %d leaves, %d joins; %d permanent keys: %d reads while kept, %.3f found; %d refreshes (%d failed); after the cancel plus the TTL %d reads found %d",
				proto, r.Leaves, r.Joins, r.Permanent, r.PermanentReads, r.PermanentReadRate, r.PermanentRefreshes, r.PermanentRefreshFailed, r.PermanentReadsAfter, *r.PermanentFoundAfter)
			if r.Leaves < c.Nodes/2 {
				t.Fatalf("%d leaves: not an hour of churn", r.Leaves)
			}
			if r.Permanent != c.Permanent || r.PermanentReads < c.Permanent*50 || r.PermanentReadsAfter < c.Permanent*5 {
				t.Fatalf("%d keys, %d reads kept, %d after: the workload did not run", r.Permanent, r.PermanentReads, r.PermanentReadsAfter)
			}
			if r.PermanentReadRate < 0.99 {
				t.Errorf("reads while kept found the value %.3f of the time, want at least 0.99", r.PermanentReadRate)
			}
			if *r.PermanentFoundAfter != 0 {
				t.Errorf("%d reads found a cancelled value after its TTL", *r.PermanentFoundAfter)
			}
		})
	}
}
