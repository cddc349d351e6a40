package httpapi

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/internal/cputime"
	"github.com/dhtkit/dhtkit/store"
)

// BenchmarkPutHTTP is a 100-byte PUT /v1/keys/{key} through the handler
// (no TCP: the HTTP server's own cost is not ours), 16 in flight. With
// one node it is the HTTP path and the local store alone; with three,
// each put also writes to two other replicas over loopback, as
// dhtkit's BenchmarkPut does through the Go API. cpu-µs/op is the whole
// process's CPU per put, the figure to compare on a shared machine.
func BenchmarkPutHTTP(b *testing.B) {
	for _, count := range []int{1, 3} {
		b.Run("nodes="+strconv.Itoa(count), func(b *testing.B) {
			hs := benchHandlers(b, count)
			value := make([]byte, 100)
			runHTTP(b, hs, func(i int64) *http.Request {
				return httptest.NewRequest(http.MethodPut, "/v1/keys/bench-"+strconv.FormatInt(i, 10), bytes.NewReader(value))
			}, func(w *httptest.ResponseRecorder) bool { return w.Code == http.StatusOK })
		})
	}
}

// benchHandlers starts count nodes on loopback and an HTTP handler on each.
func benchHandlers(b *testing.B, count int) []http.Handler {
	tn := newTestNet(b, count)
	hs := make([]http.Handler, count)
	for i, n := range tn.nodes {
		hs[i] = New(n, Options{Logger: quiet, Timeout: 10 * time.Second})
	}
	return hs
}

// runHTTP serves req(i) for i = 1, 2, ... b.N on hs in turn, 8
// goroutines per core; ok says whether an answer is right. It reports the whole process's CPU per request, the figure to
// compare on a shared machine.
func runHTTP(b *testing.B, hs []http.Handler, req func(i int64) *http.Request, ok func(*httptest.ResponseRecorder) bool) {
	var seq atomic.Int64
	cpu0 := cputime.Used()
	b.ReportAllocs()
	b.ResetTimer()
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := seq.Add(1)
			r := req(i)
			r.Host = "127.0.0.1"
			w := httptest.NewRecorder()
			hs[int(i)%len(hs)].ServeHTTP(w, r)
			if !ok(w) {
				b.Errorf("%s %s: %d %s", r.Method, r.URL.Path, w.Code, w.Body)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(cputime.Used()-cpu0)/float64(b.N)/1e3, "cpu-µs/op")
}

// TestETag checks the entity tag against the version's own string.
func TestETag(t *testing.T) {
	for _, v := range []store.Version{{}, {Time: 1, Writer: 2}, {Time: 1<<64 - 1, Writer: 0xdeadbeefcafe}} {
		if got, want := etag(v), `"`+v.String()+`"`; got != want {
			t.Errorf("etag(%v) = %s, want %s", v, got, want)
		}
	}
}
