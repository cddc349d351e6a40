package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/dhtkit/dhtkit"
	"github.com/dhtkit/dhtkit/chord"
	"github.com/dhtkit/dhtkit/httpapi"
	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/kademlia"
	"github.com/dhtkit/dhtkit/routing"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// dhtkitCmd runs the command line in-process.
func dhtkitCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

// testNetwork starts n nodes of the default network on 127.0.0.1, joined.
func testNetwork(t *testing.T, n int) []*dhtkit.Node {
	t.Helper()
	kc := kademlia.DefaultConfig()
	kc.TrustLoopback = true // every node shares 127.0.0.1
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	nodes := make([]*dhtkit.Node, n)
	// Generous: on a busy machine 200 joins take far longer than on an
	// idle one, and a join that times out fails the test for nothing.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for i := range nodes {
		node, err := dhtkit.Listen(ctx, dhtkit.Config{Listen: "127.0.0.1:0", Kademlia: kc, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { node.Close() })
		nodes[i] = node
		if i > 0 {
			if err := node.Bootstrap(ctx, nodes[0].Addr()); err != nil {
				t.Fatal(err)
			}
		}
	}
	return nodes
}

func TestDemoOnce(t *testing.T) {
	code, out, errs := dhtkitCmd(t, "demo", "--nodes", "20", "--once", "--http-port", "0")
	if code != 0 || !strings.Contains(out, "every step succeeded") {
		t.Fatalf("demo --once: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	for _, step := range []string{"1. started 20 nodes", "web UI: http://127.0.0.1:", "2. bootstrap: 20/20", "3. lookups:",
		"4. announce + get_peers", "5. put hello=world", "6. a 1 MiB value", "7. whereis hello: 3 replicas", "8. delete hello",
		"9. node http://"} {
		if !strings.Contains(out, step) {
			t.Errorf("demo output lacks %q:\n%s", step, out)
		}
	}
}

// TestDemoOfTwo: the smallest demo has no third node to delete through
// and none to leave; it still finishes (it once looped forever at step 8).
func TestDemoOfTwo(t *testing.T) {
	code, out, errs := dhtkitCmd(t, "demo", "--nodes", "2", "--once", "--http-port", "0")
	if code != 0 || !strings.Contains(out, "8. delete hello") || !strings.Contains(out, "every step succeeded") {
		t.Fatalf("demo --nodes 2 --once: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
}

func TestProtocolCommands(t *testing.T) {
	nodes := testNetwork(t, 12)
	boot := "--bootstrap=" + nodes[3].Addr().String()

	code, out, errs := dhtkitCmd(t, "ping", nodes[0].Addr().String())
	if code != 0 || strings.TrimSpace(out) != nodes[0].ID().String() {
		t.Fatalf("ping: exit %d, stdout %q, want %v; stderr %s", code, out, nodes[0].ID(), errs)
	}

	target := nodes[7].ID()
	code, out, errs = dhtkitCmd(t, "lookup", target.String(), boot)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 8 {
		t.Fatalf("lookup: exit %d, %d lines, want 0 and 8\nstdout:\n%s\nstderr:\n%s", code, len(lines), out, errs)
	}
	if want := nodes[7].Addr().String() + " " + target.String(); lines[0] != want {
		t.Errorf("lookup of a node's id: first line %q, want %q", lines[0], want)
	}

	ih := id.FromString("cli announce").String()
	code, out, errs = dhtkitCmd(t, "announce", ih, "--port", "5555", boot)
	if code != 0 || !strings.HasPrefix(out, "announced "+ih+" port 5555 to ") {
		t.Fatalf("announce: exit %d, stdout %q, stderr %s", code, out, errs)
	}
	code, out, errs = dhtkitCmd(t, "get-peers", ih, boot)
	peer := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), 5555).String()
	if code != 0 || !strings.Contains(out, peer) {
		t.Fatalf("get-peers: exit %d, stdout %q, want %s; stderr %s", code, out, peer, errs)
	}
	code, _, errs = dhtkitCmd(t, "get-peers", id.FromString("nobody").String(), boot)
	if code != exitNotFound || !strings.Contains(errs, "no peers found") {
		t.Fatalf("get-peers of an unknown infohash: exit %d, stderr %q; want 3", code, errs)
	}

	code, out, errs = dhtkitCmd(t, "crawl", "--json", "--duration", "20s", boot)
	var rep crawlReport
	if code != 0 {
		t.Fatalf("crawl: exit %d, stderr %s", code, errs)
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("crawl --json printed %q: %v", out, err)
	}
	// The announcing client joined too: it is seen, but gone.
	if rep.NodesSeen < len(nodes) || rep.NodesResponded != len(nodes) || rep.SampledNodes != len(nodes) {
		t.Errorf("crawl of %d nodes: %+v", len(nodes), rep)
	}
	if rep.Infohashes < 1 {
		t.Errorf("crawl sampled no infohash, but one was announced: %+v", rep)
	}
}

func TestErrors(t *testing.T) {
	dead := testNetwork(t, 1)[0]
	deadAddr := dead.Addr().String()
	dead.Close()
	tests := []struct {
		args []string
		code int
		msg  string // in stderr
	}{
		{[]string{"ping"}, exitUsage, "ping wants one HOST:PORT"},
		{[]string{"ping", "nonsense"}, exitUsage, "nonsense"},
		{[]string{"ping", "--timeout", "300ms", deadAddr}, exitFailure, "no answer from"},
		{[]string{"lookup", "abc", "--api", "http://127.0.0.1:1"}, exitFailure, "no dhtkit node answers"},
		{[]string{"get", "k", "--api", "http://127.0.0.1:1"}, exitFailure, "start one with `dhtkit node`"},
		{[]string{"put", "k", "v", "--encrypt-to", "xyz", "--api", "http://127.0.0.1:1"}, exitUsage, "--encrypt-to"},
		{[]string{"item", "put", "v", "--seed", "xyz"}, exitUsage, "64 hex digits"},
		{[]string{"item", "get"}, exitUsage, "TARGET or --pubkey"},
		{[]string{"get-peers", "xyz", "--bootstrap", "127.0.0.1:1"}, exitUsage, "want 40 hex digits"},
		{[]string{"announce", id.FromString("a").String(), "--bootstrap", "127.0.0.1:1"}, exitUsage, "--port"},
		{[]string{"lookup", "abc", "--timeout", "300ms", "--bootstrap", deadAddr}, exitFailure, "no node answered"},
		{[]string{"node", "--protocol", "chord", "--network", "mainline"}, exitUsage, "cannot join --network mainline"},
		{[]string{"node", "--protocol", "pastry"}, exitUsage, "want kademlia or chord"},
		{[]string{"node", "--no-such-flag"}, exitUsage, "unknown flag"},
		{[]string{"node", "--bootstrap", "none,127.0.0.1:1"}, exitUsage, "--bootstrap none stands alone"},
		{[]string{"frobnicate"}, exitUsage, "unknown command"},
		{[]string{"demo", "--nodes", "1"}, exitUsage, "at least 2"},
		{[]string{"ping", "--log-level", "loud", "127.0.0.1:1"}, exitUsage, "--log-level"},
		// Issue 14: usage errors agree (exit 2, one line, a hint that
		// names the command), empty keys and out-of-range numbers included.
		{[]string{"frobnicate"}, exitUsage, "(see dhtkit --help)"},
		{[]string{"node", "--no-such-flag"}, exitUsage, "(see dhtkit node --help)"},
		{[]string{"--version", "--no-such-flag"}, exitUsage, "(see dhtkit --help)"},
		{[]string{"put"}, exitUsage, "put wants KEY and an optional VALUE (see dhtkit put --help)"},
		{[]string{"put", "k", "v", "w"}, exitUsage, "see dhtkit put --help"},
		{[]string{"get"}, exitUsage, "get wants one KEY (see dhtkit get --help)"},
		{[]string{"item", "put"}, exitUsage, "see dhtkit item put --help"},
		{[]string{"put", "", "v", "--api", "http://127.0.0.1:1"}, exitUsage, "KEY must not be empty"},
		{[]string{"get", "", "--api", "http://127.0.0.1:1"}, exitUsage, "KEY must not be empty"},
		{[]string{"del", "", "--api", "http://127.0.0.1:1"}, exitUsage, "KEY must not be empty"},
		{[]string{"whereis", "", "--api", "http://127.0.0.1:1"}, exitUsage, "KEY must not be empty"},
		{[]string{"listen", "", "--api", "http://127.0.0.1:1"}, exitUsage, "KEY must not be empty"},
		{[]string{"put", "k", "v", "--ttl", "-5s"}, exitUsage, "--ttl -5s: want a positive duration"},
		{[]string{"put", "k", "v", "--ttl", "0"}, exitUsage, "--ttl 0s: want a positive duration"},
		{[]string{"node", "--replicas", "0"}, exitUsage, "--replicas 0"},
		{[]string{"node", "--replicas", "-3"}, exitUsage, "--replicas -3"},
		{[]string{"node", "--max-bytes", "-1"}, exitUsage, "--max-bytes -1"},
		{[]string{"node", "--max-per-source", "0"}, exitUsage, "--max-per-source 0"},
		{[]string{"crawl", "--duration", "0s"}, exitUsage, "--duration 0s"},
		{[]string{"crawl", "--parallel", "0"}, exitUsage, "--parallel 0"},
		{[]string{"ping", "--timeout", "-1s", "127.0.0.1:1"}, exitUsage, "--timeout -1s"},
		{[]string{"announce", id.FromString("a").String(), "--port", "70000"}, exitUsage, "--port 70000"},
		{[]string{"demo", "--http-port", "-2"}, exitUsage, "--http-port -2"},
		{[]string{"sim", "--loss", "1.5"}, exitUsage, "--loss 1.5"},
		{[]string{"sim", "--nodes", "0"}, exitUsage, "--nodes 0"},
		{[]string{"item", "put", "v", "--seq", "-1"}, exitUsage, "--seq -1"},
		{[]string{"get", "k", "--api", "ftp://x"}, exitUsage, "--api"},
		{[]string{"get", "k", "--api", ""}, exitUsage, "--api is empty"},
		{[]string{"get", "k", "--json", "--out", "f"}, exitUsage, "--json or --out"},
		// Several endpoints, none answering: all are named.
		{[]string{"get", "k", "--api", "127.0.0.1:1,http://127.0.0.1:2"}, exitFailure, "no dhtkit node answers at http://127.0.0.1:1, http://127.0.0.1:2"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, _, errs := dhtkitCmd(t, tt.args...)
			if code != tt.code || !strings.Contains(errs, tt.msg) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", code, errs, tt.code, tt.msg)
			}
			if n := strings.Count(errs, "\n"); n != 1 || strings.Contains(errs, "goroutine") {
				t.Errorf("stderr is not one line: %q", errs)
			}
			if n := strings.Count(errs, "dhtkit:"); n != 1 || strings.Contains(errs, "dhtkit dhtkit") {
				t.Errorf("stderr does not say dhtkit: exactly once: %q", errs)
			}
		})
	}
}

