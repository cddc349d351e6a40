package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	osexec "os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/dhtkit/dhtkit"
	"github.com/dhtkit/dhtkit/httpapi"
	"github.com/dhtkit/dhtkit/id"
)

// apiNode serves nodes[i]'s HTTP API on a free port and returns its
// HOST:PORT.
func apiNode(t *testing.T, i int) string {
	t.Helper()
	nodes := testNetwork(t, 4)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	url, err := serveHTTP(ctx, "127.0.0.1:0", nodes[i], httpapi.Options{}, nodes[i].Logger())
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSuffix(strings.TrimPrefix(url, "http://"), "/")
}

// TestVersion: `dhtkit version`, `--json` and `--version` (issue 14).
func TestVersion(t *testing.T) {
	code, out, errs := dhtkitCmd(t, "version")
	if code != 0 || !strings.HasPrefix(out, "dhtkit ") || !strings.Contains(out, " commit ") || !strings.Contains(out, " go1.") {
		t.Fatalf("version: exit %d, %q, %q", code, out, errs)
	}
	code, flagOut, _ := dhtkitCmd(t, "--version")
	if code != 0 || flagOut != out {
		t.Errorf("--version: exit %d, %q; want %q", code, flagOut, out)
	}
	code, out, _ = dhtkitCmd(t, "version", "--json")
	var v version
	if err := json.Unmarshal([]byte(out), &v); code != 0 || err != nil || v.Version == "" || !strings.HasPrefix(v.Go, "go1.") {
		t.Fatalf("version --json: exit %d, %q: %v", code, out, err)
	}
	// The commit comes from the vcs settings the go command records.
	bi := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
		{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: "435a751c0ffee"},
		{Key: "vcs.time", Value: "2026-12-05T10:00:00Z"}, {Key: "vcs.modified", Value: "true"}}}
	if got, want := versionOf(bi).String(), "(devel) commit 435a751c0ffee (modified) 2026-12-05T10:00:00Z go1.26.8"; got != want {
		t.Errorf("version of a modified clone: %q, want %q", got, want)
	}
	// A binary built from a clone names its commit, when the go command
	// stamps it (GOFLAGS=-buildvcs=false or a linked git worktree do not).
	if testing.Short() {
		return
	}
	bin := filepath.Join(t.TempDir(), "dhtkit")
	if _, err := runOut("go", "build", "-buildvcs=true", "-o", bin, "."); err != nil {
		t.Skipf("go build -buildvcs=true: %v (needs git and a clone)", err)
	}
	if m, err := runOut("go", "version", "-m", bin); err != nil || !bytes.Contains(m, []byte("vcs.revision=")) {
		t.Skipf("this build records no commit (%v): a linked worktree or GOFLAGS=-buildvcs=false", err)
	}
	b, err := runOut(bin, "version", "--json")
	if err != nil {
		t.Fatalf("dhtkit version: %v %s", err, b)
	}
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	if head, err := runOut("git", "rev-parse", "HEAD"); err == nil && v.Commit != strings.TrimSpace(string(head)) {
		t.Errorf("version of a build from a clone: commit %q, want %s", v.Commit, head)
	}
}

