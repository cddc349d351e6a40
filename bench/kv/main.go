// Command kvload compares the key-value store of a dhtkit cluster with
// OpenDHT's dhtnode and etcd (-etcd, -etcd-members) under the same load,
// one system after the other in one invocation, -runs times: each runs as
// a cluster of -nodes processes on 127.0.0.1, and
// the same HTTP load generator (-concurrency workers, each keeping one
// request in flight, for -duration per phase) puts fresh keys and then
// gets the keys it put, for every value size. It prints throughput and
// latency percentiles per system, the ratios of dhtkit to dhtnode and to
// etcd, and the load average before and after each run, as Markdown.
// Beside each phase's throughput it gives the CPU time every process of
// the cluster used per operation (user and kernel, from /proc): on a
// machine the load generator and the cluster share, the figure that
// throughput follows, and steadier than throughput when the machine is
// busy. -pprof DIR saves a CPU profile of dhtkit's first node during each
// phase (go tool pprof DIR/dhtkit-put-100-run1.pprof).
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
		etcdBin     = flag.String("etcd", "", `etcd's server binary (Debian's etcd-server); "" skips it`)
		etcdMembers = flag.Int("etcd-members", 3, "members of the etcd cluster")
		runs        = flag.Int("runs", 1, "how many times to run the whole comparison, one run after the other")
		nodes       = flag.Int("nodes", 5, "nodes per cluster")
		duration    = flag.Duration("duration", 5*time.Second, "how long each phase (system × op × size) runs")
		concurrency = flag.Int("concurrency", 32, "requests in flight")
		sizesFlag   = flag.String("sizes", "100,4096", "value sizes in bytes, comma-separated")
		withData    = flag.Bool("data", true, "also run dhtkit with --data (bbolt on disk)")
		allowPublic = flag.Bool("allow-public-bind", false, "start dhtnode outside a private network namespace")
		pprofDir    = flag.String("pprof", "", "save a CPU profile of dhtkit's first node during each phase in this directory")
		gomaxprocs  = flag.Int("gomaxprocs", 0, "run every Go server (dhtkit's nodes and etcd's members alike) with GOMAXPROCS=N; 0 leaves Go's default (one P per core)")
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

	if *pprofDir != "" {
		if err := os.MkdirAll(*pprofDir, 0o755); err != nil {
			log.Fatal(err)
		}
	}
	// Five nodes and a load generator share the machine's cores, so each
	// Go server with one P per core wakes a second thread for work its
	// first then takes (BENCHMARKS.md, "CPU per in-memory put and get");
	// -gomaxprocs sets the same for every Go server, so that the
	// comparison stays fair. dhtnode, in C++, keeps its own threads.
	var goEnv []string
	if *gomaxprocs < 0 {
		log.Fatalf("-gomaxprocs %d: want 0 (Go's default) or a positive number of Ps", *gomaxprocs)
	} else if *gomaxprocs > 0 {
		goEnv = []string{fmt.Sprintf("GOMAXPROCS=%d", *gomaxprocs)}
		fmt.Printf("Go servers (dhtkit, etcd) run with GOMAXPROCS=%d\n\n", *gomaxprocs)
	}
	systems := []system{&dhtkitCluster{bin: *dhtkitBin, dir: tmp, pprof: *pprofDir, procs: procs{env: goEnv}}}
	if *withData {
		systems = append(systems, &dhtkitCluster{bin: *dhtkitBin, dir: tmp, data: true, pprof: *pprofDir, procs: procs{env: goEnv}})
	}
	if *dhtnodeBin != "" {
		systems = append(systems, &dhtnodeCluster{bin: *dhtnodeBin, dir: tmp})
	}
	if *etcdBin != "" {
		systems = append(systems, &etcdCluster{bin: *etcdBin, dir: tmp, members: *etcdMembers, procs: procs{env: goEnv}})
	}
	var all [][]result
	var loads []string
	for i := range max(*runs, 1) {
		var results []result
		before := loadAvg()
		for _, sys := range systems {
			n := *nodes
			if e, ok := sys.(*etcdCluster); ok {
				n = e.members
			}
			log.Printf("run %d: starting %d %s nodes", i+1, n, sys.name())
			t0 := time.Now()
			if err := sys.start(n); err != nil {
				sys.stop()
				log.Fatalf("%s: %v", sys.name(), err)
			}
			log.Printf("%s: every node ready after %v", sys.name(), time.Since(t0).Round(time.Millisecond))
			for _, size := range sizes {
				for _, op := range []string{"put", "get"} {
					r := run(sys, op, size, *concurrency, *duration, i+1)
					log.Printf("%-14s %s %5d B: %8.0f ops/s  p50 %6.2f ms  p99 %7.2f ms  cluster CPU %s µs/op, %.1f context switches/op  errors %d%s%s",
						sys.name(), op, size, r.rate(), ms(r.p50), ms(r.p99), r.cpuPerOp(), float64(r.switches)/float64(max(r.ops, 1)), r.errors, r.firstErr, r.commitText(n))
					results = append(results, r)
				}
			}
			sys.stop()
		}
		clear(written) // the next run writes its own keys
		loads = append(loads, fmt.Sprintf("load average %s before, %s after", before, loadAvg()))
		if *runs > 1 {
			fmt.Printf("### Run %d of %d (%s)\n\n", i+1, *runs, loads[i])
		} else {
			fmt.Printf("%s\n\n", loads[i])
		}
		report(os.Stdout, results, *nodes, *concurrency, *duration)
		fmt.Println()
		all = append(all, results)
	}
	if len(all) > 1 {
		summary(os.Stdout, all, loads)
	}
}

