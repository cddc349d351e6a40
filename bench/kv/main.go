// Command kvload compares the key-value store of a dhtkit cluster with
// OpenDHT's dhtnode under the same load, one system after the other in one
// invocation: each runs as a cluster of -nodes processes on 127.0.0.1, and
// the same HTTP load generator (-concurrency workers, each keeping one
// request in flight, for -duration per phase) puts fresh keys and then
// gets the keys it put, for every value size. It prints throughput and
// latency percentiles per system and the ratios dhtkit/dhtnode as
// Markdown.
//
// dhtnode binds every interface and has no bind flag, so run kvload in a
// private network namespace (bench/kv/compare.sh does): it refuses to
// start dhtnode otherwise unless -allow-public-bind is given.
//
// dhtkit is driven through its HTTP API (PUT and GET /v1/keys/{key});
// dhtnode through its REST proxy (--proxyserver: POST /key/{40 hex} with
// {"data":"<base64>"} and GET /key/{40 hex}), one proxy per node, with -U
// (no per-IP rate limit: every loopback peer shares one IP).
package main

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

func main() {
	var (
		dhtkitBin   = flag.String("dhtkit", "dhtkit", "the dhtkit binary")
		dhtnodeBin  = flag.String("dhtnode", "dhtnode", `OpenDHT's dhtnode binary; "" skips it`)
		nodes       = flag.Int("nodes", 5, "nodes per cluster")
		duration    = flag.Duration("duration", 5*time.Second, "how long each phase (system × op × size) runs")
		concurrency = flag.Int("concurrency", 32, "requests in flight")
		sizesFlag   = flag.String("sizes", "100,4096", "value sizes in bytes, comma-separated")
		withData    = flag.Bool("data", true, "also run dhtkit with --data (bbolt on disk)")
		allowPublic = flag.Bool("allow-public-bind", false, "start dhtnode outside a private network namespace")
	)
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("kvload: ")
	var sizes []int
	for _, s := range strings.Split(*sizesFlag, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= 0 {
			log.Fatalf("-sizes %q: want positive integers", *sizesFlag)
		}
		sizes = append(sizes, n)
	}
	if *dhtnodeBin != "" && !*allowPublic && !privateNetns() {
		log.Fatal("dhtnode binds every interface: run kvload in a private network namespace (unshare -n; ip link set lo up; see bench/kv/compare.sh) or pass -allow-public-bind")
	}
	tmp, err := os.MkdirTemp("", "kvload-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(tmp)

	systems := []system{&dhtkitCluster{bin: *dhtkitBin, dir: tmp}}
	if *withData {
		systems = append(systems, &dhtkitCluster{bin: *dhtkitBin, dir: tmp, data: true})
	}
	if *dhtnodeBin != "" {
		systems = append(systems, &dhtnodeCluster{bin: *dhtnodeBin, dir: tmp})
	}
	var results []result
	for _, sys := range systems {
		log.Printf("starting %d %s nodes", *nodes, sys.name())
		if err := sys.start(*nodes); err != nil {
			sys.stop()
			log.Fatalf("%s: %v", sys.name(), err)
		}
		for _, size := range sizes {
			for _, op := range []string{"put", "get"} {
				r := run(sys, op, size, *concurrency, *duration)
				log.Printf("%-14s %s %5d B: %8.0f ops/s  p50 %6.2f ms  p99 %7.2f ms  errors %d%s",
					sys.name(), op, size, r.rate(), ms(r.p50), ms(r.p99), r.errors, r.firstErr)
				results = append(results, r)
			}
		}
		sys.stop()
	}
	report(os.Stdout, results, *nodes, *concurrency, *duration)
}

// privateNetns reports whether the only network interface is loopback.
func privateNetns() bool {
	ifs, err := net.Interfaces()
	if err != nil {
		return false
	}
	for _, i := range ifs {
		if i.Flags&net.FlagLoopback == 0 {
			return false
		}
	}
	return true
}

// system is a cluster under test, reached over HTTP.
type system interface {
	name() string
	start(nodes int) error
	stop()
	// request builds the put of value under key, or its get (value nil),
	// for worker w.
	request(w int, key string, value []byte) (*http.Request, error)
	// check validates a get's response body.
	check(body []byte, want []byte) error
}

type result struct {
	system, op string
	size       int
	ops        int
	errors     int
	firstErr   string
	elapsed    time.Duration
	p50, p99   time.Duration
}

func (r result) rate() float64 { return float64(r.ops) / r.elapsed.Seconds() }

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// written remembers, per system and size, the keys the put phase stored
// and their values, for the get phase.
var written = map[string][]kv{}

type kv struct {
	key   string
	value []byte
}

// run drives one phase: concurrency workers, each with one request in
// flight, for d.
func run(sys system, op string, size, concurrency int, d time.Duration) result {
	hc := &http.Client{
		Transport: &http.Transport{MaxIdleConnsPerHost: concurrency, MaxConnsPerHost: concurrency},
		Timeout:   10 * time.Second,
	}
	id := fmt.Sprintf("%s/%d", sys.name(), size)
	var (
		mu       sync.Mutex
		lats     []time.Duration
		errs     int
		firstErr string
		wg       sync.WaitGroup
	)
	pool := written[id]
	deadline := time.Now().Add(d)
	start := time.Now()
	for w := range concurrency {
		wg.Go(func() {
			var (
				mine  []time.Duration
				puts  []kv
				nerr  int
				first string
			)
			value := make([]byte, size)
			for i := 0; time.Now().Before(deadline); i++ {
				var k kv
				if op == "put" {
					k.key = fmt.Sprintf("kvload-%s-%d-%d-%d", strings.ReplaceAll(sys.name(), " ", ""), size, w, i)
					copy(value, fmt.Sprintf("%s|", k.key))
					k.value = bytes.Clone(value)
				} else {
					if len(pool) == 0 {
						return
					}
					k = pool[(w*7919+i*104729)%len(pool)]
				}
				var body []byte
				if op == "put" {
					body = k.value
				}
				req, err := sys.request(w, k.key, body)
				if err != nil {
					log.Fatal(err)
				}
				t0 := time.Now()
				resp, err := hc.Do(req)
				var got []byte
				if err == nil {
					got, err = io.ReadAll(resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode/100 != 2 {
						err = fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(got[:min(len(got), 200)]))
					}
				}
				if err == nil && op == "get" {
					err = sys.check(got, k.value)
				}
				lat := time.Since(t0)
				if err != nil {
					nerr++
					if first == "" {
						first = err.Error()
					}
					continue
				}
				mine = append(mine, lat)
				if op == "put" {
					puts = append(puts, k)
				}
			}
			mu.Lock()
			lats = append(lats, mine...)
			errs += nerr
			if firstErr == "" && first != "" {
				firstErr = " (first: " + first + ")"
			}
			written[id] = append(written[id], puts...)
			mu.Unlock()
		})
	}
	wg.Wait()
	r := result{system: sys.name(), op: op, size: size, ops: len(lats), errors: errs, firstErr: firstErr, elapsed: time.Since(start)}
	slices.Sort(lats)
	if len(lats) > 0 {
		r.p50 = lats[len(lats)/2]
		r.p99 = lats[min(len(lats)-1, len(lats)*99/100)]
	}
	hc.CloseIdleConnections()
	return r
}

func report(w io.Writer, rs []result, nodes, concurrency int, d time.Duration) {
	fmt.Fprintf(w, "%d-node loopback clusters, %d requests in flight, %v per phase, %d cores (%s)\n\n", nodes, concurrency, d, runtime.NumCPU(), runtime.GOARCH)
	fmt.Fprintln(w, "| system | op | value | ops/s | p50 ms | p99 ms | errors |")
	fmt.Fprintln(w, "| ------ | -- | ----: | ----: | -----: | -----: | -----: |")
	for _, r := range rs {
		fmt.Fprintf(w, "| %s | %s | %d B | %.0f | %.2f | %.2f | %d |\n", r.system, r.op, r.size, r.rate(), ms(r.p50), ms(r.p99), r.errors)
	}
	var base []result
	for _, r := range rs {
		if r.system == "dhtnode" {
			base = append(base, r)
		}
	}
	if len(base) == 0 {
		return
	}
	fmt.Fprintln(w, "\nRatios against dhtnode (throughput: higher is better; p99: lower is better):")
	fmt.Fprintln(w, "\n| system | op | value | throughput × dhtnode | p99 × dhtnode |")
	fmt.Fprintln(w, "| ------ | -- | ----: | -------------------: | ------------: |")
	for _, r := range rs {
		if r.system == "dhtnode" {
			continue
		}
		for _, b := range base {
			if b.op == r.op && b.size == r.size && b.ops > 0 && b.p99 > 0 {
				fmt.Fprintf(w, "| %s | %s | %d B | %.2f× | %.2f× |\n", r.system, r.op, r.size, r.rate()/b.rate(), float64(r.p99)/float64(b.p99))
			}
		}
	}
}

// freePort returns a port free for both TCP and UDP on 127.0.0.1.
func freePort() (int, error) {
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := ln.Addr().(*net.TCPAddr).Port
		pc, err := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(port))
		ln.Close()
		if err == nil {
			pc.Close()
			return port, nil
		}
	}
	return 0, errors.New("no free port")
}