// TestDataJSONAndAPIForms: --json on the data commands; --api as
// HOST:PORT, and a list whose first endpoint is dead (failover); errors
// that name the operation once, on the CLI and in the HTTP API's body.
func TestDataJSONAndAPIForms(t *testing.T) {
	hostport := apiNode(t, 1)
	run := func(api string, args ...string) (int, string, string) {
		t.Helper()
		return dhtkitCmd(t, append(args, "--api", api)...)
	}
	code, out, errs := run(hostport, "put", "j", "v1", "--json", "--ttl", "1h")
	var p struct{ Key, Version, Expires string }
	if err := json.Unmarshal([]byte(out), &p); code != 0 || err != nil || p.Key != "j" || len(p.Version) != 32 || p.Expires == "" {
		t.Fatalf("put --json through HOST:PORT: exit %d, %q, %q", code, out, errs)
	}
	dead := "127.0.0.1:1"
	code, out, errs = run(dead+","+hostport, "get", "j", "--json")
	var g getJSON
	if err := json.Unmarshal([]byte(out), &g); code != 0 || err != nil || g.Version != p.Version || g.Text == nil || *g.Text != "v1" || string(g.Value) != "v1" || g.Size != 2 {
		t.Fatalf("get --json through a list with a dead first endpoint: exit %d, %q, %q", code, out, errs)
	}
	code, out, _ = run("http://"+hostport+"/", "del", "j", "--json")
	if code != 0 || strings.TrimSpace(out) != `{"key":"j","deleted":true}` {
		t.Fatalf("del --json: exit %d, %q", code, out)
	}
	for _, args := range [][]string{{"get", "missing-go"}, {"whereis", "missing-go"}, {"get", "missing-go", "--json"}} {
		code, _, errs = run(hostport, args...)
		if code != exitNotFound || strings.Count(errs, "dhtkit") != 1 || strings.Count(errs, "missing-go") != 1 {
			t.Errorf("%v: exit %d, %q; want 3 and one line naming the key once", args, code, errs)
		}
	}
	resp, err := http.Get("http://" + hostport + "/v1/keys/nope")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var e struct{ Error string }
	if json.Unmarshal(b, &e); resp.StatusCode != 404 || strings.Count(e.Error, "get") != 1 || strings.Count(e.Error, "dhtkit") > 1 {
		t.Errorf("GET of a missing key: %d %s; want 404 naming get once", resp.StatusCode, b)
	}
}

// TestInterrupted: a get --out, a put --file and a listen that a signal
// stops exit 128+signal with one line that says so, and get leaves no
// partial --out file (issue 14). The node is a stand-in that sends half
// a value and then waits, so that the signal surely comes mid-transfer.
func TestInterrupted(t *testing.T) {
	started := make(chan struct{}, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/v1/keys/"):
			w.Header().Set("Content-Length", "10000000")
			w.Write(bytes.Repeat([]byte("x"), 1<<20))
		case r.Method == http.MethodPut:
			// The whole body, then no answer: the put waits for its
			// acknowledgment when the signal comes.
			io.Copy(io.Discard, r.Body)
		case strings.HasPrefix(r.URL.Path, "/v1/watch/"):
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprintf(w, "event: value\ndata: {\"version\":\"01\",\"text\":\"v\"}\n\n")
		}
		w.(http.Flusher).Flush()
		started <- struct{}{}
		<-r.Context().Done()
	}))
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, make([]byte, 8<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		sig  syscall.Signal
		code int
		args []string
	}{
		{syscall.SIGINT, 130, []string{"get", "k", "--out", filepath.Join(dir, "out")}},
		{syscall.SIGTERM, 143, []string{"get", "k", "--out", filepath.Join(dir, "out")}},
		{syscall.SIGINT, 130, []string{"put", "k", "--file", big}},
		{syscall.SIGTERM, 143, []string{"listen", "k"}},
	} {
		t.Run(strings.Join(tt.args[:2], " ")+" "+signalName(tt.sig), func(t *testing.T) {
			ctx, cancel := context.WithCancelCause(context.Background())
			defer cancel(nil)
			var stdout, stderr bytes.Buffer
			done := make(chan int)
			go func() { done <- run(ctx, append(tt.args, "--api", srv.URL), &stdout, &stderr) }()
			select {
			case <-started:
			case code := <-done:
				t.Fatalf("exit %d before the transfer started: %s", code, stderr.String())
			}
			cancel(interrupted{tt.sig})
			code := <-done
			want := fmt.Sprintf("dhtkit: %s interrupted by %s\n", tt.args[0], signalName(tt.sig))
			if code != tt.code || stderr.String() != want {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, stderr.String(), tt.code, want)
			}
			left, _ := filepath.Glob(filepath.Join(dir, "*out*"))
			if len(left) > 0 {
				t.Errorf("an interrupted get left %v", left)
			}
		})
	}
}

// TestListenNodeStops: listen says so and exits 1 when its node ends the
// stream, instead of exiting 0 in silence (issue 14).
func TestListenNodeStops(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprintf(w, "event: value\ndata: {\"version\":\"01\",\"text\":\"v\"}\n\n")
	}))
	t.Cleanup(srv.Close)
	code, out, errs := dhtkitCmd(t, "listen", "k", "--api", srv.URL)
	if code != exitFailure || out != "01 v\n" || !strings.Contains(errs, "stopped") || strings.Count(errs, "\n") != 1 {
		t.Fatalf("listen whose node stops: exit %d, stdout %q, stderr %q", code, out, errs)
	}
}

