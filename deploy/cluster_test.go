//go:build docker

// Package deploy holds the container image and the five-node compose
// cluster of dhtkit. Its test, behind the build tag "docker", runs that
// cluster the way an operator would:
//
//	go test -tags docker -v ./deploy/
//
// It needs a Docker engine and Compose (the "docker compose" plugin or
// docker-compose); it pulls nothing, since the image is FROM scratch with a
// binary built here. Without an engine it skips, saying why.
package deploy

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// replicas is the number of copies a node keeps of each value, the
// default of `dhtkit node --replicas`, which compose.yaml keeps.
const replicas = 3

// services are the nodes of compose.yaml, node1 first (the bootstrap node).
var services = []string{"node1", "node2", "node3", "node4", "node5"}

// TestCluster builds the image, starts the cluster, writes through node1,
// reads through node4, then stops one node that holds the value (a graceful
// leave) and kills another (no hand-over), reading the value through a
// live node after each.
func TestCluster(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	start := time.Now()

	if _, err := exec.CommandContext(ctx, "docker", "info").Output(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			err = fmt.Errorf("%w: %s", err, lastLine(ee.Stderr))
		}
		t.Skipf("no Docker engine answers (docker info: %v); the container test needs one", err)
	}
	compose := composeCommand(ctx)
	if compose == nil {
		t.Skip("neither `docker compose` nor `docker-compose` works; the container test needs Compose")
	}

	suffix := randomHex(t, 4)
	image := "dhtkit-test:" + suffix
	buildImage(ctx, t, image)
	t.Logf("image %s built (%v)", image, time.Since(start).Round(time.Millisecond))

	c := &cluster{t: t, compose: compose, project: "dhtkittest" + suffix, image: image, ids: make(map[string]string)}
	c.up(ctx)
	api := c.waitReady(ctx)
	t.Logf("5 nodes up and joined (%v)", time.Since(start).Round(time.Millisecond))

	key, value := "docker-"+suffix, []byte("written through node1 at "+time.Now().UTC().Format(time.RFC3339Nano))
	put(ctx, t, api["node1"], key, value)
	get(ctx, t, api["node4"], key, value)
	t.Logf("put %q through node1, read it through node4", key)

	// Stop (SIGTERM) a node that holds the value: it hands its values over
	// before it exits, and it exits 0.
	stopped := c.holder(ctx, api, "node4", key)
	c.docker(ctx, "stop", "--time", "30", c.container(ctx, stopped))
	if code := strings.TrimSpace(c.docker(ctx, "inspect", "--format", "{{.State.ExitCode}}", c.container(ctx, stopped))); code != "0" {
		t.Errorf("%s exited with status %s after docker stop, want 0 (SIGTERM is a graceful leave)", stopped, code)
	}
	delete(api, stopped)
	// The hand-over restores the copies: with three replicas (the
	// default) and four nodes left, three live nodes hold the value.
	var live []string
	for _, s := range services {
		if _, ok := api[s]; ok {
			live = append(live, s)
		}
	}
	if hs := c.where(ctx, api, live[0], key); len(hs) < replicas || slices.Contains(hs, stopped) {
		t.Errorf("after %s left gracefully, %q is held by %v, want %d live nodes", stopped, key, hs, replicas)
	}
	reader := c.reader(ctx, api, key)
	get(ctx, t, api[reader], key, value)
	t.Logf("stopped %s (a holder), read the value through %s", stopped, reader)

	// Kill (SIGKILL) another holder: no hand-over, the other copies serve.
	killed := c.holder(ctx, api, reader, key)
	c.docker(ctx, "kill", c.container(ctx, killed))
	delete(api, killed)
	reader = c.reader(ctx, api, key)
	get(ctx, t, api[reader], key, value)
	t.Logf("killed %s (a holder), read the value through %s", killed, reader)
	t.Logf("done in %v", time.Since(start).Round(time.Millisecond))
}

// composeCommand returns the Compose command line that works here: the
// docker plugin, else the standalone docker-compose; nil if neither does.
func composeCommand(ctx context.Context) []string {
	for _, c := range [][]string{{"docker", "compose"}, {"docker-compose"}} {
		args := append(slices.Clone(c[1:]), "version")
		if exec.CommandContext(ctx, c[0], args...).Run() == nil {
			return c
		}
	}
	return nil
}

