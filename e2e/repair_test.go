package e2e

import (
	"flag"
	"fmt"
	"testing"
	"time"
)

var scale = flag.Bool("scale", false, "run TestRepair100k: 5 nodes, 100,000 keys, one SIGKILL")

// TestRepair100k is the replication layer's promise at scale, on real
// processes: 5 nodes with --replicas 3, 100,000 keys, one node
// SIGKILLed; every key is back on 3 live nodes within 2 minutes. It
// runs for each protocol, behind -scale (about 10 minutes on 2 cores):
//
//	go test ./e2e -run TestRepair100k -scale -v
func TestRepair100k(t *testing.T) {
	if !*scale {
		t.Skip("100,000 keys on 5 processes: run with -scale")
	}
	for _, protocol := range []string{"kademlia", "chord"} {
		t.Run(protocol, func(t *testing.T) { repairAfterKill(t, protocol, 100000) })
	}
}

// TestRepairAfterKill is TestRepair100k at 3000 keys, every run: past the
// 1000 records where the old digest exchange stopped repairing.
func TestRepairAfterKill(t *testing.T) {
	t.Parallel()
	repairAfterKill(t, "kademlia", 3000)
}

func repairAfterKill(t *testing.T, protocol string, nkeys int) {
	start := time.Now()
	step := func(format string, args ...any) {
		t.Logf("%6.1fs  %s", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
	}
	c := newCluster(t, 3)
	c.flags = append(c.flags, "--protocol", protocol)
	seed := c.add("")
	for range 4 {
		c.add("", seed)
	}
	c.waitMesh(30 * time.Second)
	step("5 %s nodes up and meshed", protocol)

	value := make([]byte, 100)
	if errs := parallel(nkeys, 16, func(i int) error {
		return c.put(c.nodes[i%len(c.nodes)], fmt.Sprintf("repair/%07d", i), value)
	}); len(errs) > 0 {
		t.Fatalf("%d puts failed, e.g. %v", len(errs), errs[0])
	}
	step("%d keys stored", nkeys)
	all := c.holdings().newest
	if len(all) < nkeys {
		t.Fatalf("%d keys held, %d written", len(all), nkeys)
	}
	if _, err := waitFor(2*time.Minute, func() error { return c.checkReplicated(all) }); err != nil {
		t.Fatalf("before the kill: %v", err)
	}
	victim := c.nodes[2]
	held := len(c.local(victim))
	c.kill(victim)
	step("SIGKILLed %s, which held %d records", victim.name, held)
	took, err := waitFor(2*time.Minute, func() error { return c.checkReplicated(all) })
	if err != nil {
		t.Fatalf("2 minutes after the kill: %v", err)
	}
	step("every one of %d keys back on 3 live nodes %v after the kill", len(all), took.Round(time.Second))
}
