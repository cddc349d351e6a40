package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit"
	"github.com/dhtkit/dhtkit/chord"
	"github.com/dhtkit/dhtkit/httpapi"
	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/kademlia"
)

// chordNetwork starts n Chord nodes on 127.0.0.1 joined through the first
// and waits until every one has its full successor list.
func chordNetwork(t *testing.T, n int) []*dhtkit.Node {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	cc := chord.Config{Successors: 3, K: 3, StabilizeInterval: 20 * time.Millisecond,
		FixFingersInterval: 20 * time.Millisecond, CheckPredecessorInterval: 50 * time.Millisecond}
	var nodes []*dhtkit.Node
	for i := range n {
		cfg := dhtkit.Config{Protocol: dhtkit.Chord, Listen: "127.0.0.1:0", Chord: cc, Logger: quiet}
		if i > 0 {
			cfg.Bootstrap = []string{nodes[0].Addr().String()}
		}
		node, err := dhtkit.Listen(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { node.Close() })
		nodes = append(nodes, node)
	}
	// Converged: every node's predecessor and first successor are its
	// true neighbours on the ring.
	ids := make([]id.ID, len(nodes))
	for i, node := range nodes {
		ids[i] = node.ID()
	}
	slices.SortFunc(ids, id.Compare)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		ok := true
		for _, node := range nodes {
			i, _ := slices.BinarySearchFunc(ids, node.ID(), id.Compare)
			r, _ := node.Ring()
			if !r.HasPredecessor || len(r.Successors) < min(3, n-1) ||
				r.Predecessor.ID != ids[(i+n-1)%n] || r.Successors[0].ID != ids[(i+1)%n] {
				ok = false
			}
		}
		if ok {
			return nodes
		}
		if time.Now().After(deadline) {
			t.Fatalf("the Chord ring of %d nodes did not converge", n)
		}
	}
}

func TestRingAndTrace(t *testing.T) {
	nodes := chordNetwork(t, 6)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	url, err := serveHTTP(ctx, "127.0.0.1:0", nodes[1], httpapi.Options{Protocol: dhtkit.Chord}, nodes[1].Logger())
	if err != nil {
		t.Fatal(err)
	}
	api := "--api=" + strings.TrimSuffix(url, "/")
	// far is a node beyond nodes[1]'s successor list: a lookup of it
	// takes queries, one of it at least.
	r, _ := nodes[1].Ring()
	far := r.Predecessor.ID.String()
	for _, tc := range []struct {
		args []string
		code int
		want []string // substrings of stdout
		not  []string // what must not appear
	}{
		{[]string{"ring"}, 0, []string{"node         " + nodes[1].ID().String(), "predecessor  ", "successor 1  ", "successor 3  ", "finger "}, []string{"bucket"}},
		{[]string{"lookup", nodes[1].ID().String()}, 0, []string{nodes[1].ID().String()}, []string{"invalid", "hop "}},
		{[]string{"lookup", "some key", "--trace"}, 0, []string{" hops, ", " queries, "}, []string{"invalid AddrPort"}},
		{[]string{"lookup", far, "--trace"}, 0, []string{"hop 1 ", "depth 0", "ms", "the target's successor " + far}, []string{"invalid AddrPort"}},
	} {
		code, out, errs := dhtkitCmd(t, append(tc.args, api)...)
		if code != tc.code {
			t.Errorf("%v: exit %d, want %d; %s", tc.args, code, tc.code, errs)
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("%v: stdout lacks %q:\n%s", tc.args, w, out)
			}
		}
		for _, w := range tc.not {
			if strings.Contains(out, w) {
				t.Errorf("%v: stdout has %q:\n%s", tc.args, w, out)
			}
		}
	}

	// A Kademlia lookup through a client node of its own, traced.
	knodes := testNetwork(t, 8)
	code, out, errs := dhtkitCmd(t, "lookup", "x", "--trace", "--bootstrap="+knodes[2].Addr().String())
	if code != 0 || !strings.Contains(out, "hop 1 ") || !strings.Contains(out, "nodes, nearest ") || !strings.Contains(out, " hops, ") {
		t.Errorf("kademlia lookup --trace: exit %d\n%s%s", code, out, errs)
	}

	// A Kademlia node has no ring: one line, status 1.
	kurl, err := serveHTTP(ctx, "127.0.0.1:0", knodes[0], httpapi.Options{}, knodes[0].Logger())
	if err != nil {
		t.Fatal(err)
	}
	code, _, errs = dhtkitCmd(t, "ring", "--api="+strings.TrimSuffix(kurl, "/"))
	if code != exitFailure || !strings.Contains(errs, "Kademlia") || strings.Count(errs, "\n") != 1 {
		t.Errorf("ring of a Kademlia node: exit %d, %q", code, errs)
	}
}