// TestTerminal: on a terminal, a large put --file and get --out draw
// progress on stderr, get ends the value's line, and put without a value
// says it reads standard input; off a terminal, none of it (issue 14).
func TestTerminal(t *testing.T) {
	hostport := apiNode(t, 2)
	dir := t.TempDir()
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, bytes.Repeat([]byte("0123456789"), 600<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, term := range []bool{false, true} {
		termCheck = func(any) bool { return term }
		code, _, errs := dhtkitCmd(t, "put", "big", "--file", big, "--api", hostport)
		if code != 0 || strings.Contains(errs, "100%") != term {
			t.Errorf("terminal %v: put --file of 6 MB: exit %d, stderr %q", term, code, errs)
		}
		out := filepath.Join(dir, "copy")
		code, _, errs = dhtkitCmd(t, "get", "big", "--out", out, "--api", hostport)
		if code != 0 || strings.Contains(errs, "MiB") != term {
			t.Errorf("terminal %v: get --out of 6 MB: exit %d, stderr %q", term, code, errs)
		}
		if a, b := fileBytes(t, big), fileBytes(t, out); !bytes.Equal(a, b) {
			t.Errorf("get --out wrote %d bytes, want the %d put", len(b), len(a))
		}
		dhtkitCmd(t, "put", "short", "no newline", "--api", hostport)
		code, got, _ := dhtkitCmd(t, "get", "short", "--api", hostport)
		if want := map[bool]string{false: "no newline", true: "no newline\n"}[term]; code != 0 || got != want {
			t.Errorf("terminal %v: get: %q, want %q", term, got, want)
		}
	}
	termCheck = isTerminal
}

func fileBytes(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// exec runs a program and returns its standard output.
func runOut(name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	return osexec.CommandContext(ctx, name, args...).Output()
}

// TestKeysAndMembers: `dhtkit keys` lists the keys of the whole network,
// not only the node's own store, by prefix and in pages; `dhtkit members`
// lists the nodes the node knows with their state.
func TestKeysAndMembers(t *testing.T) {
	nodes := testNetwork(t, 8)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	url, err := serveHTTP(ctx, "127.0.0.1:0", nodes[0], httpapi.Options{}, nodes[0].Logger())
	if err != nil {
		t.Fatal(err)
	}
	api := "--api=" + strings.TrimSuffix(url, "/")
	// Written through other nodes: with 3 replicas of 8, node 0 holds
	// only some of them.
	var want []string
	for i := range 60 {
		k := fmt.Sprintf("fruit/%02d", i)
		if i%3 == 0 {
			k = fmt.Sprintf("veg/%02d", i)
		}
		if _, err := nodes[1+i%7].Put(ctx, k, []byte("v"), dhtkit.PutOptions{}); err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(k, "fruit/") {
			want = append(want, k)
		}
	}
	if err := nodes[2].Delete(ctx, "fruit/01"); err != nil {
		t.Fatal(err)
	}
	want = slices.DeleteFunc(want, func(k string) bool { return k == "fruit/01" })
	local := 0
	for _, r := range nodes[0].Local() {
		if strings.HasPrefix(r.Key, "fruit/") && !r.Deleted {
			local++
		}
	}
	if local == len(want) {
		t.Fatalf("node 0 holds all %d keys itself: the test shows nothing", local)
	}
	code, out, errs := dhtkitCmd(t, "keys", "fruit/", api)
	if got := strings.Fields(out); code != 0 || strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("keys fruit/: exit %d, %d keys (node 0 holds %d), want %d\n%s\nstderr %s", code, len(got), local, len(want), out, errs)
	}
	// Pages of 10, each naming the next.
	var paged []string
	after := ""
	for page := 0; page < 10; page++ {
		code, out, errs = dhtkitCmd(t, "keys", "fruit/", "--limit", "10", "--after", after, "--json", api)
		var p struct {
			Keys     []string
			More     bool
			Next     string
			Asked    int
			Answered int
			Partial  bool
		}
		if err := json.Unmarshal([]byte(out), &p); code != 0 || err != nil || len(p.Keys) > 10 || p.Asked != 8 || p.Partial {
			t.Fatalf("keys --limit 10 --json: exit %d, %q, %v, %s", code, out, err, errs)
		}
		paged = append(paged, p.Keys...)
		if !p.More {
			break
		}
		after = p.Next
	}
	if strings.Join(paged, " ") != strings.Join(want, " ") {
		t.Errorf("keys in pages of 10: %v, want %v", paged, want)
	}
	code, out, errs = dhtkitCmd(t, "members", api)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) < 2 || !strings.Contains(lines[0], nodes[0].ID().String()+" self") || !strings.Contains(out, " good ") {
		t.Fatalf("members: exit %d\n%s\nstderr %s", code, out, errs)
	}
	for _, n := range nodes[1:2] {
		if !strings.Contains(out, n.Addr().String()+" "+n.ID().String()+" ") {
			t.Errorf("members lacks %v (node 1, its bootstrap contact):\n%s", n.Addr(), out)
		}
	}
}

