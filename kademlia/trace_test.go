package kademlia

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/id"
)

// TestTrace: a traced lookup lists one hop per query, each answered one
// with its RTT and the nodes it returned, failures with their error; an
// untraced lookup carries no trace.
func TestTrace(t *testing.T) {
	for _, tc := range []struct {
		name  string
		down  int // nodes crashed before the lookups
		trace bool
	}{
		{"traced", 0, true},
		{"traced with crashes", 10, true},
		{"untraced", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			net := newTestNet(t, 11)
			net.Latency = 20 * time.Millisecond
			net.build(80, Config{})
			rng := rand.New(rand.NewPCG(11, 11))
			for _, i := range rng.Perm(79)[:tc.down] {
				net.Order[i+1].down = true
			}
			totalFailed := 0
			for range 20 {
				target := id.Random(seededReader{R: rng})
				res := net.do(net.Order[0], FindNode{Target: target, Trace: tc.trace})
				if res.Err != nil {
					t.Fatal(res.Err)
				}
				if !tc.trace {
					if res.Trace != nil {
						t.Fatalf("an untraced lookup has a trace of %d hops", len(res.Trace))
					}
					continue
				}
				answered, failed, deepest := 0, 0, 0
				for _, h := range res.Trace {
					if h.Err != "" {
						failed++
						if h.RTT != 0 || len(h.Nodes) != 0 {
							t.Fatalf("a failed hop with an answer: %+v", h)
						}
						continue
					}
					answered++
					deepest = max(deepest, h.Depth+1)
					if h.RTT < 2*net.Latency || len(h.Nodes) == 0 || len(h.Nodes) > 8 || h.Node.ID.IsZero() {
						t.Fatalf("hop %+v: want RTT >= %v and 1..8 nodes", h, 2*net.Latency)
					}
				}
				if answered != res.Stats.Responses || answered+failed > res.Stats.Queries {
					t.Fatalf("trace: %d answered + %d failed; stats %+v", answered, failed, res.Stats)
				}
				if res.Stats.Hops > deepest {
					t.Fatalf("hop count %d beyond the deepest traced answer %d", res.Stats.Hops, deepest)
				}
				totalFailed += failed
				if tc.down == 0 && failed != 0 {
					t.Fatalf("%d failed hops on a healthy network", failed)
				}
			}
			if tc.trace && tc.down > 0 && totalFailed == 0 {
				t.Fatal("no failed hop traced with 10 of 80 nodes down")
			}
		})
	}
}