// loadAvg is the machine's 1-minute load average, or "?": the machine may
// be shared, and every figure says how busy it was.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "?"
	}
	return f[0]
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
	// cpu is the CPU time (user and system) the cluster's processes have
	// used so far, -1 if unknown; switches their threads' context
	// switches so far.
	cpu() time.Duration
	switches() int64
}

// committer is a system whose nodes report their group commits (dhtkit's
// /metrics): commits returns the cluster's totals so far.
type committer interface {
	commits() commitTotals
}

// commitTotals are a cluster's group commits: how many, the records they
// held and the time they took.
type commitTotals struct {
	n, records uint64
	time       time.Duration
}

func (a commitTotals) minus(b commitTotals) commitTotals {
	return commitTotals{a.n - b.n, a.records - b.records, a.time - b.time}
}

// profiler is a system that can profile one of its nodes: profile
// returns a CPU profile of d, to be saved in profileDir ("": none asked).
type profiler interface {
	profileDir() string
	profile(d time.Duration) ([]byte, error)
}

type result struct {
	system, op string
	size       int
	ops        int
	errors     int
	firstErr   string
	elapsed    time.Duration
	p50, p99   time.Duration
	cpu        time.Duration // the cluster's CPU time during the phase
	switches   int64         // the cluster's context switches during the phase
	commits    commitTotals  // the cluster's group commits during the phase
}

// commitText describes the phase's group commits for the progress line,
// "" when the system reports none.
func (r result) commitText(nodes int) string {
	c := r.commits
	if c.n == 0 {
		return ""
	}
	return fmt.Sprintf(", %.0f commits/s per node of %.1f records, %.2f ms each",
		float64(c.n)/r.elapsed.Seconds()/float64(max(nodes, 1)), float64(c.records)/float64(c.n), ms(c.time)/float64(c.n))
}

func (r result) rate() float64 { return float64(r.ops) / r.elapsed.Seconds() }

