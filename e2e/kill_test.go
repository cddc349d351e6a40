package e2e

import (
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestKill is the kill test on real processes: ten nodes with
// --replicas 3 and data directories, 1000 string keys and a few files
// written through various nodes; two nodes SIGKILLed, every key read back
// byte-identical through a third; the two restarted from their data
// directories with the same command line; a new node that receives its
// share; a graceful stop that leaves every key with three live replicas.
func TestKill(t *testing.T) {
	t.Parallel()
	start := time.Now()
	step := func(format string, args ...any) {
		t.Logf("%5.1fs  %s", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
	}
	c := newCluster(t, 3)
	// Two nodes die at once below: a key whose replica set held both
	// refuses reads until they have been silent --down-for (the quorum
	// rule, README "Quorums"), 15 s here instead of 5 minutes; the reads
	// wait for that, and every read that answers must be right.
	c.flags = []string{"--down-for", "15s"}
	seed := c.add("")
	for range 9 {
		c.add("", seed)
	}
	c.waitMesh(20 * time.Second)
	step("10 nodes up and meshed")

	// 1000 string keys of 1 B to 2 KiB, written through every node in turn.
	const nkeys = 1000
	r := newRand(1)
	values := make([][]byte, nkeys)
	want := make(map[string]content, nkeys)
	for i := range values {
		values[i] = make([]byte, 1+r.intn(2048))
		r.fill(values[i])
		want[key(i)] = content{sha256.Sum256(values[i]), len(values[i])}
	}
	if errs := parallel(nkeys, 16, func(i int) error {
		return c.put(c.nodes[i%len(c.nodes)], key(i), values[i])
	}); len(errs) > 0 {
		t.Fatalf("put: %v", errs)
	}
	step("%d keys stored", nkeys)

	// Files through the CLI (put --file streams them as chunks).
	sizes := []int{3 << 20, 1 << 20, 300 << 10}
	if *long {
		sizes = []int{50 << 20, 50 << 20, 3 << 20}
	}
	dir := t.TempDir()
	files := map[string]content{}
	for i, size := range sizes {
		path := filepath.Join(dir, fmt.Sprintf("file%d", i))
		k := fmt.Sprintf("files/%d", i)
		files[k] = writeRandomFile(t, path, size, uint64(100+i))
		if out, errOut, code := c.cli(c.nodes[(3*i+1)%len(c.nodes)], "put", k, "--file", path); code != 0 {
			t.Fatalf("put %s --file: exit %d: %s%s", k, code, out, errOut)
		}
	}
	step("%d files stored (%d bytes)", len(sizes), sum(sizes))

	// A put returns once 2 of its 3 replicas hold it; the third copy
	// follows, at the latest by repair. Killing two nodes at once before
	// then may take both copies of a write that only they acknowledged,
	// which no quorum of 2 of 3 survives: wait, as an operator would
	// before taking two nodes down, until every record is on 3 nodes.
	first := ""
	took, err := waitFor(3*time.Minute, func() error {
		copies := map[string]int{}
		for _, n := range c.nodes {
			for k := range c.local(n) {
				copies[k]++
			}
		}
		short := 0
		for _, n := range copies {
			if n < 3 {
				short++
			}
		}
		if short > 0 {
			err := fmt.Errorf("%d of %d records on fewer than 3 nodes", short, len(copies))
			if first == "" {
				first = err.Error()
			}
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatalf("before the kill: %v", err)
	}
	step("every record on 3 nodes (waited %v; at first %s)", took.Round(100*time.Millisecond), first)

	// SIGKILL two nodes, neither of them the seed nor the reader.
	victims := []*node{c.nodes[3], c.nodes[7]}
	reader := c.nodes[5]
	before := map[*node]map[string]string{}
	for _, v := range victims {
		before[v] = c.local(v)
	}
	for _, v := range victims {
		c.kill(v)
	}
	step("SIGKILLed %s and %s (they held %d and %d records)", victims[0].name, victims[1].name, len(before[victims[0]]), len(before[victims[1]]))

	checkAll := func(through *node) {
		t.Helper()
		if errs := parallel(nkeys, 16, func(i int) error {
			// 503 (short of the read quorum) is asked again; any other
			// answer is final.
			var got []byte
			var final error
			if _, err := waitFor(2*time.Minute, func() error {
				var err error
				got, err = c.get(through, key(i))
				if isStatus(err, 503) {
					return err
				}
				final = err
				return nil
			}); err != nil {
				final = err
			}
			if final != nil {
				return fmt.Errorf("get %q through %s: %w", key(i), through.name, final)
			}
			return checkBytes(key(i), want[key(i)], got)
		}); len(errs) > 0 {
			t.Fatalf("reading through %s: %v", through.name, errs)
		}
		for k, w := range files {
			out := filepath.Join(dir, "out-"+through.name+"-"+strings.ReplaceAll(k, "/", "_"))
			if _, err := waitFor(2*time.Minute, func() error {
				if stdout, stderr, code := c.cli(through, "get", k, "--out", out); code != 0 {
					return fmt.Errorf("exit %d: %s%s", code, stdout, stderr)
				}
				return nil
			}); err != nil {
				t.Fatalf("get %s --out through %s: %v", k, through.name, err)
			}
			if got := sha256File(t, out); got != w {
				t.Fatalf("%s through %s: read %d bytes (sha256 %x), wrote %d bytes (sha256 %x)", k, through.name, got.size, got.sum, w.size, w.sum)
			}
			os.Remove(out)
		}
	}
	checkAll(reader)
	step("every key and file read back byte-identical through %s", reader.name)

	// Restart the victims with the same command lines: they serve what
	// they had acknowledged, and rejoin.
	for _, v := range victims {
		c.start(v)
		after := c.local(v)
		for k, ver := range before[v] {
			if after[k] < ver {
				t.Errorf("%s lost %q across SIGKILL and restart: had version %s, now %q", v.name, k, ver, after[k])
			}
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	for _, v := range victims {
		if _, err := waitFor(20*time.Second, func() error {
			if n := c.status(v).Routing.Nodes; n == 0 {
				return fmt.Errorf("%s has no contacts after its restart", v.name)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	step("%s and %s restarted from their data directories: all records kept, contacts > 0", victims[0].name, victims[1].name)
	checkAll(victims[0])
	step("every key and file read back through the restarted %s", victims[0].name)

	// A new node joins and receives the keys it is now a replica of. First
	// every node must call the restarted ones good again: a query from a
	// restarted node refutes at once (routing: a bad contact's query
	// clears its failures), and it queries its contacts as it rejoins, so
	// this no longer waits out a probe back-off of up to routing.ProbeMax
	// and a quarter; the deadline is for a busy machine.
	c.waitMesh(30 * time.Second)
	newcomer := c.add("", seed)
	all := c.holdings().newest
	var share []string
	took, err = waitFor(90*time.Second, func() error {
		share = share[:0]
		for k := range all {
			if slices.Contains(c.closest(k), newcomer) {
				share = append(share, k)
			}
		}
		have := c.local(newcomer)
		missing := 0
		var example string
		for _, k := range share {
			if have[k] < all[k] {
				missing++
				example = k
			}
		}
		if missing > 0 {
			return fmt.Errorf("%s lacks %d of the %d records it is a replica of, e.g. %q", newcomer.name, missing, len(share), example)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(share) == 0 {
		t.Fatalf("%s is a replica of none of the %d records: the check checks nothing", newcomer.name, len(all))
	}
	step("new node %s received its share (%d of %d records) in %v", newcomer.name, len(share), len(all), took.Round(time.Millisecond))
	// whereis through the CLI names it for one of its keys.
	var userKey string
	for _, k := range share {
		if !strings.HasPrefix(k, "dhtkit/chunk/") {
			userKey = k
			break
		}
	}
	if userKey != "" {
		out, errOut, code := c.cli(seed, "whereis", userKey)
		if code != 0 || !strings.Contains(out, newcomer.id) {
			t.Errorf("whereis %q through %s: exit %d, want a line with %s:\n%s%s", userKey, seed.name, code, newcomer.id, out, errOut)
		}
	}

	// A graceful stop hands over: every record still has 3 live replicas.
	all = c.holdings().newest
	leaving := c.nodes[1]
	held := len(c.local(leaving))
	c.stop(leaving)
	took, err = waitFor(20*time.Second, func() error { return c.checkReplicated(all) })
	if err != nil {
		t.Fatalf("after %s's SIGTERM: %v", leaving.name, err)
	}
	step("%s stopped with SIGTERM (held %d records); all %d records have 3 live replicas after %v", leaving.name, held, len(all), took.Round(time.Millisecond))
	checkAll(c.nodes[9])
	step("every key and file read back through %s", c.nodes[9].name)
}

func key(i int) string { return fmt.Sprintf("kill/key-%04d", i) }

func sum(xs []int) (s int) {
	for _, x := range xs {
		s += x
	}
	return s
}
