package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit"
	"github.com/dhtkit/dhtkit/httpapi"
	"github.com/dhtkit/dhtkit/kademlia"
	"github.com/dhtkit/dhtkit/store"
)

// TestErrorTextNamesEachThingOnce drives the error paths of the command
// line and of the HTTP API against a node alone with a tiny store, and
// checks that each error names its key (or prefix) exactly once and
// carries no layer's prefix twice (issue 14: `put "k": … storing "k" …`,
// `get "k": dhtkit: get "k": …`).
func TestErrorTextNamesEachThingOnce(t *testing.T) {
	kc := kademlia.DefaultConfig()
	kc.TrustLoopback = true
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	node, err := dhtkit.Listen(ctx, dhtkit.Config{
		Listen: "127.0.0.1:0", Kademlia: kc, Logger: quiet, Alone: true,
		// Room for a small value, none for a 2 KiB one; a TTL of an hour at most.
		Limits: store.Config{MaxBytes: 600, MaxTTL: time.Hour},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { node.Close() })
	url, err := serveHTTP(ctx, "127.0.0.1:0", node, httpapi.Options{}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	api := strings.TrimSuffix(url, "/")
	t.Setenv("DHTKIT_API", api)
	t.Setenv("DHTKIT_KEY", filepath.Join(t.TempDir(), "identity"))
	t.Setenv("DHTKIT_TOKEN", "")

	big := strings.Repeat("x", 2048)
	// Set-up: a key its signer owns, so that an unsigned write is refused.
	if code, _, errs := dhtkitCmd(t, "put", "owned-k9", "mine", "--sign"); code != 0 {
		t.Fatalf("put --sign: exit %d: %s", code, errs)
	}

	cli := []struct {
		name string
		args []string
		key  string // named exactly once
	}{
		{"capacity", []string{"put", "cap-k1", big}, "cap-k1"},
		{"capacity, file", []string{"put", "cap-k2", "--file", writeTemp(t, big)}, "cap-k2"},
		{"missing", []string{"get", "miss-k3"}, "miss-k3"},
		{"missing, json", []string{"get", "miss-k4", "--json"}, "miss-k4"},
		{"whereis missing", []string{"whereis", "miss-k5"}, "miss-k5"},
		{"ttl over the node's limit", []string{"put", "ttl-k6", "v", "--ttl", "5h"}, "ttl-k6"},
		{"owned key, unsigned put", []string{"put", "owned-k9", "yours"}, "owned-k9"},
		{"owned key, unsigned delete", []string{"del", "owned-k9"}, "owned-k9"},
		{"wrong signer", []string{"get", "owned-k9", "--signer", strings.Repeat("ab", 32)}, "owned-k9"},
		{"missing, with a signer", []string{"get", "miss-k7", "--signer", strings.Repeat("ab", 32)}, "miss-k7"},
		{"missing, to a file", []string{"get", "miss-k8", "--out", filepath.Join(os.TempDir(), "dhtkit-errtext-none")}, "miss-k8"},
	}
	for _, tt := range cli {
		t.Run("cli "+tt.name, func(t *testing.T) {
			code, _, errs := dhtkitCmd(t, tt.args...)
			if code == 0 {
				t.Fatalf("%v succeeded; want an error", tt.args)
			}
			onceEach(t, errs, tt.key)
		})
	}

	httpCases := []struct {
		name, method, path, body, key string
	}{
		{"capacity", http.MethodPut, "/v1/keys/cap-h1", big, "cap-h1"},
		{"missing", http.MethodGet, "/v1/keys/miss-h2", "", "miss-h2"},
		{"missing where", http.MethodGet, "/v1/keys/miss-h3/where", "", ""},
		{"ttl", http.MethodPut, "/v1/keys/ttl-h4?ttl=5h", "v", "ttl-h4"},
		{"owned key", http.MethodPut, "/v1/keys/owned-k9", "yours", "owned-k9"},
		{"wrong signer", http.MethodGet, "/v1/keys/owned-k9?signer=" + strings.Repeat("ab", 32), "", "owned-k9"},
		{"missing, with a signer", http.MethodGet, "/v1/keys/miss-h6?signer=" + strings.Repeat("ab", 32), "", "miss-h6"},
		{"missing, head", http.MethodHead, "/v1/keys/miss-h7", "", ""},
		{"bad limit", http.MethodGet, "/v1/keys?prefix=pfx-h5&limit=-1", "", ""},
	}
	for _, tt := range httpCases {
		t.Run("http "+tt.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(ctx, tt.method, api+tt.path, strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if tt.key == "" { // not an error path on every protocol: only no doubling
				onceEach(t, string(b))
				return
			}
			if resp.StatusCode < 400 {
				t.Fatalf("%s %s: %s %s; want an error", tt.method, tt.path, resp.Status, b)
			}
			onceEach(t, string(b), tt.key)
		})
	}
}

// onceEach fails unless text names each of keys exactly once and holds no
// layer's prefix ("dhtkit:", "store:", `put "k":`…) twice.
func onceEach(t *testing.T, text string, keys ...string) {
	t.Helper()
	for _, k := range keys {
		if n := strings.Count(text, k); n != 1 {
			t.Errorf("%q names %q %d times; want once", text, k, n)
		}
	}
	for _, p := range []string{"dhtkit:", "store:", "owner:", "kademlia:", "dk_store:", `get "`, `put "`, `delete "`, `where "`} {
		if n := strings.Count(text, p); n > 1 {
			t.Errorf("%q holds %q %d times; want at most once", text, p, n)
		}
	}
}

func writeTemp(t *testing.T, s string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "value")
	if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
