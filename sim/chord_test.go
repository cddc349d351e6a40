package sim

import (
	"math"
	"testing"
	"time"
)

// TestChordLookups runs the chord engine through the simulator: a
// 1000-node ring built by the oracle, and a smaller one built by real
// joins, both with key-value records.
func TestChordLookups(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    Config
	}{
		{"oracle", Config{Protocol: "chord", Nodes: 1000, Lookups: 300, Keys: 20, KV: true, Duration: time.Minute}},
		// Joins a second apart: a burst of joins into the same gaps
		// converges by stabilize rounds, slower than this test should wait.
		{"join", Config{Protocol: "chord", Nodes: 200, Lookups: 200, Keys: 20, KV: true, Build: Join, JoinInterval: time.Second, Duration: 2 * time.Minute}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := run(t, tc.c)
			if r.SuccessRate < 1 || r.AllKRate < 1 || r.ErrorRate > 0 {
				t.Errorf("success %.3f, all-K %.3f, errors %.3f; want every lookup exact", r.SuccessRate, r.AllKRate, r.ErrorRate)
			}
			// Chord's path is about ½·log2(N) fingers; an iterative
			// lookup counts the node that answers too.
			half := math.Log2(float64(tc.c.Nodes)) / 2
			if r.HopsMean < half-1.5 || r.HopsMean > half+2 {
				t.Errorf("mean hops %.2f, want about ½·log2(%d) = %.1f", r.HopsMean, tc.c.Nodes, half)
			}
			if r.GetSuccessRate < 1 || r.KeysLost > 0 {
				t.Errorf("gets found %.3f of the keys, %d lost", r.GetSuccessRate, r.KeysLost)
			}
			if r.RoutingCorrectness < 1 {
				t.Errorf("successor lists %.3f correct, want 1", r.RoutingCorrectness)
			}
		})
	}
}

func TestChordDeterministic(t *testing.T) {
	c := Config{Protocol: "chord", Nodes: 200, Lookups: 100, Keys: 10, KV: true, Seed: 5, Loss: 0.02, Churn: 2, Duration: 3 * time.Minute}
	if a, b := machineFree(run(t, c)), machineFree(run(t, c)); string(a) != string(b) {
		t.Fatalf("same seed and config, different reports:\n%s\n%s", a, b)
	}
}

func TestChordRejectsPeers(t *testing.T) {
	if _, err := New(Config{Protocol: "chord", Keys: 5}); err == nil {
		t.Fatal("chord with get_peers keys accepted")
	}
}