// TestNodeCommand runs `dhtkit node` in-process, pings it, and stops it
// the way SIGINT does, by canceling its context.
func TestNodeCommand(t *testing.T) {
	for _, tt := range []struct {
		protocol string
		ping     []string // the ping command's flags: a Chord node has a network of its own
	}{
		{"kademlia", nil},
		{"chord", []string{"--network", chord.DefaultNetwork}},
	} {
		t.Run(tt.protocol, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			pr, pw := io.Pipe()
			done := make(chan int)
			go func() {
				done <- run(ctx, []string{"node", "--protocol", tt.protocol, "--listen", "127.0.0.1:0", "--http", "off", "--log-level", "warn"}, pw, io.Discard)
				pw.Close()
			}()
			line, err := bufio.NewReader(pr).ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			f := strings.Fields(line)
			if len(f) < 5 || f[0] != "node" || f[2] != "listening" || !strings.Contains(line, "protocol "+tt.protocol) {
				t.Fatalf("node printed %q", line)
			}
			nodeID, addr := f[1], f[4]
			go io.Copy(io.Discard, pr)
			code, out, errs := dhtkitCmd(t, append([]string{"ping", addr}, tt.ping...)...)
			if code != 0 || strings.TrimSpace(out) != nodeID {
				t.Errorf("ping of the node: exit %d, %q, want %s; %s", code, out, nodeID, errs)
			}
			cancel()
			if code := <-done; code != 0 {
				t.Fatalf("node exited %d after cancel, want 0", code)
			}
		})
	}
}

