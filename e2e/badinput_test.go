package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// oneLine fails unless the CLI's stderr is exactly one line that mentions
// every one of words.
func oneLine(t *testing.T, what, stderr string, words ...string) {
	t.Helper()
	if strings.Count(stderr, "\n") != 1 || !strings.HasSuffix(stderr, "\n") {
		t.Errorf("%s: stderr is not one line:\n%s", what, stderr)
	}
	for _, w := range words {
		if !strings.Contains(strings.ToLower(stderr), strings.ToLower(w)) {
			t.Errorf("%s: stderr does not say %q:\n%s", what, w, stderr)
		}
	}
}

// TestOversized: values and keys beyond the limits are refused with a
// clear error before anything is stored, through the API and the CLI.
func TestOversized(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 3)
	seed := c.add("")
	c.add("", seed)
	c.add("", seed)
	c.waitMesh(20 * time.Second)

	// A body announced larger than the node's limit (4 GiB) is refused
	// with 413 before it is read.
	conn, err := net.Dial("tcp", seed.http)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "PUT /v1/keys/huge HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n\r\nxxxx", seed.http, int64(5<<30))
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("PUT of 5 GiB: no answer before the body: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	conn.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(b), "larger than") {
		t.Errorf("PUT of 5 GiB: %s %s, want 413 with an error message", resp.Status, b)
	}
	if _, err := c.get(seed, "huge"); !isStatus(err, http.StatusNotFound) {
		t.Errorf("get of the refused key: %v, want 404", err)
	}

	// A BEP 44 item larger than 1000 bytes.
	_, stderr, code := c.cli(seed, "item", "put", strings.Repeat("a", 1001))
	if code == 0 {
		t.Errorf("item put of 1001 bytes: exit 0, want a failure")
	}
	oneLine(t, "item put of 1001 bytes", stderr, "1000 bytes")

	// A key larger than the store's 1 KiB limit.
	long := strings.Repeat("k", 2000)
	_, stderr, code = c.cli(seed, "put", long, "v")
	if code != 1 {
		t.Errorf("put of a 2000-byte key: exit %d, want 1", code)
	}
	oneLine(t, "put of a 2000-byte key", stderr, "1024")
	err = c.put(seed, long, []byte("v"))
	var ae *apiError
	if !errors.As(err, &ae) || ae.code != http.StatusRequestEntityTooLarge {
		t.Errorf("PUT of a 2000-byte key: %v, want 413", err)
	}
	// Nothing else suffered: the node still stores and serves.
	if err := c.put(seed, "after", []byte("fine")); err != nil {
		t.Fatal(err)
	}
	if got, err := c.get(c.nodes[2], "after"); err != nil || string(got) != "fine" {
		t.Fatalf("get after the refusals: %q, %v", got, err)
	}
}

func isStatus(err error, code int) bool {
	var ae *apiError
	return errors.As(err, &ae) && ae.code == code
}

// TestFullDisk runs three nodes whose --data directories are 2 MiB tmpfs
// mounts and writes until they are full: the writer gets a clear error,
// and every value acknowledged before stays readable, also after the
// nodes are SIGKILLed and restarted on their full disks.
func TestFullDisk(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var mounts []string
	t.Cleanup(func() {
		for _, m := range mounts {
			exec.Command("umount", "-l", m).Run()
		}
	})
	for i := range 3 {
		m := filepath.Join(dir, fmt.Sprintf("disk%d", i))
		if err := os.Mkdir(m, 0o755); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", m).CombinedOutput(); err != nil {
			t.Skipf("cannot mount a small tmpfs (needs root): %v %s", err, bytes.TrimSpace(out))
		}
		mounts = append(mounts, m)
	}
	c := newCluster(t, 3)
	seed := c.add(filepath.Join(mounts[0], "data"))
	c.add(filepath.Join(mounts[1], "data"), seed)
	c.add(filepath.Join(mounts[2], "data"), seed)
	c.waitMesh(20 * time.Second)

	// 20 KiB values (three records each) until a put fails; every node is
	// a replica of everything, so the disks fill together.
	acked := map[string]content{}
	r := newRand(7)
	var refused error
	for i := range 400 {
		v := make([]byte, 20<<10)
		r.fill(v)
		k := fmt.Sprintf("disk/%03d", i)
		if err := c.put(c.nodes[i%3], k, v); err != nil {
			refused = err
			break
		}
		acked[k] = content{sha256.Sum256(v), len(v)}
	}
	if refused == nil {
		t.Fatalf("400 values of 20 KiB (8 MB) fit on 2 MiB disks")
	}
	t.Logf("%d values acknowledged, then: %v", len(acked), refused)
	var ae *apiError
	if !errors.As(refused, &ae) || ae.code/100 != 5 || !strings.Contains(ae.body, "disk full") {
		t.Errorf("put on full disks: %v, want a 5xx that says the disk is full", refused)
	}
	if !isStatus(refused, http.StatusInsufficientStorage) {
		t.Errorf("put on full disks answered %d, want 507", ae.code)
	}
	// A refused write is rolled back, which can leave room for a smaller
	// one: the CLI writes until the disks refuse it too, and that refusal
	// must be one clear line.
	var stderr string
	code := 0
	for i := 0; i < 20 && code == 0; i++ {
		_, stderr, code = c.cli(seed, "put", fmt.Sprintf("disk/cli%02d", i), strings.Repeat("v", 30<<10))
		if code == 0 {
			// It fit: it is acknowledged, so it must survive like the rest.
			acked[fmt.Sprintf("disk/cli%02d", i)] = content{sha256.Sum256([]byte(strings.Repeat("v", 30<<10))), 30 << 10}
		}
	}
	if code != 1 {
		t.Errorf("dhtkit put on full disks: exit %d, want 1", code)
	}
	oneLine(t, "dhtkit put on full disks", stderr, "disk full")
	t.Logf("dhtkit put on full disks: %s", strings.TrimSpace(stderr))

	readAll := func(when string) {
		t.Helper()
		for k, w := range acked {
			got, err := c.get(c.nodes[len(k)%3], k)
			if err != nil {
				t.Fatalf("%s: get %q (acknowledged): %v", when, k, err)
			}
			if err := checkBytes(k, w, got); err != nil {
				t.Fatalf("%s: %v", when, err)
			}
		}
	}
	readAll("on full disks")
	for _, n := range c.nodes {
		c.kill(n)
	}
	for _, n := range c.nodes {
		c.start(n)
	}
	readAll("after SIGKILL and restart on full disks")
}