func TestSimCompare(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		rows []string
		not  []string
	}{
		{[]string{"--protocol", "chord", "--routing", "fingers,linear"}, []string{"chord/fingers", "chord/linear"}, []string{"kademlia", "α"}},
		{[]string{"--protocol", "kademlia,chord", "--out", dir}, []string{"kademlia", "chord/fingers"}, []string{"linear"}},
	} {
		code, out, errs := dhtkitCmd(t, append([]string{"sim", "--nodes", "60", "--lookups", "100", "--keys", "50", "--duration", "1m"}, tc.args...)...)
		if code != 0 || !strings.Contains(out, "hops_median") || !strings.Contains(out, "key_gini") {
			t.Fatalf("sim %v: exit %d\n%s%s", tc.args, code, out, errs)
		}
		for _, w := range tc.rows {
			if !strings.Contains(out, " "+w+" ") {
				t.Errorf("sim %v: no row %q:\n%s", tc.args, w, out)
			}
		}
		for _, w := range tc.not {
			if strings.Contains(out, w) {
				t.Errorf("sim %v: says %q:\n%s", tc.args, w, out)
			}
		}
	}
	for _, f := range []string{"compare.csv", "kademlia/report.json", "chord-fingers/lookups.csv", "chord-fingers/key_load.csv"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("--out: %v", err)
		}
	}
	if code, _, errs := dhtkitCmd(t, "sim", "--routing", "linear", "--nodes", "10"); code != exitUsage || !strings.Contains(errs, "--protocol chord") {
		t.Errorf("linear kademlia: exit %d %q", code, errs)
	}
}

