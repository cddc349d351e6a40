package rawtcp

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/internal/cputime"
)

// serverEnv names, in a copy of the test binary started by BenchmarkHTTP,
// the server it is to be: "raw" or "go".
const serverEnv = "RAWTCP_BENCH_SERVER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(serverEnv); mode != "" {
		serve(mode)
		return
	}
	os.Exit(m.Run())
}

// serve is the server process of BenchmarkHTTP: it prints its address,
// answers until its standard input closes, and tells its CPU time and
// context switches at /stats.
func serve(mode string) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ln := inner
	if mode == "raw" {
		ln = Listener(inner)
	}
	go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/stats" {
			var ru syscall.Rusage
			syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
			fmt.Fprintf(w, "%d %d", cputime.Used(), ru.Nvcsw+ru.Nivcsw)
			return
		}
		io.Copy(io.Discard, r.Body)
		w.Header()["Content-Type"] = []string{"application/json"}
		io.WriteString(w, `{"ok":true}`)
	}))
	fmt.Println(inner.Addr())
	io.Copy(io.Discard, os.Stdin)
}

// BenchmarkHTTP is a 100-byte PUT and its answer through net/http over
// loopback, 8 in flight, to a server in a process of its own on one P (as
// bench/kv runs each node), with the server's connections raw (Listener)
// or Go's own: the server process's CPU and context switches per request.
// A server that goes idle and busy again between requests is where raw
// calls matter (see the package comment); client and server in one
// process would keep each other's monitor awake.
func BenchmarkHTTP(b *testing.B) {
	for _, mode := range []string{"raw", "go"} {
		b.Run(mode, func(b *testing.B) {
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), serverEnv+"="+mode, "GOMAXPROCS=1")
			stdin, _ := cmd.StdinPipe()
			stdout, _ := cmd.StdoutPipe()
			cmd.Stderr = os.Stderr
			if err := cmd.Start(); err != nil {
				b.Fatal(err)
			}
			defer cmd.Wait()
			defer stdin.Close()
			addr, err := bufio.NewReader(stdout).ReadString('\n')
			if err != nil {
				b.Fatal(err)
			}
			base := "http://" + strings.TrimSpace(addr)
			c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: time.Minute}
			stats := func() (cpu time.Duration, switches int64) {
				res, err := c.Get(base + "/stats")
				if err != nil {
					b.Fatal(err)
				}
				defer res.Body.Close()
				if _, err := fmt.Fscan(res.Body, &cpu, &switches); err != nil {
					b.Fatal(err)
				}
				return cpu, switches
			}
			body := strings.Repeat("x", 100)
			b.ReportAllocs()
			b.SetParallelism(4) // 8 in flight on 2 cores
			cpu0, sw0 := stats()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req, _ := http.NewRequest(http.MethodPut, base+"/v1/keys/k", strings.NewReader(body))
					res, err := c.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					io.Copy(io.Discard, res.Body)
					res.Body.Close()
				}
			})
			b.StopTimer()
			cpu1, sw1 := stats()
			b.ReportMetric(float64(cpu1-cpu0)/float64(b.N)/1e3, "server-cpu-µs/op")
			b.ReportMetric(float64(sw1-sw0)/float64(b.N), "server-switches/op")
		})
	}
}