// procs starts and stops a cluster's processes.
type procs struct {
	cmds []*exec.Cmd
}

func (p *procs) spawn(dir, name string, env []string, bin string, args ...string) error {
	logf, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), env...)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", bin, err)
	}
	p.cmds = append(p.cmds, cmd)
	return nil
}

func (p *procs) stop() {
	for _, c := range p.cmds {
		c.Process.Signal(os.Interrupt)
	}
	for _, c := range p.cmds {
		done := make(chan struct{})
		go func() { c.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			c.Process.Kill()
			<-done
		}
	}
	p.cmds = nil
}

// waitHTTP polls url until ok accepts its body.
func waitHTTP(ctx context.Context, url string, ok func([]byte) bool) error {
	for {
		resp, err := http.Get(url)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && ok(b) {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready: %w", url, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

type dhtkitCluster struct {
	bin, dir string
	data     bool
	procs
	apis []string
}

func (c *dhtkitCluster) name() string {
	if c.data {
		return "dhtkit --data"
	}
	return "dhtkit"
}

func (c *dhtkitCluster) start(nodes int) error {
	var boot string
	for i := range nodes {
		up, err := freePort()
		if err != nil {
			return err
		}
		hp, err := freePort()
		if err != nil {
			return err
		}
		name := fmt.Sprintf("dhtkit%d", i)
		if c.data {
			name += "-data"
		}
		args := []string{"node", "--listen", fmt.Sprintf("127.0.0.1:%d", up), "--http", fmt.Sprintf("127.0.0.1:%d", hp), "--replicas", "3", "--log-level", "warn",
			"--trust-loopback"} // a loopback cluster: every node shares 127.0.0.1
		if c.data {
			args = append(args, "--data", filepath.Join(c.dir, name))
		}
		if boot != "" {
			args = append(args, "--bootstrap", boot)
		} else {
			boot = fmt.Sprintf("127.0.0.1:%d", up)
		}
		if err := c.spawn(c.dir, name, nil, c.bin, args...); err != nil {
			return err
		}
		c.apis = append(c.apis, fmt.Sprintf("http://127.0.0.1:%d", hp))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, api := range c.apis {
		err := waitHTTP(ctx, api+"/v1/status", func(b []byte) bool {
			var st struct {
				Routing struct{ Nodes int } `json:"routing"`
			}
			return json.Unmarshal(b, &st) == nil && st.Routing.Nodes >= nodes-1
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func (c *dhtkitCluster) request(w int, key string, value []byte) (*http.Request, error) {
	u := c.apis[w%len(c.apis)] + "/v1/keys/" + url.PathEscape(key)
	if value == nil {
		return http.NewRequest(http.MethodGet, u, nil)
	}
	return http.NewRequest(http.MethodPut, u, bytes.NewReader(value))
}

func (c *dhtkitCluster) check(body, want []byte) error {
	if !bytes.Equal(body, want) {
		return fmt.Errorf("got %d bytes, want the %d written", len(body), len(want))
	}
	return nil
}

func (c *dhtkitCluster) stop() { c.procs.stop(); c.apis = nil }

type dhtnodeCluster struct {
	bin, dir string
	procs
	proxies []string
}

func (c *dhtnodeCluster) name() string { return "dhtnode" }

func (c *dhtnodeCluster) start(nodes int) error {
	var boot string
	for i := range nodes {
		up, err := freePort()
		if err != nil {
			return err
		}
		hp, err := freePort()
		if err != nil {
			return err
		}
		args := []string{"-s", "-U", "-n", "4242", "-p", strconv.Itoa(up), "--proxyserver", strconv.Itoa(hp)}
		if boot != "" {
			args = append(args, "-b", boot)
		} else {
			boot = fmt.Sprintf("127.0.0.1:%d", up)
		}
		if err := c.spawn(c.dir, fmt.Sprintf("dhtnode%d", i), nil, c.bin, args...); err != nil {
			return err
		}
		c.proxies = append(c.proxies, fmt.Sprintf("http://127.0.0.1:%d", hp))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, p := range c.proxies {
		err := waitHTTP(ctx, p+"/", func(b []byte) bool {
			var st struct {
				IPv4 struct{ Good, Dubious int } `json:"ipv4"`
			}
			return json.Unmarshal(b, &st) == nil && st.IPv4.Good >= 1
		})
		if err != nil {
			return err
		}
	}
	// OpenDHT nodes learn of each other as they work; the counters above
	// show only the bootstrap node by then. A short settle lets the
	// first lookups fill the tables.
	time.Sleep(2 * time.Second)
	return nil
}

func (c *dhtnodeCluster) request(w int, key string, value []byte) (*http.Request, error) {
	h := sha1.Sum([]byte(key))
	u := c.proxies[w%len(c.proxies)] + "/key/" + hex.EncodeToString(h[:])
	if value == nil {
		return http.NewRequest(http.MethodGet, u, nil)
	}
	body, err := json.Marshal(map[string]string{"data": base64.StdEncoding.EncodeToString(value)})
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequest(http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	return req, nil
}

// check accepts a get whose answer (one JSON value per line) holds want.
func (c *dhtnodeCluster) check(body, want []byte) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	for {
		var v struct {
			Data string `json:"data"`
		}
		if err := dec.Decode(&v); err != nil {
			if err == io.EOF {
				return fmt.Errorf("the value written is not among the %d bytes answered", len(body))
			}
			return fmt.Errorf("decoding the answer: %w", err)
		}
		if d, err := base64.StdEncoding.DecodeString(v.Data); err == nil && bytes.Equal(d, want) {
			return nil
		}
	}
}

func (c *dhtnodeCluster) stop() { c.procs.stop(); c.proxies = nil }
