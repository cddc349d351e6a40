package httpapi

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
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
			hs := benchHandlers(b, count)
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
			runHTTP(b, hs, func(i int64) *http.Request {
				return httptest.NewRequest(http.MethodGet, "/v1/keys/get-"+strconv.FormatInt(i%keys, 10), nil)
			}, func(w *httptest.ResponseRecorder) bool {
				return w.Code == http.StatusOK && w.Body.Len() == len(value)
			})
		})
	}
}