// TestKeysScale lists the keys of a 5-node network page by page: 1,000
// keys by default, 100,000 with DHTKIT_KEYS_SCALE=1 (slow: the puts).
func TestKeysScale(t *testing.T) {
	total := 1000
	if os.Getenv("DHTKIT_KEYS_SCALE") != "" {
		total = 100000
	}
	nodes := testNetwork(t, 5)
	ctx := context.Background()
	errs := make(chan error, total)
	sem := make(chan struct{}, 32)
	for i := range total {
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			var err error
			for try := 0; try < 5; try++ { // on a busy machine a quorum can time out: write again
				if _, err = nodes[(i+try)%5].Put(ctx, fmt.Sprintf("k/%06d", i), []byte("v"), dhtkit.PutOptions{}); err == nil {
					break
				}
			}
			errs <- err
		}()
	}
	for range total {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	seen, after, pages := 0, "", 0
	for {
		list, err := nodes[0].Keys(ctx, dhtkit.KeysOptions{Prefix: "k/", After: after, Limit: dhtkit.MaxKeysLimit})
		if err != nil || list.Partial || list.Answered != 5 {
			t.Fatalf("page %d: %d of %d nodes answered, partial %v, %v", pages, list.Answered, list.Asked, list.Partial, err)
		}
		for _, k := range list.Keys {
			if want := fmt.Sprintf("k/%06d", seen); k != want {
				t.Fatalf("key %d is %q, want %q", seen, k, want)
			}
			seen++
		}
		pages++
		if !list.More {
			break
		}
		after = list.Keys[len(list.Keys)-1]
	}
	if seen != total {
		t.Fatalf("listed %d keys, want %d", seen, total)
	}
	t.Logf("%d keys on 5 nodes listed in %d pages in %v", total, pages, time.Since(start).Round(time.Millisecond))
}

// TestContractNamesEveryCommand: every command of the binary is in
// docs/contract.md or README.md, so that the contract stays current.
func TestContractNamesEveryCommand(t *testing.T) {
	var docs []byte
	for _, f := range []string{"../../docs/contract.md", "../../README.md"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, b...)
	}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			if sub.Hidden || sub.Name() == "help" || sub.Name() == "completion" {
				continue
			}
			if name := sub.CommandPath(); !bytes.Contains(docs, []byte(name)) {
				t.Errorf("%q is in neither docs/contract.md nor README.md", name)
			}
			walk(sub)
		}
	}
	walk(newRoot(&globals{}))
}

// TestHelpNamesNoArgumentForBooleans: a backquoted word in a flag's usage
// becomes its argument's name in --help, so `--sign dhtkit key` looked
// as if the boolean took one (issue 14). No usage has backquotes; data
// commands do not list the protocol flags they ignore; lookup and ping
// say what --api and --bootstrap do for them.
func TestHelpNamesNoArgumentForBooleans(t *testing.T) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		check := func(f *pflag.Flag) {
			if name, _ := pflag.UnquoteUsage(f); strings.Contains(f.Usage, "`") || (f.Value.Type() == "bool" && name != "") {
				t.Errorf("%s --%s: --help shows it as taking %q: %q", c.CommandPath(), f.Name, name, f.Usage)
			}
		}
		c.LocalFlags().VisitAll(check)
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(newRoot(&globals{}))
	_, out, _ := dhtkitCmd(t, "put", "--help")
	if strings.Contains(out, "--sign dhtkit") || strings.Contains(out, "--bootstrap") || strings.Contains(out, "--timeout") || !strings.Contains(out, "--api") {
		t.Errorf("put --help lists flags it does not use, or a boolean with an argument:\n%s", out)
	}
	// Hiding them in one command's help hides them nowhere else.
	if _, out, _ := dhtkitCmd(t, "lookup", "--help"); !strings.Contains(out, "--bootstrap") || !strings.Contains(out, "without it, it asks the\nrunning node at --api") {
		t.Errorf("lookup --help does not explain --bootstrap and --api:\n%s", out)
	}
	if _, out, _ := dhtkitCmd(t, "ping", "--help"); !strings.Contains(out, "neither --api nor --bootstrap") {
		t.Errorf("ping --help does not say what it uses:\n%s", out)
	}
}

