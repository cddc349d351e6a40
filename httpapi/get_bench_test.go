package httpapi

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkGetHTTP is a GET /v1/keys/{key} of a 100-byte value through
// the handler, 16 in flight, over keys put before the timer starts. With
// one node it is the HTTP path and the local store alone; with three,
// each get is also a quorum read of the key's other replicas over
// loopback. cpu-µs/op is the whole process's CPU per get.
func BenchmarkGetHTTP(b *testing.B) {
	const keys = 256
	for _, count := range []int{1, 3} {
		b.Run("nodes="+strconv.Itoa(count), func(b *testing.B) {
			tn := newTestNet(b, count)
			hs := make([]http.Handler, count)
			for i, n := range tn.nodes {
				hs[i] = New(n, Options{Logger: quiet, Timeout: 10 * time.Second})
			}
			value := make([]byte, 100)
			for i := range keys {
				r := httptest.NewRequest(http.MethodPut, "/v1/keys/get-"+strconv.Itoa(i), bytes.NewReader(value))
				r.Host = "127.0.0.1"
				w := httptest.NewRecorder()
				hs[0].ServeHTTP(w, r)
				if w.Code != http.StatusOK {
					b.Fatalf("PUT: %d %s", w.Code, w.Body)
				}
			}
			var seq atomic.Int64
			cpu0 := cpuTime()
			b.ReportAllocs()
			b.ResetTimer()
			b.SetParallelism(8)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := seq.Add(1)
					r := httptest.NewRequest(http.MethodGet, "/v1/keys/get-"+strconv.FormatInt(i%keys, 10), nil)
					r.Host = "127.0.0.1"
					w := httptest.NewRecorder()
					hs[int(i)%count].ServeHTTP(w, r)
					if w.Code != http.StatusOK || w.Body.Len() != len(value) {
						b.Errorf("GET: %d %s", w.Code, w.Body)
						return
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N)/1e3, "cpu-µs/op")
		})
	}
}
