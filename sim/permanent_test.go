package sim

import (
	"math"
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
			t.Logf("%s: %d leaves, %d joins; %d permanent keys: %d reads while kept, %.3f found, %d refused for crashed replicas; %d refreshes (%d failed); after the cancel plus the TTL %d reads found %d",
				proto, r.Leaves, r.Joins, r.Permanent, r.PermanentReads, r.PermanentReadRate, r.PermanentReadsRefused, r.PermanentRefreshes, r.PermanentRefreshFailed, r.PermanentReadsAfter, *r.PermanentFoundAfter)
			if r.Leaves < c.Nodes/2 {
				t.Fatalf("%d leaves: not an hour of churn", r.Leaves)
			}
			if r.Permanent != c.Permanent || r.PermanentReads < c.Permanent*50 || r.PermanentReadsAfter < c.Permanent*5 {
				t.Fatalf("%d keys, %d reads kept, %d after: the workload did not run", r.Permanent, r.PermanentReads, r.PermanentReadsAfter)
			}
			// A key two of whose three replicas crashed close together
			// refuses reads for DownFor, by the quorum rule (Chord's
			// adjacent replicas, seed 9, 120 nodes: 13 of 472 reads). Those
			// are counted apart; every other read finds the value, and
			// such refusals stay rare.
			if r.PermanentReadsRefused*20 > r.PermanentReads {
				t.Errorf("%d of %d reads refused for crashed replicas, want at most 5%%", r.PermanentReadsRefused, r.PermanentReads)
			}
			found := math.Round(r.PermanentReadRate * float64(r.PermanentReads))
			if rate := found / float64(r.PermanentReads-r.PermanentReadsRefused); rate < 0.99 {
				t.Errorf("reads while kept, besides those refused, found the value %.3f of the time, want at least 0.99", rate)
			}
			if *r.PermanentFoundAfter != 0 {
				t.Errorf("%d reads found a cancelled value after its TTL", *r.PermanentFoundAfter)
			}
		})
	}
}