// TestBinarySIGINT builds the binary and checks that SIGINT stops a node
// with status 0.
func TestBinarySIGINT(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "dhtkit")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "node", "--listen", "127.0.0.1:0", "--http", "off")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := bufio.NewReader(stdout).ReadString('\n'); err != nil {
		cmd.Process.Kill()
		t.Fatalf("no start line: %v; stderr %s", err, stderr.String())
	}
	cmd.Process.Signal(syscall.SIGINT)
	errc := make(chan error, 1)
	go func() { errc <- cmd.Wait() }()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("node after SIGINT: %v; stderr %s", err, stderr.String())
		}
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-errc
		t.Fatal("node did not stop within 10s of SIGINT")
	}
	_ = os.Remove(bin)
}

// TestCrawlFindsTheNetwork crawls a 200-node loopback network from one
// bootstrap node: it must find at least 95% of the nodes (issue 5).
func TestCrawlFindsTheNetwork(t *testing.T) {
	if testing.Short() {
		t.Skip("200 nodes: skipped with -short")
	}
	nodes := testNetwork(t, 200)
	waitConnected(t, nodes, 117, 2*time.Minute)
	code, out, errs := dhtkitCmd(t, "crawl", "--json", "--duration", "2m", "--bootstrap="+nodes[117].Addr().String())
	if code != 0 {
		t.Fatalf("crawl: exit %d, stderr %s", code, errs)
	}
	var rep crawlReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("crawl --json printed %q: %v", out, err)
	}
	t.Logf("crawl of 200 nodes: %d seen, %d answered, %d lookups, %.1fs", rep.NodesSeen, rep.NodesResponded, rep.Lookups, rep.Seconds)
	if rep.NodesResponded < 190 {
		t.Errorf("crawl found %d of 200 nodes, want at least 95%%", rep.NodesResponded)
	}
}

