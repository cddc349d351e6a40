package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestMyDHTWalkthrough replays MyDHT's walk-through on real processes: a
// directory of files of mixed sizes (chunked ones among them) uploaded
// through several nodes, nodes added and removed one at a time, nicely
// (SIGTERM) and not (SIGKILL), with time for repair between, and every
// file downloaded through nodes that were not there at the upload:
// identical.
func TestMyDHTWalkthrough(t *testing.T) {
	t.Parallel()
	start := time.Now()
	step := func(format string, args ...any) {
		t.Logf("%5.1fs  %s", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
	}
	c := newCluster(t, 3)
	// The walk-through kills two nodes in turn. A key whose
	// replica set held both refuses reads until one of them has been
	// silent --down-for (the quorum rule, README "Quorums"): 20 s here
	// instead of 5 minutes, so the downloads below wait for that.
	c.flags = []string{"--down-for", "20s"}
	seed := c.add("")
	for range 4 {
		c.add("", seed)
	}
	c.waitMesh(20 * time.Second)

	// The directory: empty, tiny, around the 8 KiB record boundary, and
	// up to 1 MiB (chunked, with an index level above 16 MiB not needed).
	sizes := []int{0, 1, 100, 1000, 4096, 8190, 8191, 8192, 8193, 16383, 16384, 16385,
		20000, 50000, 65536, 100000, 250000, 500000, 1 << 20}
	dir := t.TempDir()
	up := filepath.Join(dir, "upload")
	if err := os.Mkdir(up, 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]content{}
	total := 0
	for i := range 36 {
		size := sizes[i%len(sizes)]
		if i >= len(sizes) {
			size += 17 * i // distinct sizes the second time round
		}
		name := fmt.Sprintf("doc-%02d.bin", i)
		files[name] = writeRandomFile(t, filepath.Join(up, name), size, uint64(1000+i))
		total += size
	}
	i := 0
	for name := range files {
		through := c.nodes[i%3] // n0, n1, n2: two of them leave below
		i++
		if out, errOut, code := c.cli(through, "put", "mydht/"+name, "--file", filepath.Join(up, name)); code != 0 {
			t.Fatalf("put %s through %s: exit %d: %s%s", name, through.name, code, out, errOut)
		}
	}
	step("uploaded %d files (%d bytes) through n0, n1, n2", len(files), total)

	repaired := func(what string) {
		t.Helper()
		want := c.holdings().newest
		took, err := waitFor(90*time.Second, func() error { return c.checkReplicated(want) })
		if err != nil {
			t.Fatalf("after %s: %v", what, err)
		}
		step("%s: all %d records on 3 live replicas after %v", what, len(want), took.Round(time.Millisecond))
	}
	// The union of the live nodes' records before a node goes away is
	// what must survive it.
	all := c.holdings().newest

	c.add("", seed)
	c.add("", c.nodes[1])
	c.waitMesh(20 * time.Second)
	step("added n5, n6")

	c.stop(c.nodes[1])
	if err := c.checkReplicatedWithin(all, 20*time.Second); err != nil {
		t.Fatalf("after n1's SIGTERM: %v", err)
	}
	step("n1 stopped with SIGTERM")

	c.kill(c.nodes[2])
	repaired("n2 SIGKILLed")

	c.add("", c.nodes[3])
	c.waitMesh(20 * time.Second)
	step("added n7")

	c.kill(seed)
	repaired("n0 (the seed) SIGKILLed")
	if err := c.checkReplicated(all); err != nil {
		t.Fatal(err)
	}

	// Download everything through the nodes that joined after the upload.
	down := filepath.Join(dir, "download")
	if err := os.Mkdir(down, 0o755); err != nil {
		t.Fatal(err)
	}
	readers := []*node{c.nodes[5], c.nodes[6], c.nodes[7]}
	i = 0
	for name, w := range files {
		through := readers[i%len(readers)]
		i++
		out := filepath.Join(down, name)
		// Every record is on its 3 live replicas (checked above); on a
		// busy machine (load average 10-40) a replica can still miss a
		// lookup's query timeout, and the read falls short of its quorum:
		// asked again, within a generous deadline.
		if _, err := waitFor(2*time.Minute, func() error {
			if stdout, stderr, code := c.cli(through, "get", "mydht/"+name, "--out", out); code != 0 {
				return fmt.Errorf("exit %d: %s%s", code, stdout, stderr)
			}
			return nil
		}); err != nil {
			t.Fatalf("get %s through %s: %v", name, through.name, err)
		}
		if got := sha256File(t, out); got != w {
			t.Errorf("%s through %s: read %d bytes (sha256 %x), wrote %d bytes (sha256 %x)", name, through.name, got.size, got.sum, w.size, w.sum)
		}
	}
	step("downloaded all %d files through n5, n6, n7: identical", len(files))
}

// checkReplicatedWithin waits up to timeout for checkReplicated(want).
func (c *cluster) checkReplicatedWithin(want map[string]string, timeout time.Duration) error {
	_, err := waitFor(timeout, func() error { return c.checkReplicated(want) })
	return err
}
