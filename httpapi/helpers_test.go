package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit"
	"github.com/dhtkit/dhtkit/kademlia"
)

// testNet is a network of nodes on loopback, each with its web server.
type testNet struct {
	nodes   []*dhtkit.Node
	servers []*httptest.Server
	events  []*Events
	mu      sync.Mutex
	urls    map[netip.AddrPort]string
}

func (tn *testNet) peerURL(a netip.AddrPort) string {
	tn.mu.Lock()
	defer tn.mu.Unlock()
	return tn.urls[a]
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// newTestNet starts count nodes, joins them through the first, and serves
// each over httptest.
func newTestNet(t testing.TB, count int) *testNet {
	t.Helper()
	tn := &testNet{urls: map[netip.AddrPort]string{}}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for range count {
		ev := NewEvents()
		kc := kademlia.DefaultConfig()
		kc.TrustLoopback = true // every node shares 127.0.0.1
		kc.Tap = ev.Tap
		kc.Alone = count == 1 // a network of one, as asked: its own quorum
		n, err := dhtkit.Listen(ctx, dhtkit.Config{Listen: "127.0.0.1:0", Network: "dhtkit-test", Kademlia: kc, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(New(n, Options{Logger: quiet, PeerURL: tn.peerURL, Events: ev, Timeout: 10 * time.Second}))
		t.Cleanup(func() {
			srv.CloseClientConnections()
			srv.Close()
			n.Close()
		})
		tn.mu.Lock()
		tn.urls[n.Addr()] = srv.URL + "/"
		tn.mu.Unlock()
		tn.nodes = append(tn.nodes, n)
		tn.servers = append(tn.servers, srv)
		tn.events = append(tn.events, ev)
	}
	if count == 1 {
		return tn
	}
	errs := make([]error, count)
	var wg sync.WaitGroup
	for i := 1; i < count; i++ {
		wg.Go(func() { errs[i] = tn.nodes[i].Bootstrap(ctx, tn.nodes[0].Addr()) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	// A second round, so every table holds more than the first node.
	for i := range count {
		wg.Go(func() { errs[i] = tn.nodes[i].Bootstrap(ctx, tn.nodes[(i+1)%count].Addr()) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	return tn
}

// call sends a request and returns the response with its body read.
func call(t testing.TB, method, url string, body io.Reader) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// decode parses a JSON body into a value of type T, failing on unknown
// shapes.
func decode[T any](t testing.TB, b []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("decoding %s: %v", b, err)
	}
	return v
}

// wantError checks an error response: the status and {"error": ...}.
func wantError(t testing.TB, resp *http.Response, body []byte, code int, contains string) {
	t.Helper()
	if resp.StatusCode != code {
		t.Errorf("%s %s: status %d, want %d (body %s)", resp.Request.Method, resp.Request.URL.Path, resp.StatusCode, code, body)
		return
	}
	if resp.Request.Method == http.MethodHead {
		return
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("error Content-Type %q, want application/json", ct)
	}
	e := decode[map[string]string](t, body)
	if len(e) != 1 || e["error"] == "" || !strings.Contains(e["error"], contains) {
		t.Errorf("error body %s, want {\"error\": \"...%s...\"}", body, contains)
	}
}

// recorder is a minimal ResponseWriter for calling a handler directly.
type recorder struct {
	header http.Header
	code   int
	body   strings.Builder
}

func newRecorder() *recorder { return &recorder{header: http.Header{}, code: 200} }

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) Write(b []byte) (int, error) { return r.body.Write(b) }
func (r *recorder) WriteHeader(code int)        { r.code = code }