// cpuPerOp is the cluster's CPU time per operation in microseconds, the
// figure a CPU-bound machine's throughput follows, or "–" if unknown.
func (r result) cpuPerOp() string {
	if r.cpu <= 0 || r.ops == 0 {
		return "–"
	}
	return fmt.Sprintf("%.0f", float64(r.cpu)/float64(time.Microsecond)/float64(r.ops))
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// written remembers, per system and size, the keys the put phase stored
// and their values, for the get phase.
var written = map[string][]kv{}

type kv struct {
	key   string
	value []byte
}

// run drives one phase: concurrency workers, each with one request in
// flight, for d, in run n. A profiler's profile of the phase is saved as
// <system>-<op>-<size>-run<n>.pprof.
func run(sys system, op string, size, concurrency int, d time.Duration, n int) result {
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
	var profiled sync.WaitGroup
	if p, ok := sys.(profiler); ok && p.profileDir() != "" && d >= 2*time.Second {
		name := fmt.Sprintf("%s-%s-%d-run%d.pprof", strings.ReplaceAll(sys.name(), " ", ""), op, size, n)
		profiled.Go(func() {
			// A whole second less than the phase, so that the profile
			// holds nothing but load.
			b, err := p.profile(d - time.Second)
			if err == nil {
				err = os.WriteFile(filepath.Join(p.profileDir(), name), b, 0o644)
			}
			if err != nil {
				log.Printf("profile %s: %v", name, err)
			}
		})
	}
	cpu0, sw0 := sys.cpu(), sys.switches()
	cm, _ := sys.(committer)
	var commits0 commitTotals
	if cm != nil {
		commits0 = cm.commits()
	}
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
	if cpu1 := sys.cpu(); cpu0 >= 0 && cpu1 >= 0 {
		r.cpu = cpu1 - cpu0
	}
	r.switches = sys.switches() - sw0
	if cm != nil {
		r.commits = cm.commits().minus(commits0)
	}
	profiled.Wait()
	slices.Sort(lats)
	if len(lats) > 0 {
		r.p50 = lats[len(lats)/2]
		r.p99 = lats[min(len(lats)-1, len(lats)*99/100)]
	}
	hc.CloseIdleConnections()
	return r
}

func report(w io.Writer, rs []result, nodes, concurrency int, d time.Duration) {
	fmt.Fprintf(w, "%d-node loopback clusters (etcd: its own member count), %d requests in flight, %v per phase, %d cores (%s)\n\n", nodes, concurrency, d, runtime.NumCPU(), runtime.GOARCH)
	fmt.Fprintln(w, "| system | op | value | ops/s | p50 ms | p99 ms | errors | cluster CPU µs/op |")
	fmt.Fprintln(w, "| ------ | -- | ----: | ----: | -----: | -----: | -----: | ----: |")
	for _, r := range rs {
		fmt.Fprintf(w, "| %s | %s | %d B | %.0f | %.2f | %.2f | %d | %s |\n", r.system, r.op, r.size, r.rate(), ms(r.p50), ms(r.p99), r.errors, r.cpuPerOp())
	}
	for _, base := range []string{"dhtnode", "etcd"} {
		ratios(w, rs, base)
	}
}

// isDhtkit reports whether a system is one of dhtkit's: ratios are
// dhtkit's against the others.
func isDhtkit(system string) bool { return strings.HasPrefix(system, "dhtkit") }

// ratio is r against the same op and size of base, if base ran it.
func ratio(rs []result, r result, base string) (tput, p99 float64, ok bool) {
	for _, b := range rs {
		if b.system == base && b.op == r.op && b.size == r.size && b.ops > 0 && b.p99 > 0 && r.ops > 0 {
			return r.rate() / b.rate(), float64(r.p99) / float64(b.p99), true
		}
	}
	return 0, 0, false
}

// ratios prints dhtkit's throughput and p99 against base's.
func ratios(w io.Writer, rs []result, base string) {
	header := false
	for _, r := range rs {
		if !isDhtkit(r.system) {
			continue
		}
		t, p, ok := ratio(rs, r, base)
		if !ok {
			continue
		}
		if !header {
			fmt.Fprintf(w, "\nRatios against %s (throughput: higher is better; p99: lower is better):\n", base)
			fmt.Fprintf(w, "\n| system | op | value | throughput × %s | p99 × %s |\n", base, base)
			fmt.Fprintln(w, "| ------ | -- | ----: | ----: | ----: |")
			header = true
		}
		fmt.Fprintf(w, "| %s | %s | %d B | %.2f× | %.2f× |\n", r.system, r.op, r.size, t, p)
	}
}

// summary prints, for every dhtkit row, its ratios in each run side by
// side: throughput × base (p99 × base).
func summary(w io.Writer, runs [][]result, loads []string) {
	fmt.Fprintf(w, "### Ratios over the %d runs: throughput × other (p99 × other)\n\n", len(runs))
	for i, l := range loads {
		fmt.Fprintf(w, "- run %d: %s\n", i+1, l)
	}
	for _, base := range []string{"dhtnode", "etcd"} {
		header := false
		for j, r := range runs[0] {
			if !isDhtkit(r.system) {
				continue
			}
			if _, _, ok := ratio(runs[0], r, base); !ok {
				continue
			}
			if !header {
				fmt.Fprintf(w, "\n| dhtkit ÷ %s | op | value |", base)
				for i := range runs {
					fmt.Fprintf(w, " run %d |", i+1)
				}
				fmt.Fprintf(w, "\n| --- | -- | ----: |%s\n", strings.Repeat(" ---: |", len(runs)))
				header = true
			}
			fmt.Fprintf(w, "| %s | %s | %d B |", r.system, r.op, r.size)
			for _, rs := range runs {
				if j >= len(rs) {
					fmt.Fprint(w, " – |")
					continue
				}
				if t, p, ok := ratio(rs, rs[j], base); ok {
					fmt.Fprintf(w, " %.2f× (%.2f×) |", t, p)
				} else {
					fmt.Fprint(w, " – |")
				}
			}
			fmt.Fprintln(w)
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
// procs are a cluster's processes; each starts with env added to the
// generator's own environment (-gomaxprocs).
type procs struct {
	env  []string
	cmds []*exec.Cmd
}

func (p *procs) spawn(dir, name, bin string, args ...string) error {
	logf, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), p.env...)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", bin, err)
	}
	p.cmds = append(p.cmds, cmd)
	return nil
}

// switches sums the context switches of every thread of the processes
// (voluntary and not), from /proc/PID/task/TID/status (Linux; 0
// elsewhere): each is a thread put to sleep or woken, a cost the
// profiles of one process spread over the scheduler and the kernel.
func (p *procs) switches() int64 {
	var total int64
	for _, c := range p.cmds {
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", c.Process.Pid))
		for _, t := range tasks {
			b, err := os.ReadFile(t)
			if err != nil {
				continue // the thread exited
			}
			for _, line := range strings.Split(string(b), "\n") {
				if v, ok := strings.CutPrefix(line, "voluntary_ctxt_switches:"); ok {
					n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
					total += n
				} else if v, ok := strings.CutPrefix(line, "nonvoluntary_ctxt_switches:"); ok {
					n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
					total += n
				}
			}
		}
	}
	return total
}

// cpu sums the user and system time of the processes, from
// /proc/PID/stat (Linux; -1 elsewhere). A cluster just started may have
// used less than a tick: 0 is a reading.
func (p *procs) cpu() time.Duration {
	var total time.Duration
	for _, c := range p.cmds {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", c.Process.Pid))
		if err != nil {
			return -1
		}
		t, ok := statCPU(b)
		if !ok {
			return -1
		}
		total += t
	}
	return total
}

// statCPU reads utime and stime, fields 14 and 15 of a /proc/PID/stat,
// in clock ticks of USER_HZ, 100 on every Linux.
func statCPU(stat []byte) (time.Duration, bool) {
	// The command name, in parentheses, may hold spaces and parentheses:
	// the fields counted from 3 (state) start after the last ')'.
	end := bytes.LastIndexByte(stat, ')')
	if end < 0 {
		return 0, false
	}
	f := strings.Fields(string(stat[end+1:]))
	if len(f) < 13 {
		return 0, false
	}
	var total time.Duration
	for _, s := range f[11:13] {
		t, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, false
		}
		total += time.Duration(t) * (time.Second / 100)
	}
	return total, true
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
	pprof    string // the profiles' directory, "" for none
	procs
	apis      []string
	pprofAddr string // the first node's --pprof
}