// TestLoadCommand: dhtkit load finds every node of a Chord ring and of a
// Kademlia network, and its figures are the nodes' own counts.
func TestLoadCommand(t *testing.T) {
	for _, proto := range []string{"chord", "kademlia"} {
		t.Run(proto, func(t *testing.T) {
			var nodes []*dhtkit.Node
			if proto == "chord" {
				nodes = chordNetwork(t, 7)
			} else {
				nodes = testNetwork(t, 7)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			t.Cleanup(cancel)
			for i := range 40 {
				if _, err := nodes[i%7].Put(ctx, "key-"+strconv.Itoa(i), []byte("value"), dhtkit.PutOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			url, err := serveHTTP(ctx, "127.0.0.1:0", nodes[2], httpapi.Options{Protocol: proto}, nodes[2].Logger())
			if err != nil {
				t.Fatal(err)
			}
			code, out, errs := dhtkitCmd(t, "load", "--api="+strings.TrimSuffix(url, "/"))
			if code != 0 {
				t.Fatalf("load: exit %d %s", code, errs)
			}
			var want, wantMax int64
			for _, n := range nodes {
				st := n.LocalStats()
				want += int64(st.Records)
				wantMax = max(wantMax, int64(st.Records))
				if !strings.Contains(out, n.ID().String()+" ") {
					t.Errorf("load does not list node %v:\n%s", n.ID(), out)
				}
			}
			lines := strings.Split(strings.TrimSpace(out), "\n")
			var n, keys, bytes, lo, hi int64
			var mean, gini float64
			if _, err := fmt.Sscanf(lines[len(lines)-1], "nodes %d keys %d bytes %d min %d max %d mean %g gini %g", &n, &keys, &bytes, &lo, &hi, &mean, &gini); err != nil {
				t.Fatalf("last line %q: %v", lines[len(lines)-1], err)
			}
			if n != 7 || len(lines) != 8 || keys != want || keys < 40 || hi != wantMax || lo > hi || gini < 0 || gini >= 1 {
				t.Errorf("load: %d nodes, %d keys (want %d), max %d (want %d), gini %g:\n%s", n, keys, want, hi, wantMax, gini, out)
			}
		})
	}
}

// TestLightDHTFlags: a research node's id, client version and keep-all
// table come from the command line; bad values are one-line usage errors.
func TestLightDHTFlags(t *testing.T) {
	const nodeID = "0123456789abcdef0123456789abcdef01234567"
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--table", "keepall", "--client-version", "LD01", "--node-id", nodeID}, 0, "node " + nodeID + " listening"},
		{[]string{"--protocol", "chord", "--client-version", "CH01", "--node-id", nodeID}, 0, "node " + nodeID + " listening"},
		{[]string{"--table", "fancy"}, exitUsage, "want bep5 or keepall"},
		{[]string{"--table", "keepall", "--protocol", "chord"}, exitUsage, "Kademlia's routing table"},
		{[]string{"--node-id", "xyz"}, exitUsage, "want 40 hex digits"},
		{[]string{"--node-id", nodeID, "--data", t.TempDir()}, exitUsage, "node-id"},
		{[]string{"--client-version", strings.Repeat("v", 17)}, exitUsage, "at most 16 bytes"},
	} {
		ctx, cancel := context.WithCancel(context.Background())
		var out, errb syncBuffer
		done := make(chan int)
		go func() {
			done <- run(ctx, append([]string{"node", "--listen", "127.0.0.1:0", "--http", "off", "--log-level", "warn"}, tc.args...), &out, &errb)
		}()
		if tc.code != 0 {
			if code := <-done; code != tc.code || !strings.Contains(errb.String(), tc.want) || strings.Count(errb.String(), "\n") != 1 {
				t.Errorf("%v: exit %d, stderr %q", tc.args, code, errb.String())
			}
			cancel()
			continue
		}
		for deadline := time.Now().Add(10 * time.Second); !strings.Contains(out.String(), "listening") && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
		}
		if !strings.Contains(out.String(), tc.want) {
			t.Errorf("%v: stdout %q", tc.args, out.String())
		}
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("%v: exit %d after cancel; %s", tc.args, code, errb.String())
		}
	}
}

// TestCrawlOut: crawl --out writes every node of the network and every
// infohash announced, one JSON object a line.
func TestCrawlOut(t *testing.T) {
	nodes := testNetwork(t, 40)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	want := map[string]bool{}
	for i := range 10 {
		ih := id.FromString(fmt.Sprint("torrent ", i))
		if err := nodes[i].Announce(ctx, ih, 6881+i); err != nil {
			t.Fatal(err)
		}
		want[ih.String()] = true
	}
	dir := t.TempDir()
	code, _, errs := dhtkitCmd(t, "crawl", "--duration", "20s", "--out", dir, "--bootstrap="+nodes[5].Addr().String())
	if code != 0 {
		t.Fatalf("crawl --out: exit %d %s", code, errs)
	}
	read := func(name string) []map[string]any {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		var out []map[string]any
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			var m map[string]any
			if err := json.Unmarshal([]byte(l), &m); err != nil {
				t.Fatalf("%s: %q: %v", name, l, err)
			}
			out = append(out, m)
		}
		return out
	}
	found := map[string]bool{}
	for _, m := range read("nodes.jsonl") {
		if m["bep51"] == true && m["responded"] == true && m["rtt_ms"].(float64) > 0 && m["version_hex"] != "" {
			found[m["id"].(string)] = true
		}
	}
	for _, n := range nodes {
		if !found[n.ID().String()] {
			t.Errorf("nodes.jsonl lacks node %v (or its bep51, rtt, version)", n.ID())
		}
	}
	got := map[string]bool{}
	for _, m := range read("infohashes.jsonl") {
		got[m["infohash"].(string)] = len(m["nodes"].([]any)) > 0
	}
	for ih := range want {
		if !got[ih] {
			t.Errorf("infohashes.jsonl lacks announced %s", ih)
		}
	}
}

