package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit"
	"github.com/dhtkit/dhtkit/kademlia"
	"github.com/dhtkit/dhtkit/store"
)

// BenchmarkStatus measures GET /v1/status, /metrics and the page on a
// node storing 100,000 values of 1 KiB (100 MiB): they read the store's
// counters, so the figure does not grow with the store. Local is the full
// copy they made before (and /v1/local still makes), for comparison.
func BenchmarkStatus(b *testing.B) {
	const records, size = 100_000, 1 << 10
	st := store.NewMemory(store.Config{})
	v := make([]byte, size)
	for i := range records {
		if _, err := st.Put(store.Record{Key: fmt.Sprintf("key-%d", i), Value: v, Version: store.Version{Time: uint64(i + 1), Writer: 1}}); err != nil {
			b.Fatal(err)
		}
	}
	kc := kademlia.DefaultConfig()
	kc.Store = st
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := dhtkit.Listen(ctx, dhtkit.Config{Listen: "127.0.0.1:0", Kademlia: kc, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	defer n.Close()
	h := New(n, Options{Logger: quiet})
	for _, path := range []string{"/v1/status", "/metrics", "/"} {
		b.Run(path, func(b *testing.B) {
			for b.Loop() {
				w := httptest.NewRecorder()
				r := httptest.NewRequest(http.MethodGet, path, nil)
				r.Host = "127.0.0.1"
				h.ServeHTTP(w, r)
				if w.Code != 200 {
					b.Fatal(w.Code)
				}
			}
		})
	}
	b.Run("Local", func(b *testing.B) {
		for b.Loop() {
			if len(n.Local()) != records {
				b.Fatal("short")
			}
		}
	})
}