func (c *dhtkitCluster) name() string {
	if c.data {
		return "dhtkit --data"
	}
	return "dhtkit"
}

func (c *dhtkitCluster) start(nodes int) error {
	// Fresh data directories for every start: a node restarted from the
	// last run's directory would bootstrap from the contacts it saved,
	// whose ports are gone.
	data, err := os.MkdirTemp(c.dir, "dhtkit-")
	if err != nil {
		return err
	}
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
			args = append(args, "--data", filepath.Join(data, name))
		}
		if i == 0 && c.pprof != "" {
			pp, err := freePort()
			if err != nil {
				return err
			}
			c.pprofAddr = fmt.Sprintf("127.0.0.1:%d", pp)
			args = append(args, "--pprof", c.pprofAddr)
		}
		if boot != "" {
			args = append(args, "--bootstrap", boot)
		} else {
			boot = fmt.Sprintf("127.0.0.1:%d", up)
		}
		if err := c.spawn(c.dir, name, c.bin, args...); err != nil {
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

func (c *dhtkitCluster) profileDir() string { return c.pprof }

// commits sums the nodes' group commits from their /metrics; a node that
// does not answer counts for nothing.
func (c *dhtkitCluster) commits() commitTotals {
	var t commitTotals
	hc := &http.Client{Timeout: 5 * time.Second}
	for _, api := range c.apis {
		resp, err := hc.Get(api + "/metrics")
		if err != nil {
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for line := range strings.Lines(string(b)) {
			name, v, ok := strings.Cut(strings.TrimSpace(line), " ")
			f, err := strconv.ParseFloat(v, 64)
			if !ok || err != nil {
				continue
			}
			switch name {
			case "dhtkit_store_commit_duration_seconds_count":
				t.n += uint64(f)
			case "dhtkit_store_commit_duration_seconds_sum":
				t.time += time.Duration(f * float64(time.Second))
			case "dhtkit_store_commit_records_total":
				t.records += uint64(f)
			}
		}
	}
	return t
}

func (c *dhtkitCluster) profile(d time.Duration) ([]byte, error) {
	secs := max(1, int(d/time.Second))
	hc := &http.Client{Timeout: d + 10*time.Second}
	resp, err := hc.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", c.pprofAddr, secs))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(b))
	}
	return b, err
}

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
		if err := c.spawn(c.dir, fmt.Sprintf("dhtnode%d", i), c.bin, args...); err != nil {
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

// etcdCluster is etcd (Debian's etcd-server, 3.4) as a cluster of members
// on 127.0.0.1, driven through its v3 JSON gateway on each member's client
// URL (POST /v3/kv/put and /v3/kv/range, keys and values base64): the
// same HTTP load generator, no client library. Each member fsyncs its Raft
// log on every commit (batched), as etcd always does.
type etcdCluster struct {
	bin, dir string
	members  int
	procs
	clients []string
}

func (c *etcdCluster) name() string { return "etcd" }

func (c *etcdCluster) start(members int) error {
	type member struct {
		name         string
		client, peer int
	}
	ms := make([]member, members)
	var initial []string
	for i := range ms {
		cp, err := freePort()
		if err != nil {
			return err
		}
		pp, err := freePort()
		if err != nil {
			return err
		}
		ms[i] = member{fmt.Sprintf("etcd%d", i), cp, pp}
		initial = append(initial, fmt.Sprintf("%s=http://127.0.0.1:%d", ms[i].name, pp))
	}
	data, err := os.MkdirTemp(c.dir, "etcd-")
	if err != nil {
		return err
	}
	for _, m := range ms {
		client := fmt.Sprintf("http://127.0.0.1:%d", m.client)
		peer := fmt.Sprintf("http://127.0.0.1:%d", m.peer)
		args := []string{"--name", m.name, "--data-dir", filepath.Join(data, m.name),
			"--listen-client-urls", client, "--advertise-client-urls", client,
			"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
			"--initial-cluster", strings.Join(initial, ","), "--initial-cluster-state", "new",
			"--initial-cluster-token", "kvload", "--log-level", "warn", "--logger", "zap"}
		if err := c.spawn(c.dir, m.name, c.bin, args...); err != nil {
			return err
		}
		c.clients = append(c.clients, client)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, cl := range c.clients {
		err := waitHTTP(ctx, cl+"/health", func(b []byte) bool {
			var h struct{ Health string }
			return json.Unmarshal(b, &h) == nil && h.Health == "true"
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func (c *etcdCluster) request(w int, key string, value []byte) (*http.Request, error) {
	k := base64.StdEncoding.EncodeToString([]byte(key))
	var body []byte
	var err error
	path := "/v3/kv/range"
	if value == nil {
		body, err = json.Marshal(map[string]string{"key": k})
	} else {
		path = "/v3/kv/put"
		body, err = json.Marshal(map[string]string{"key": k, "value": base64.StdEncoding.EncodeToString(value)})
	}
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequest(http.MethodPost, c.clients[w%len(c.clients)]+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	return req, nil
}

// check accepts a range answer whose one kv holds want. A range is a
// linearizable read by default: it goes through the leader's read index.
func (c *etcdCluster) check(body, want []byte) error {
	var r struct {
		Kvs []struct {
			Value string `json:"value"`
		} `json:"kvs"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return fmt.Errorf("decoding the answer: %w", err)
	}
	for _, kv := range r.Kvs {
		if v, err := base64.StdEncoding.DecodeString(kv.Value); err == nil && bytes.Equal(v, want) {
			return nil
		}
	}
	return fmt.Errorf("the value written is not in the %d kvs answered", len(r.Kvs))
}

func (c *etcdCluster) stop() { c.procs.stop(); c.clients = nil }