// buildImage builds the static binary and the image from the Dockerfile in
// a context of its own, so that the test leaves the source tree as it was.
func buildImage(ctx context.Context, t *testing.T, image string) {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "dhtkit")
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", bin, "./cmd/dhtkit")
	build.Dir = ".."
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the static binary: %v\n%s", err, out)
	}
	for _, f := range []string{"Dockerfile", ".dockerignore", "rootfs/data/README"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		to := filepath.Join(dir, f)
		if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(to, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// FROM scratch: nothing to pull, and --pull=false says so to the engine.
	if out, err := exec.CommandContext(ctx, "docker", "build", "--pull=false", "-q", "-t", image, dir).CombinedOutput(); err != nil {
		t.Fatalf("docker build: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if out, err := exec.CommandContext(ctx, "docker", "rmi", "-f", image).CombinedOutput(); err != nil {
			t.Logf("removing image %s: %v: %s", image, err, out)
		}
	})
}

// cluster is one running copy of compose.yaml, under a project name of its
// own so that it cannot collide with a cluster someone else runs.
type cluster struct {
	t       *testing.T
	compose []string
	project string
	image   string
	ids     map[string]string     // service -> container id
	ips     map[netip.Addr]string // container address -> service
}

// composeRun runs a Compose subcommand on the cluster and returns its
// standard output, failing the test if it fails.
func (c *cluster) composeRun(ctx context.Context, args ...string) string {
	c.t.Helper()
	out, err := c.composeOutput(ctx, args...)
	if err != nil {
		c.t.Fatal(err)
	}
	return out
}

func (c *cluster) composeOutput(ctx context.Context, args ...string) (string, error) {
	full := append(slices.Clone(c.compose[1:]), "--project-name", c.project, "--file", "compose.yaml")
	cmd := exec.CommandContext(ctx, c.compose[0], append(full, args...)...)
	// Every HTTP port on an ephemeral port of 127.0.0.1 (see compose.yaml).
	cmd.Env = append(os.Environ(), "DHTKIT_IMAGE="+c.image)
	for i := range services {
		cmd.Env = append(cmd.Env, fmt.Sprintf("DHTKIT_HTTP%d=", i+1))
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w\n%s", c.compose[0], strings.Join(append(full, args...), " "), err, stderr.Bytes())
	}
	return string(out), nil
}

func (c *cluster) docker(ctx context.Context, args ...string) string {
	c.t.Helper()
	out, err := exec.CommandContext(ctx, "docker", args...).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			err = fmt.Errorf("%w: %s", err, ee.Stderr)
		}
		c.t.Fatalf("docker %s: %v", strings.Join(args, " "), err)
	}
	return string(out)
}

// up starts the cluster and arranges for it to be removed, volumes and
// all, when the test ends, whether it passed or not. On failure the
// nodes' logs go into the test's output first.
func (c *cluster) up(ctx context.Context) {
	c.t.Helper()
	c.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if c.t.Failed() {
			if out, err := c.composeOutput(ctx, "logs", "--no-color"); err == nil {
				c.t.Logf("logs of the cluster:\n%s", out)
			}
		}
		if _, err := c.composeOutput(ctx, "down", "--volumes", "--remove-orphans", "--timeout", "5"); err != nil {
			c.t.Errorf("removing the cluster: %v", err)
		}
	})
	c.composeRun(ctx, "up", "--detach")
}

// container returns the id of service's container. It is looked up
// while the container runs: "docker compose ps" lists only running ones.
func (c *cluster) container(ctx context.Context, service string) string {
	c.t.Helper()
	if id, ok := c.ids[service]; ok {
		return id
	}
	id := strings.TrimSpace(c.composeRun(ctx, "ps", "--quiet", service))
	if id == "" {
		c.t.Fatalf("no container for %s", service)
	}
	c.ids[service] = id
	return id
}

// waitReady waits until every node's HTTP API answers and every node
// knows the four others, and returns each node's API base URL.
func (c *cluster) waitReady(ctx context.Context) map[string]string {
	c.t.Helper()
	api := make(map[string]string)
	c.ips = make(map[netip.Addr]string)
	for _, s := range services {
		hostport := strings.TrimSpace(c.composeRun(ctx, "port", s, "6880"))
		ap, err := netip.ParseAddrPort(hostport)
		if err != nil || !ap.Addr().IsLoopback() {
			c.t.Fatalf("%s: HTTP published on %q, want a 127.0.0.1 port (%v)", s, hostport, err)
		}
		api[s] = "http://" + hostport
		ip := strings.TrimSpace(c.docker(ctx, "inspect", "--format",
			"{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", c.container(ctx, s)))
		addr, err := netip.ParseAddr(ip)
		if err != nil {
			c.t.Fatalf("%s: container address %q: %v", s, ip, err)
		}
		c.ips[addr] = s
	}
	deadline := time.Now().Add(90 * time.Second)
	for _, s := range services {
		for {
			var st struct {
				Routing struct {
					Nodes int `json:"nodes"`
				} `json:"routing"`
			}
			err := getJSON(ctx, api[s]+"/v1/status", &st)
			if err == nil && st.Routing.Nodes >= len(services)-1 {
				break
			}
			if err == nil {
				err = fmt.Errorf("knows %d of the %d other nodes", st.Routing.Nodes, len(services)-1)
			}
			if time.Now().After(deadline) {
				c.t.Fatalf("%s not ready: %v", s, err)
			}
			select {
			case <-ctx.Done():
				c.t.Fatal(ctx.Err())
			case <-time.After(250 * time.Millisecond):
			}
		}
	}
	return api
}