// TestCrawl500Mainline crawls a 500-node local Mainline network with 200
// announced infohashes and checks that --out holds every node and every
// infohash. Slow: DHTKIT_CRAWL500=1 runs it.
func TestCrawl500Mainline(t *testing.T) {
	if os.Getenv("DHTKIT_CRAWL500") == "" {
		t.Skip("500 nodes: set DHTKIT_CRAWL500=1")
	}
	const size, torrents = 500, 200
	kc := kademlia.DefaultConfig()
	kc.RateLimit = -1 // every node shares 127.0.0.1
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var nodes []*dhtkit.Node
	for i := range size {
		n, err := dhtkit.Listen(ctx, dhtkit.Config{Listen: "127.0.0.1:0", Network: dhtkit.Mainline, Kademlia: kc, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		nodes = append(nodes, n)
		if i > 0 {
			if err := n.Bootstrap(ctx, nodes[max(0, i-1-i%7)].Addr()); err != nil {
				t.Fatal(err)
			}
		}
	}
	want := map[string]bool{}
	for i := range torrents {
		ih := id.FromString(fmt.Sprint("torrent ", i))
		if err := nodes[(i*37)%size].Announce(ctx, ih, 6881); err != nil {
			t.Fatal(err)
		}
		want[ih.String()] = true
	}
	dir := t.TempDir()
	start := time.Now()
	code, out, errs := dhtkitCmd(t, "crawl", "--network", "mainline", "--json", "--duration", "2m", "--out", dir, "--bootstrap="+nodes[250].Addr().String())
	if code != 0 {
		t.Fatalf("crawl: exit %d %s", code, errs)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "nodes.jsonl"))
	found := map[string]bool{}
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && m["bep51"] == true {
			found[m["id"].(string)] = true
		}
	}
	missing := 0
	for _, n := range nodes {
		if !found[n.ID().String()] {
			missing++
		}
	}
	b, _ = os.ReadFile(filepath.Join(dir, "infohashes.jsonl"))
	got := 0
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && want[fmt.Sprint(m["infohash"])] {
			got++
		}
	}
	t.Logf("crawl of %d Mainline nodes, %d torrents: %d nodes exported with BEP 51, %d of %d infohashes, %.1fs; %s",
		size, torrents, len(found), got, torrents, time.Since(start).Seconds(), strings.TrimSpace(out))
	if missing > 0 || got != torrents {
		t.Errorf("%d nodes missing, %d of %d infohashes", missing, got, torrents)
	}
}

// TestCrawlResamples: nodes that hold more infohashes than one
// sample_infohashes returns (20) are asked again once their interval has
// passed, so the crawl exports nearly all 120 announced, not 20.
func TestCrawlResamples(t *testing.T) {
	kc := kademlia.DefaultConfig()
	kc.RateLimit = -1
	kc.SampleInterval = time.Second
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var nodes []*dhtkit.Node
	for i := range 6 {
		n, err := dhtkit.Listen(ctx, dhtkit.Config{Listen: "127.0.0.1:0", Kademlia: kc, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		nodes = append(nodes, n)
		if i > 0 {
			if err := n.Bootstrap(ctx, nodes[0].Addr()); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i := range 120 {
		if err := nodes[i%6].Announce(ctx, id.FromString(fmt.Sprint("t", i)), 6881); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	if code, _, errs := dhtkitCmd(t, "crawl", "--duration", "20s", "--out", dir, "--bootstrap="+nodes[1].Addr().String()); code != 0 {
		t.Fatalf("crawl: exit %d %s", code, errs)
	}
	b, err := os.ReadFile(filepath.Join(dir, "infohashes.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	// One random sample of 20 per node overlaps (about 70 distinct);
	// eight per node give nearly all 120, not surely every one.
	if got := strings.Count(string(b), "\n"); got < 100 {
		t.Errorf("%d infohashes exported, want nearly all 120", got)
	}
	b, _ = os.ReadFile(filepath.Join(dir, "nodes.jsonl"))
	if !regexp.MustCompile(`"sample_queries":[2-8]\b`).Match(b) {
		t.Errorf("no node sampled more than once:\n%s", b)
	}
}