// waitConnected waits until every node can be reached from nodes[from]
// by following routing-table contacts: the network a crawl starting
// there can find. On a busy machine a joining node's queries can time out
// and leave it outside every table it can be reached through; such a node
// joins again (through a reachable node), as a real node's refresh would
// make it do, until the condition holds or timeout passes.
func waitConnected(t *testing.T, nodes []*dhtkit.Node, from int, timeout time.Duration) {
	t.Helper()
	byID := make(map[id.ID]*dhtkit.Node, len(nodes))
	for _, n := range nodes {
		byID[n.ID()] = n
	}
	deadline := time.Now().Add(timeout)
	for rounds := 0; ; rounds++ {
		reached := map[id.ID]bool{nodes[from].ID(): true}
		queue := []*dhtkit.Node{nodes[from]}
		for len(queue) > 0 {
			n := queue[0]
			queue = queue[1:]
			for _, b := range n.Routing() {
				for _, c := range b.Contacts {
					if m, ok := byID[c.ID]; ok && !reached[c.ID] && c.State != routing.Bad {
						reached[c.ID] = true
						queue = append(queue, m)
					}
				}
			}
		}
		var lost []*dhtkit.Node
		for _, n := range nodes {
			if !reached[n.ID()] {
				lost = append(lost, n)
			}
		}
		if len(lost) == 0 {
			if rounds > 0 {
				t.Logf("every node reachable after %d rejoin rounds", rounds)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d nodes still unreachable from node %d after %v", len(lost), len(nodes), from, timeout)
		}
		t.Logf("%d nodes unreachable from node %d: they join again", len(lost), from)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		for _, n := range lost {
			_ = n.Bootstrap(ctx, nodes[from].Addr()) // a failure is retried next round
		}
		cancel()
	}
}

// TestNodeStartSaysWhetherAlone: a node without --bootstrap says at start
// that it waits for others and how to join or run alone; --bootstrap none
// says it runs alone on purpose.
func TestNodeStartSaysWhetherAlone(t *testing.T) {
	for _, tt := range []struct {
		flags []string
		want  []string // in the second line of stdout
	}{
		{nil, []string{"no --bootstrap", "1 other node(s)", "--bootstrap none"}},
		{[]string{"--bootstrap", "none"}, []string{"alone on purpose"}},
	} {
		t.Run(strings.Join(append([]string{"node"}, tt.flags...), " "), func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			pr, pw := io.Pipe()
			done := make(chan int)
			go func() {
				args := append([]string{"node", "--listen", "127.0.0.1:0", "--http", "off", "--log-level", "warn"}, tt.flags...)
				done <- run(ctx, args, pw, io.Discard)
				pw.Close()
			}()
			r := bufio.NewReader(pr)
			if _, err := r.ReadString('\n'); err != nil {
				t.Fatal(err)
			}
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			go io.Copy(io.Discard, pr)
			for _, w := range tt.want {
				if !strings.Contains(line, w) {
					t.Errorf("start line %q lacks %q", line, w)
				}
			}
			cancel()
			if code := <-done; code != 0 {
				t.Fatalf("node exited %d after cancel, want 0", code)
			}
		})
	}
}