// TestGarbageMidTransfer sends a storm of garbage datagrams (random bytes,
// truncated KRPC, replies and errors with guessed transaction ids) to
// every node while a 6 MiB file is stored and read back: the transfer
// completes, byte-identical.
func TestGarbageMidTransfer(t *testing.T) {
	t.Parallel()
	garbageTransfer(t, false)
}

// TestForgedQueriesMidTransfer is TestGarbageMidTransfer with well-formed
// dk_store and dk_sync queries of the private network carrying bogus
// payloads, each under a fresh random node id, all sent from one UDP
// socket. Routing tables hold one contact per address, so the made-up
// ids never crowd out the real replicas.
func TestForgedQueriesMidTransfer(t *testing.T) {
	t.Parallel()
	garbageTransfer(t, true)
}

func garbageTransfer(t *testing.T, forged bool) {
	c := newCluster(t, 3)
	seed := c.add("")
	for range 3 {
		c.add("", seed)
	}
	c.waitMesh(20 * time.Second)

	ctx, cancel := context.WithCancel(context.Background())
	var sent atomic.Int64
	var wg sync.WaitGroup
	for _, n := range c.nodes {
		wg.Go(func() { sent.Add(int64(garbage(ctx, t, n.udp, forged))) })
	}

	dir := t.TempDir()
	path := filepath.Join(dir, "file")
	want := writeRandomFile(t, path, 6<<20, 42)
	start := time.Now()
	out, errOut, code := c.cli(c.nodes[1], "put", "garbage/file", "--file", path)
	if code != 0 {
		cancel()
		wg.Wait()
		t.Fatalf("put --file under garbage: exit %d: %s%s", code, out, errOut)
	}
	put := time.Since(start)
	got := filepath.Join(dir, "got")
	out, errOut, code = c.cli(c.nodes[3], "get", "garbage/file", "--out", got)
	cancel()
	wg.Wait()
	if code != 0 {
		t.Fatalf("get --out under garbage: exit %d: %s%s", code, out, errOut)
	}
	if g := sha256File(t, got); g != want {
		t.Fatalf("read %d bytes (sha256 %x), wrote %d bytes (sha256 %x)", g.size, g.sum, want.size, want.sum)
	}
	if sent.Load() < 1000 {
		t.Fatalf("only %d garbage datagrams sent: the test tested little", sent.Load())
	}
	for _, n := range c.nodes {
		if !n.running() {
			t.Fatalf("%s died: %v", n.name, n.err)
		}
		// Forged queries are well-formed: their one socket may hold one
		// contact, under one of the ids it made up, but never more.
		limit := len(c.nodes) - 1
		if forged {
			limit++
		}
		if st := c.status(n); st.Routing.Nodes > limit {
			t.Errorf("%s has %d contacts after the garbage, and there are %d other nodes", n.name, st.Routing.Nodes, len(c.nodes)-1)
		}
	}
	t.Logf("%d garbage datagrams sent during the transfer (put took %v, then the get)", sent.Load(), put.Round(time.Millisecond))
}