// where returns the services that hold key, asking the node of service
// asked.
func (c *cluster) where(ctx context.Context, api map[string]string, asked, key string) []string {
	c.t.Helper()
	var w struct {
		Nodes []struct {
			Addr    string `json:"addr"`
			Has     bool   `json:"has"`
			Deleted bool   `json:"deleted"`
			Self    bool   `json:"self"`
		} `json:"nodes"`
	}
	if err := getJSON(ctx, api[asked]+"/v1/keys/"+key+"/where", &w); err != nil {
		c.t.Fatal(err)
	}
	var holders []string
	for _, n := range w.Nodes {
		s := asked // A node that has not learnt its own address yet reports none.
		if !n.Self {
			ap, err := netip.ParseAddrPort(n.Addr)
			if err != nil {
				c.t.Fatalf("where %s: node address %q: %v", key, n.Addr, err)
			}
			var ok bool
			if s, ok = c.ips[ap.Addr().Unmap()]; !ok {
				c.t.Fatalf("where %s: %s is not a node of the cluster", key, n.Addr)
			}
		}
		if n.Has && !n.Deleted {
			holders = append(holders, s)
		}
	}
	return holders
}

// holder returns a node that holds key, found by asking the node of
// service asked.
func (c *cluster) holder(ctx context.Context, api map[string]string, asked, key string) string {
	c.t.Helper()
	hs := c.where(ctx, api, asked, key)
	if len(hs) == 0 {
		c.t.Fatalf("no node holds %q", key)
	}
	c.t.Logf("%q is held by %v", key, hs)
	return hs[0]
}

// reader picks a live node to read key through, one that does not hold it
// when there is one, so that the read goes over the network.
func (c *cluster) reader(ctx context.Context, api map[string]string, key string) string {
	c.t.Helper()
	var live []string
	for _, s := range services {
		if _, ok := api[s]; ok {
			live = append(live, s)
		}
	}
	if len(live) == 0 {
		c.t.Fatal("no live node left")
	}
	hs := c.where(ctx, api, live[0], key)
	for _, s := range live {
		if !slices.Contains(hs, s) {
			return s
		}
	}
	return live[0]
}

func put(ctx context.Context, t *testing.T, base, key string, value []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, base+"/v1/keys/"+key, bytes.NewReader(value))
	if err != nil {
		t.Fatal(err)
	}
	status, body, err := do(req)
	if err != nil {
		t.Fatalf("PUT %s: %v", key, err)
	}
	if status != http.StatusOK && status != http.StatusCreated && status != http.StatusNoContent {
		t.Fatalf("PUT %s: %d %s", key, status, body)
	}
}

func get(ctx context.Context, t *testing.T, base, key string, want []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/keys/"+key, nil)
	if err != nil {
		t.Fatal(err)
	}
	status, body, err := do(req)
	if err != nil {
		t.Fatalf("GET %s through %s: %v", key, base, err)
	}
	if status != http.StatusOK || !bytes.Equal(body, want) {
		t.Fatalf("GET %s through %s: %d %q, want 200 %q", key, base, status, body, want)
	}
}

func getJSON(ctx context.Context, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	status, body, err := do(req)
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return fmt.Errorf("GET %s: %d %s", url, status, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	return nil
}

// client bounds each request: a lookup that meets a dead node waits for
// its timeout, so allow a few of those.
var client = &http.Client{Timeout: 30 * time.Second}

func do(req *http.Request) (int, []byte, error) {
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// lastLine is the last line of a command's error output, which says why.
func lastLine(b []byte) string {
	s := strings.TrimSpace(string(b))
	return s[strings.LastIndexByte(s, '\n')+1:]
}