// network-key writes a 0600 key that a node accepts, refuses to overwrite
// it, and a node refuses a key file others can read, each in one line.
func TestNetworkKeyCommand(t *testing.T) {
	path := filepath.Join(t.TempDir(), "net.key")
	code, out, errs := dhtkitCmd(t, "network-key", path)
	if code != 0 || !strings.Contains(out, path) {
		t.Fatalf("network-key: exit %d, %q %q", code, out, errs)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, mode %v", err, st.Mode().Perm())
	}
	before, _ := os.ReadFile(path)
	code, _, errs = dhtkitCmd(t, "network-key", path)
	if code != exitFailure || strings.Count(errs, "\n") != 1 || !strings.Contains(errs, "never overwritten") {
		t.Fatalf("second network-key: exit %d, stderr %q", code, errs)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Fatal("the refused overwrite changed the key")
	}
	os.Chmod(path, 0o644)
	code, _, errs = dhtkitCmd(t, "node", "--listen", "127.0.0.1:0", "--http", "off", "--network-key", path)
	if code != exitFailure || strings.Count(errs, "\n") != 1 || !strings.Contains(errs, "chmod 600") {
		t.Fatalf("node with a world-readable key: exit %d, stderr %q", code, errs)
	}
}

// cliThrough serves n's HTTP API for the test and returns a runner of
// dhtkit commands against it, and the --api flag it adds.
func cliThrough(t *testing.T, n *dhtkit.Node) (run func(args ...string) (int, string, string), api string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	url, err := serveHTTP(ctx, "127.0.0.1:0", n, httpapi.Options{}, n.Logger())
	if err != nil {
		t.Fatal(err)
	}
	api = "--api=" + strings.TrimSuffix(url, "/")
	return func(args ...string) (int, string, string) {
		t.Helper()
		return dhtkitCmd(t, append(args, api)...)
	}, api
}