// garbage sends bad datagrams to addr until ctx ends and returns how many.
func garbage(ctx context.Context, t *testing.T, addr string, forged bool) int {
	conn, err := net.Dial("udp", addr)
	if err != nil {
		t.Error(err)
		return 0
	}
	defer conn.Close()
	r := newRand(uint64(len(addr)))
	id := make([]byte, 20)
	buf := make([]byte, 1500)
	shapes := []func() []byte{
		func() []byte { // random bytes
			b := buf[:1+r.intn(len(buf))]
			r.fill(b)
			return b
		},
		func() []byte { // a truncated query
			m := "d1:ad2:id20:" + string(id) + "6:target20:" + string(id) + "e1:q9:find_node1:t2:aa1:y1:qe"
			return []byte(m[:r.intn(len(m))])
		},
		func() []byte { // a reply with a guessed transaction id
			t := []byte{byte(r.next()), byte(r.next())}
			return []byte("d1:rd2:id20:" + string(id) + "5:nodes26:" + strings.Repeat("\xff", 26) + "e1:t2:" + string(t) + "1:y1:re")
		},
		func() []byte { // an error with a guessed transaction id
			t := []byte{byte(r.next()), byte(r.next())}
			return []byte("d1:eli201e4:boome1:t2:" + string(t) + "1:y1:ee")
		},
	}
	if forged {
		// Well-formed queries of the private network, each under a fresh
		// random node id, all from one address.
		shapes = []func() []byte{
			func() []byte { // dk_store with a payload that is not records
				x := make([]byte, 1+r.intn(500))
				r.fill(x)
				return []byte(fmt.Sprintf("d1:ad2:id20:%s1:x%d:%se2:nw6:dhtkit1:q8:dk_store1:t2:zz1:y1:qe", id, len(x), x))
			},
			func() []byte { // dk_store with records of the wrong types
				return []byte("d1:ad2:id20:" + string(id) + "1:xd4:recsld1:ki5e1:vli1eee1:ke1:veeee2:nw6:dhtkit1:q8:dk_store1:t2:zy1:y1:qe")
			},
			func() []byte { // dk_sync with a digest of garbage
				return []byte("d1:ad2:id20:" + string(id) + "1:xd1:di-1e1:h3:abce2:nw6:dhtkit1:q7:dk_sync1:t2:zx1:y1:qe")
			},
		}
	}
	n := 0
	for i := 0; ctx.Err() == nil; i++ {
		r.fill(id)
		if _, err := conn.Write(shapes[i%len(shapes)]()); err == nil {
			n++
		}
		if i%2 == 1 {
			// About 2000 datagrams/s to each node: a misbehaving peer, not
			// a flood (a flood of 50k/s on 2 cores does make chunk puts
			// time out).
			time.Sleep(time.Millisecond)
		}
	}
	return n
}

