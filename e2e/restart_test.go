package e2e

import (
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"
)

// TestRestartReadsAreFresh is the kill-update-restart-read trial
// on real processes: SIGKILL a node, update and delete keys through the
// others, restart it with the same command line, and read every key
// through it at once. A restarted node must not answer from its own disk
// alone before it has rejoined: no read may return a value older than an
// acknowledged update, and no deleted key may come back. A read may wait
// for the rejoin, or be refused with 503; it may never be stale.
func TestRestartReadsAreFresh(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 3)
	seed := c.add("")
	for range 4 {
		c.add("", seed)
	}
	c.waitMesh(20 * time.Second)

	const nkeys = 120
	val := func(i, gen int) []byte { return fmt.Appendf(nil, "key %d generation %d", i, gen) }
	gen := make([]int, nkeys)
	deleted := make([]bool, nkeys)
	if errs := parallel(nkeys, 8, func(i int) error { return c.put(c.nodes[i%len(c.nodes)], key(i), val(i, 0)) }); len(errs) > 0 {
		t.Fatalf("put: %v", errs)
	}
	trials := 3
	if *long {
		trials = 10
	}
	var stale, resurrected, refused, reads atomic.Int64
	for trial := range trials {
		victim := c.nodes[1+trial%(len(c.nodes)-1)] // never the seed
		others := []*node{}
		for _, n := range c.nodes {
			if n != victim {
				others = append(others, n)
			}
		}
		c.kill(victim)
		// Update a third of the live keys and delete a tenth, through the
		// other nodes, while the victim is down.
		var idx []int
		for i := range nkeys {
			if !deleted[i] && (i+trial)%3 == 0 {
				idx = append(idx, i)
			}
		}
		if errs := parallel(len(idx), 8, func(j int) error {
			i := idx[j]
			if (i+trial)%10 == 0 {
				_, errOut, code := c.cli(others[j%len(others)], "del", key(i))
				if code != 0 {
					return fmt.Errorf("del %s: exit %d: %s", key(i), code, errOut)
				}
				return nil
			}
			return c.put(others[j%len(others)], key(i), val(i, trial+1))
		}); len(errs) > 0 {
			t.Fatalf("trial %d: updates while %s is down: %v", trial, victim.name, errs)
		}
		for _, i := range idx {
			if (i+trial)%10 == 0 {
				deleted[i] = true
			} else {
				gen[i] = trial + 1
			}
		}
		c.start(victim) // returns as soon as its HTTP API answers
		if errs := parallel(nkeys, 8, func(i int) error {
			got, err := c.get(victim, key(i))
			var ae *apiError
			switch {
			case errors.As(err, &ae) && ae.code == http.StatusNotFound:
				if !deleted[i] {
					return fmt.Errorf("%s: 404 for a live key", key(i))
				}
			case errors.As(err, &ae) && ae.code == http.StatusServiceUnavailable:
				refused.Add(1)
			case err != nil:
				return err
			case deleted[i]:
				resurrected.Add(1)
				t.Errorf("trial %d: %s was deleted, %s returned %q", trial, key(i), victim.name, got)
			case string(got) != string(val(i, gen[i])):
				stale.Add(1)
				t.Errorf("trial %d: %s through %s: %q, want %q", trial, key(i), victim.name, got, val(i, gen[i]))
			}
			reads.Add(1)
			return nil
		}); len(errs) > 0 {
			t.Fatalf("trial %d: reads through %s: %v", trial, victim.name, errs)
		}
	}
	t.Logf("%d trials, %d reads right after a restart: %d stale, %d resurrected deletes, %d refused (503)",
		trials, reads.Load(), stale.Load(), resurrected.Load(), refused.Load())
	if refused.Load() == reads.Load() {
		t.Error("every read was refused: the restarted nodes never rejoined")
	}
}
