package sim

import (
	"os"
	"testing"
	"time"
)

// TestPermanentThroughChurn: permanent values stay readable through an
// hour of churn (every node but the writers replaced about once) while
// their writers run, and are gone within their TTL once cancelled; with
// both protocols. The writers refresh by replica.Keeper, the rule
// dhtkit.Node follows. Chord's hour costs minutes under the race
// detector (its rings stabilize every few seconds on every node): with
// -race it runs only with DHTKIT_SIM_LONG=1.
func TestPermanentThroughChurn(t *testing.T) {
	for _, proto := range []string{"kademlia", "chord"} {
		t.Run(proto, func(t *testing.T) {
			if proto == "chord" && raceEnabled && os.Getenv("DHTKIT_SIM_LONG") == "" {
				t.Skip("an hour of Chord churn under -race takes minutes: set DHTKIT_SIM_LONG=1, or run without -race")
			}
			c := Config{Protocol: proto, Nodes: 120, Lookups: 10, KV: true, Churn: 1, Seed: 9,
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