// TestNewcomerEdges runs, on real processes, what a newcomer tripped over
// (issue 14): a second node on a held --data, a get --out and a listen
// stopped by signals, a listen whose node stops, empty keys, --api as
// HOST:PORT with a dead endpoint first.
func TestNewcomerEdges(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 1)
	n := c.add("")

	// The same --data twice: the second node says who holds it.
	out, err := exec.Command(bin, "node", "--listen", "127.0.0.1:0", "--http", "off", "--data", n.data).CombinedOutput()
	if err == nil {
		t.Fatalf("a second node on %s started", n.data)
	}
	oneLine(t, "node on a held --data", string(out), "in use by another process", "--data")

	// Empty keys are usage errors, before any request.
	for _, cmd := range []string{"put", "get", "del", "whereis", "listen"} {
		_, stderr, code := c.cli(n, cmd, "", "v")
		if cmd != "put" {
			_, stderr, code = c.cli(n, cmd, "")
		}
		if code != 2 {
			t.Errorf("%s \"\": exit %d, want 2", cmd, code)
		}
		oneLine(t, cmd+` ""`, stderr, "KEY must not be empty")
	}

	// HOST:PORT, behind a dead endpoint.
	value := bytes.Repeat([]byte("0123456789abcdef"), 2<<20) // 32 MiB: long enough to interrupt
	path := filepath.Join(t.TempDir(), "value")
	if err := os.WriteFile(path, value, 0o644); err != nil {
		t.Fatal(err)
	}
	dead := "127.0.0.1:" + fmt.Sprint(freePort(t, "tcp"))
	cmd := exec.Command(bin, "--api", dead+","+n.http, "put", "big", "--file", path) // HOST:PORT, a dead one first
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("put --file through --api %s,%s: %v %s", dead, n.http, err, b)
	}

	// get --out stopped by SIGINT and SIGTERM once its file has bytes:
	// exit 130 and 143, one line, no file left. The get goes through a
	// proxy that holds the value's body after its first MiB until the get
	// has exited, so the signal always comes mid-transfer: a get that
	// finished first would leave nothing to check (CI saw one do so).
	proxy := newHoldingProxy(t, "http://"+n.http, 1<<20)
	dir := t.TempDir()
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		outPath := filepath.Join(dir, "copy")
		cmd := exec.Command(bin, "--api", proxy.addr, "get", "big", "--out", outPath)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		select {
		case <-proxy.held:
		case err := <-exited:
			t.Fatalf("get --out ended (%v) before the proxy held its body: %s", err, stderr.String())
		case <-time.After(time.Minute):
			cmd.Process.Kill()
			<-exited
			t.Fatal("get --out: the proxy sent no MiB within a minute")
		}
		_, werr := waitFor(time.Minute, func() error {
			parts, _ := filepath.Glob(filepath.Join(dir, ".copy.*.part"))
			for _, p := range parts {
				if st, err := os.Stat(p); err == nil && st.Size() > 0 {
					return nil
				}
			}
			return errors.New("no bytes written yet")
		})
		if werr != nil {
			cmd.Process.Kill()
			<-exited
			t.Fatalf("get --out: %v", werr)
		}
		cmd.Process.Signal(sig)
		var err error
		select {
		case err = <-exited:
		case <-time.After(time.Minute):
			cmd.Process.Kill()
			<-exited
			t.Fatalf("get --out went on for a minute after %v", sig)
		}
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 128+int(sig) {
			t.Errorf("get --out after %v: %v, want exit %d", sig, err, 128+int(sig))
		}
		oneLine(t, "get --out interrupted", stderr.String(), "get interrupted by "+map[syscall.Signal]string{syscall.SIGINT: "SIGINT", syscall.SIGTERM: "SIGTERM"}[sig])
		if left, _ := filepath.Glob(filepath.Join(dir, "*copy*")); len(left) > 0 {
			t.Errorf("an interrupted get --out left %v", left)
		}
	}

	// listen: SIGINT exits 130; the node stopping exits 1 with a word.
	listen := func() (*exec.Cmd, *bytes.Buffer, *bufio.Reader) {
		cmd := exec.Command(bin, "--api", n.http, "listen", "watched")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		stdout, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// A line once it streams: put until the listener reports one.
		lines := bufio.NewReader(stdout)
		got := make(chan error, 1)
		go func() { _, err := lines.ReadString('\n'); got <- err }()
		for i := 0; ; i++ {
			if err := c.put(n, "watched", []byte(fmt.Sprint("v", i))); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-got:
				if err != nil {
					t.Fatalf("listen printed nothing: %v %s", err, stderr.String())
				}
				return cmd, &stderr, lines
			case <-time.After(time.Second):
			}
			if i > 60 {
				t.Fatal("listen printed nothing in a minute of puts")
			}
		}
	}
	cmd, stderr, _ := listen()
	cmd.Process.Signal(syscall.SIGINT)
	if err := cmd.Wait(); !errors.As(err, new(*exec.ExitError)) || cmd.ProcessState.ExitCode() != 130 {
		t.Errorf("listen after SIGINT: %v, want exit 130", err)
	}
	oneLine(t, "listen interrupted", stderr.String(), "listen interrupted by SIGINT")
	cmd, stderr, lines := listen()
	go io.Copy(io.Discard, lines)
	c.stop(n)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if !errors.As(err, new(*exec.ExitError)) || cmd.ProcessState.ExitCode() != 1 {
			t.Errorf("listen whose node stopped: %v, want exit 1", err)
		}
	case <-time.After(time.Minute):
		cmd.Process.Kill()
		<-done
		t.Fatal("listen still runs a minute after its node stopped")
	}
	oneLine(t, "listen whose node stopped", stderr.String(), "stopped")
}

// holdingProxy forwards HTTP requests to a node and, in a response
// longer than limit, sends the first limit bytes and then holds the rest
// until the client goes away. It reports each hold on held.
type holdingProxy struct {
	addr string
	held chan struct{}
}

func newHoldingProxy(t *testing.T, target string, limit int64) *holdingProxy {
	t.Helper()
	p := &holdingProxy{held: make(chan struct{}, 16)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, err := http.NewRequestWithContext(r.Context(), r.Method, target+r.URL.RequestURI(), r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		req.Header = r.Header.Clone()
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		n, _ := io.CopyN(w, resp.Body, limit)
		if n < limit {
			return
		}
		w.(http.Flusher).Flush()
		p.held <- struct{}{}
		<-r.Context().Done()
	}))
	t.Cleanup(srv.Close)
	p.addr = strings.TrimPrefix(srv.URL, "http://")
	return p
}
