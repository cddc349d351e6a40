package e2e

import (
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/fault"
)

var long = flag.Bool("long", os.Getenv("DHTKIT_E2E_LONG") != "", "store 50 MB files in the kill test")

// bin is the dhtkit binary TestMain builds.
var bin string

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		fmt.Println("e2e: skipped in -short mode")
		os.Exit(0)
	}
	dir, err := os.MkdirTemp("", "dhtkit-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "dhtkit")
	build := exec.Command("go", "build", "-o", bin, "github.com/dhtkit/dhtkit/cmd/dhtkit")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: building dhtkit:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// node is one `dhtkit node` process. Its addresses and data directory
// stay the same across restarts, so that a restart is the same command
// line, as an operator's service manager would run it.
type node struct {
	name      string
	udp, http string // 127.0.0.1:port
	data      string
	args      []string
	logPath   string

	// exec runs the command inside something (`ip netns exec NS`); hc
	// reaches its HTTP API there. Both are empty for a node on 127.0.0.1.
	exec []string
	hc   *http.Client

	cmd    *exec.Cmd
	exited chan struct{}
	err    error // the exit status, once exited is closed
	id     string
}

func (n *node) api() string { return "http://" + n.http }

// cluster runs the nodes of one test and stops them all at its end.
type cluster struct {
	t        testing.TB
	dir      string
	replicas int
	nodes    []*node
	hc       *http.Client
	// flags are added to every node's command line (--protocol chord,
	// --network-key FILE).
	flags []string
	// net, when set, puts each node in a network namespace of its own on
	// the fault switch (the fault suite's partitions, loss and delay).
	net *fault.Net
}

func newCluster(t testing.TB, replicas int) *cluster {
	c := &cluster{t: t, dir: t.TempDir(), replicas: replicas, hc: &http.Client{Timeout: 2 * time.Minute}}
	t.Cleanup(func() {
		for _, n := range c.nodes {
			if n.running() {
				n.cmd.Process.Kill()
				<-n.exited
			}
		}
		if t.Failed() {
			for _, n := range c.nodes {
				b, _ := os.ReadFile(n.logPath)
				if len(b) > 4000 {
					b = b[len(b)-4000:]
				}
				t.Logf("--- log tail of %s (%s)\n%s", n.name, n.udp, b)
			}
		}
	})
	return c
}

// freePort returns a port that is free on 127.0.0.1 for network ("tcp"
// or "udp") right now.
func freePort(t testing.TB, network string) int {
	t.Helper()
	for range 100 {
		p := anyPort(t, network)
		portsMu.Lock()
		taken := ports[p]
		ports[p] = true
		portsMu.Unlock()
		if !taken {
			return p
		}
	}
	t.Fatalf("no %s port free that this process has not handed out before", network)
	return 0
}

// ports are the ports freePort handed out in this process. The kernel
// hands a port back out once it is closed, but a node the tests killed
// gets its port back when it restarts: another test, running in
// parallel, that took it meanwhile would talk to the first test's nodes.
var (
	portsMu sync.Mutex
	ports   = map[int]bool{}
)

func anyPort(t testing.TB, network string) int {
	if network == "udp" {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		return pc.LocalAddr().(*net.UDPAddr).Port
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// add starts a new node that joins through the given nodes (none: it is
// the first). dataDir "" puts its data in a directory of its own.
func (c *cluster) add(dataDir string, bootstrap ...*node) *node {
	c.t.Helper()
	n := &node{name: fmt.Sprintf("n%d", len(c.nodes)), data: dataDir}
	if c.net != nil {
		// A namespace of its own: the same ports on every node, from the
		// fault suite's range.
		e, err := c.net.Add()
		if err != nil {
			c.t.Fatal(err)
		}
		n.udp, n.http = e.Addr.String()+":24001", "127.0.0.1:24080"
		n.exec, n.hc = e.Exec(), e.HTTP
	}
	if n.data == "" {
		n.data = filepath.Join(c.dir, n.name)
	}
	n.logPath = filepath.Join(c.dir, n.name+".log")
	var boot []string
	for _, b := range bootstrap {
		boot = append(boot, b.udp)
	}
	c.nodes = append(c.nodes, n)
	// A port freePort found free can be taken by another process before
	// the node binds it (tests run in parallel, and so do other people's):
	// a node that could not bind its ports starts again on fresh ones.
	for attempt := 1; ; attempt++ {
		if c.net == nil {
			n.udp = "127.0.0.1:" + strconv.Itoa(freePort(c.t, "udp"))
			n.http = "127.0.0.1:" + strconv.Itoa(freePort(c.t, "tcp"))
		}
		n.args = []string{"node", "--listen", n.udp, "--http", n.http, "--data", n.data,
			"--replicas", strconv.Itoa(c.replicas), "--trust-loopback"} // every node shares 127.0.0.1
		n.args = append(n.args, c.flags...)
		if len(boot) > 0 {
			n.args = append(n.args, "--bootstrap", strings.Join(boot, ","))
		}
		err := c.launch(n)
		if err == nil {
			return n
		}
		if c.net != nil || attempt == 5 || !errors.Is(err, errPortTaken) {
			c.t.Fatal(err)
		}
		c.t.Logf("%v; starting it again on other ports", err)
	}
}

// errPortTaken: a node exited at start because its address was in use.
var errPortTaken = errors.New("address already in use")

// start runs n's command line and waits until its HTTP API answers.
func (c *cluster) start(n *node) {
	c.t.Helper()
	if err := c.launch(n); err != nil {
		c.t.Fatal(err)
	}
}

// launch is start that returns its error; one wrapping errPortTaken when
// the node could not bind its ports.
func (c *cluster) launch(n *node) error {
	logf, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	var from int64 // where this start's lines begin in the log
	if fi, err := logf.Stat(); err == nil {
		from = fi.Size()
	}
	fmt.Fprintf(logf, "=== %s %s\n", bin, strings.Join(n.args, " "))
	argv := append(slices.Clone(n.exec), bin)
	argv = append(argv, n.args...)
	n.cmd = exec.Command(argv[0], argv[1:]...)
	n.cmd.Stdout, n.cmd.Stderr = logf, logf
	// A test binary killed or interrupted takes its nodes with it.
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := n.cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	n.exited = make(chan struct{})
	go func() {
		n.err = n.cmd.Wait()
		logf.Close()
		close(n.exited)
	}()
	// Generous: a node's start on a busy machine (load average 10-40)
	// takes far longer than on an idle one.
	deadline := time.Now().Add(60 * time.Second)
	for {
		var st status
		err := c.getJSON(n, "/v1/status", &st)
		if err == nil {
			n.id = st.ID
			return nil
		}
		select {
		case <-n.exited:
			if log, _ := os.ReadFile(n.logPath); int64(len(log)) > from && bytes.Contains(log[from:], []byte("address already in use")) {
				return fmt.Errorf("%s exited at start: %v: %w", n.name, n.err, errPortTaken)
			}
			return fmt.Errorf("%s exited at start: %v", n.name, n.err)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: HTTP API not up after 60s: %v", n.name, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// client returns the HTTP client that reaches n's API.
func (c *cluster) client(n *node) *http.Client {
	if n.hc != nil {
		return n.hc
	}
	return c.hc
}

func (n *node) running() bool {
	if n.cmd == nil {
		return false
	}
	select {
	case <-n.exited:
		return false
	default:
		return true
	}
}

// kill sends SIGKILL and waits for the process to end.
func (c *cluster) kill(n *node) {
	c.t.Helper()
	if err := n.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		c.t.Fatalf("kill %s: %v", n.name, err)
	}
	<-n.exited
}

// stop sends SIGTERM and waits for a clean exit (status 0) after the
// node handed its values over.
func (c *cluster) stop(n *node) {
	c.t.Helper()
	if err := n.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		c.t.Fatalf("stop %s: %v", n.name, err)
	}
	select {
	case <-n.exited:
	case <-time.After(45 * time.Second):
		c.t.Fatalf("%s did not exit within 45s of SIGTERM", n.name)
	}
	if n.err != nil {
		c.t.Fatalf("%s exited with %v after SIGTERM, want status 0", n.name, n.err)
	}
}

func (c *cluster) live() []*node {
	var out []*node
	for _, n := range c.nodes {
		if n.running() {
			out = append(out, n)
		}
	}
	return out
}

type status struct {
	ID      string `json:"id"`
	Routing struct {
		Nodes int `json:"nodes"`
	} `json:"routing"`
	Store struct {
		Keys  int   `json:"keys"`
		Bytes int64 `json:"bytes"`
	} `json:"store"`
}

type record struct {
	Key     string `json:"key"`
	Version string `json:"version"`
	Deleted bool   `json:"deleted"`
}

func (c *cluster) getJSON(n *node, path string, v any) error {
	resp, err := c.client(n).Get(n.api() + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("GET %s%s: %s %s", n.api(), path, resp.Status, bytes.TrimSpace(b))
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

func (c *cluster) status(n *node) status {
	c.t.Helper()
	var st status
	if err := c.getJSON(n, "/v1/status", &st); err != nil {
		c.t.Fatal(err)
	}
	return st
}

// local returns what n stores: key → version (tombstones included).
func (c *cluster) local(n *node) map[string]string {
	c.t.Helper()
	var out struct {
		Records []record `json:"records"`
	}
	if err := c.getJSON(n, "/v1/local", &out); err != nil {
		c.t.Fatal(err)
	}
	m := make(map[string]string, len(out.Records))
	for _, r := range out.Records {
		m[r.Key] = r.Version
	}
	return m
}

func keyURL(n *node, key string) string { return n.api() + "/v1/keys/" + url.PathEscape(key) }

// put stores value under key through n's HTTP API; an error carries the
// status code and the API's message.
func (c *cluster) put(n *node, key string, value []byte) error {
	req, err := http.NewRequest(http.MethodPut, keyURL(n, key), bytes.NewReader(value))
	if err != nil {
		return err
	}
	resp, err := c.client(n).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return &apiError{code: resp.StatusCode, body: string(bytes.TrimSpace(b))}
	}
	return nil
}

type apiError struct {
	code int
	body string
}

func (e *apiError) Error() string { return fmt.Sprintf("HTTP %d: %s", e.code, e.body) }

// get reads key through n's HTTP API.
func (c *cluster) get(n *node, key string) ([]byte, error) {
	resp, err := c.client(n).Get(keyURL(n, key))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("get %q through %s: the body broke off: %w", key, n.name, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, &apiError{code: resp.StatusCode, body: string(bytes.TrimSpace(b))}
	}
	return b, nil
}

// cli runs a dhtkit data command against n's API and returns its stdout,
// stderr and exit status.
func (c *cluster) cli(n *node, args ...string) (stdout, stderr string, code int) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"--api", n.api()}, args...)...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		c.t.Fatalf("dhtkit %s: %v", strings.Join(args, " "), err)
	}
	return o.String(), e.String(), code
}

// waitFor polls cond every 250ms until it returns nil or timeout passes,
// and returns how long it took, or the last error.
func waitFor(timeout time.Duration, cond func() error) (time.Duration, error) {
	start := time.Now()
	for {
		err := cond()
		if err == nil {
			return time.Since(start), nil
		}
		if time.Since(start) > timeout {
			return time.Since(start), err
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// waitMesh waits until every live node knows every other one, so that
// all agree on each key's replicas.
func (c *cluster) waitMesh(timeout time.Duration) {
	c.t.Helper()
	live := c.live()
	_, err := waitFor(timeout, func() error {
		for _, n := range live {
			if got := c.status(n).Routing.Nodes; got < len(live)-1 {
				var m struct {
					Members []struct{ Addr, State string }
				}
				_ = c.getJSON(n, "/v1/members", &m)
				return fmt.Errorf("%s knows %d of the %d other nodes (its members: %+v)", n.name, got, len(live)-1, m.Members)
			}
		}
		return nil
	})
	if err != nil {
		c.t.Fatal(err)
	}
}

// holdings maps every key stored on a live node to the newest version
// any live node has of it, and to the nodes that hold that version.
type holdings struct {
	newest  map[string]string
	holders map[string][]*node
}

func (c *cluster) holdings() holdings {
	c.t.Helper()
	h := holdings{newest: map[string]string{}, holders: map[string][]*node{}}
	locals := map[*node]map[string]string{}
	for _, n := range c.live() {
		locals[n] = c.local(n)
		for k, v := range locals[n] {
			if v > h.newest[k] {
				h.newest[k] = v
			}
		}
	}
	for n, l := range locals {
		for k, v := range l {
			if v == h.newest[k] {
				h.holders[k] = append(h.holders[k], n)
			}
		}
	}
	return h
}

// closest returns the c.replicas live nodes closest to SHA-1(key) by XOR
// distance: the nodes that should hold key.
func (c *cluster) closest(key string) []*node {
	target := sha1.Sum([]byte(key))
	live := c.live()
	dist := func(n *node) []byte {
		id, _ := hex.DecodeString(n.id)
		d := make([]byte, len(target))
		for i := range d {
			d[i] = id[i] ^ target[i]
		}
		return d
	}
	slices.SortFunc(live, func(a, b *node) int { return bytes.Compare(dist(a), dist(b)) })
	return live[:min(c.replicas, len(live))]
}

// checkReplicated reports an error unless every key in want has at least
// c.replicas live holders of a version at least as new as want's.
func (c *cluster) checkReplicated(want map[string]string) error {
	h := c.holdings()
	var bad []string
	for k, v := range want {
		if h.newest[k] < v {
			bad = append(bad, fmt.Sprintf("%q: no live node holds version %s", k, v))
			continue
		}
		if n := len(h.holders[k]); n < c.replicas {
			bad = append(bad, fmt.Sprintf("%q: %d live replicas", k, n))
		}
	}
	if len(bad) > 0 {
		slices.Sort(bad)
		return fmt.Errorf("%d of %d keys under-replicated, e.g. %s", len(bad), len(want), strings.Join(bad[:min(3, len(bad))], "; "))
	}
	return nil
}

// content is a value written in a test and the digest to check reads by.
type content struct {
	sum  [32]byte
	size int
}

func checkBytes(key string, want content, got []byte) error {
	if len(got) != want.size || sha256.Sum256(got) != want.sum {
		return fmt.Errorf("%q: read %d bytes (sha256 %x), wrote %d bytes (sha256 %x)",
			key, len(got), sha256.Sum256(got), want.size, want.sum)
	}
	return nil
}

// parallel runs f(i) for i in [0, n) on `workers` goroutines and returns
// the errors, at most 5 of them.
func parallel(n, workers int, f func(i int) error) []error {
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
		next = make(chan int)
	)
	for range workers {
		wg.Go(func() {
			for i := range next {
				if err := f(i); err != nil {
					mu.Lock()
					if len(errs) < 5 {
						errs = append(errs, err)
					}
					mu.Unlock()
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return errs
}

// sha256File returns the digest and size of the file at path.
func sha256File(t testing.TB, path string) content {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	size, err := io.Copy(h, f)
	if err != nil {
		t.Fatal(err)
	}
	var c content
	copy(c.sum[:], h.Sum(nil))
	c.size = int(size)
	return c
}

// writeRandomFile writes size pseudo-random bytes (seeded by seed) to path.
func writeRandomFile(t testing.TB, path string, size int, seed uint64) content {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	r := newRand(seed)
	buf := make([]byte, 1<<20)
	for left := size; left > 0; {
		k := min(left, len(buf))
		r.fill(buf[:k])
		if _, err := f.Write(buf[:k]); err != nil {
			t.Fatal(err)
		}
		left -= k
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return sha256File(t, path)
}

// rnd is a small deterministic generator (splitmix64), so that a failing
// run writes the same data again.
type rnd struct{ s uint64 }

func newRand(seed uint64) *rnd { return &rnd{s: seed} }

func (r *rnd) next() uint64 {
	r.s += 0x9e3779b97f4a7c15
	z := r.s
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

func (r *rnd) fill(b []byte) {
	for i := 0; i < len(b); i += 8 {
		v := r.next()
		for j := 0; j < 8 && i+j < len(b); j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
}

func (r *rnd) intn(n int) int { return int(r.next() % uint64(n)) }