// TestStatusIsReadable: bytes as an integer with a unit, and a key count
// that says it includes the chunks of large values (issue 14).
func TestStatusIsReadable(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 1023: "1023", 27224117: "27224117 (26.0 MiB)", 5 << 30: "5368709120 (5.0 GiB)", 2048: "2048 (2.0 KiB)"} {
		if got := byteCount(n); got != want {
			t.Errorf("byteCount(%d) = %q, want %q", n, got, want)
		}
	}
	hostport := apiNode(t, 3)
	big := bytes.Repeat([]byte("z"), 100<<10) // chunks
	path := filepath.Join(t.TempDir(), "big")
	os.WriteFile(path, big, 0o644)
	dhtkitCmd(t, "put", "big", "--file", path, "--api", hostport)
	code, out, errs := dhtkitCmd(t, "status", "--api", hostport)
	if code != 0 || strings.Contains(out, "e+") {
		t.Fatalf("status: exit %d\n%s%s", code, out, errs)
	}
	var keys string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "keys ") {
			keys = l
		}
	}
	_, js, _ := dhtkitCmd(t, "status", "--json", "--api", hostport)
	var st struct {
		Store struct {
			Keys  int
			Bytes int64
		}
	}
	if err := json.Unmarshal([]byte(js), &st); err != nil {
		t.Fatalf("status --json: %s %v", js, err)
	}
	if want := "bytes     " + byteCount(st.Store.Bytes) + "\n"; !strings.Contains(out, want) {
		t.Errorf("status: no %q in\n%s", want, out)
	}
	if want := fmt.Sprintf("keys      %d (values and the chunks of large ones)", st.Store.Keys); keys != want {
		t.Errorf("status after a chunked put: %q, want %q", keys, want)
	}
}

// TestPeersInANetworkOfTwo: a peer announced in a network of two nodes is
// found from the other node (issue 14: demo --nodes 2 failed at step 4;
// each node's lookup reaches only the other, which stored the peer at
// the node that then looks it up).
func TestPeersInANetworkOfTwo(t *testing.T) {
	nodes := testNetwork(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ih := id.FromString("two nodes")
	if err := nodes[0].Announce(ctx, ih, 4242); err != nil {
		t.Fatal(err)
	}
	peers, err := nodes[1].GetPeers(ctx, ih)
	want := netip.AddrPortFrom(nodes[0].Addr().Addr(), 4242)
	if err != nil || !slices.Contains(peers, want) {
		t.Fatalf("get_peers from the other node: %v, %v; want %v", peers, err, want)
	}
}

// TestPutFileFromAPipe: `put --file <(cmd)` (a FIFO, whose size is 0
// whatever it holds) stores what the pipe carries, not an empty value.
func TestPutFileFromAPipe(t *testing.T) {
	hostport := apiNode(t, 1)
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("no FIFO here: %v", err)
	}
	want := bytes.Repeat([]byte("through a pipe "), 4000) // 60 KB: chunked
	go func() {
		f, err := os.OpenFile(fifo, os.O_WRONLY, 0)
		if err != nil {
			return // the put failed to open it, and says so
		}
		f.Write(want)
		f.Close()
	}()
	if code, _, errs := dhtkitCmd(t, "put", "piped", "--file", fifo, "--api", hostport); code != 0 {
		t.Fatalf("put --file FIFO: exit %d: %s", code, errs)
	}
	code, out, errs := dhtkitCmd(t, "get", "piped", "--api", hostport)
	if code != 0 || out != string(want) {
		t.Fatalf("get of the piped value: exit %d, %d bytes (want %d): %s", code, len(out), len(want), errs)
	}
}
