package dhtkit

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/store"
)

// readVersion reads key through n: its version, or zero when absent.
func readVersion(t *testing.T, n *Node, key string) (store.Version, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	v, err := n.Get(ctx, key)
	if errors.Is(err, ErrNotFound) {
		return store.Version{}, ""
	}
	if err != nil {
		return store.Version{}, "error: " + err.Error()
	}
	return v.Version, string(v.Data)
}

// TestPermanentPut: a permanent value is written again before it expires,
// for as long as its writer runs (across a restart with the same data
// directory), and is gone within its TTL once cancelled.
func TestPermanentPut(t *testing.T) {
	const ttl = MinPermanentTTL
	dir := t.TempDir()
	nodes := network(t, 4, 41)
	wcfg := testConfig()
	wcfg.DataDir = dir
	wcfg.Bootstrap = []string{nodes[0].Addr().String()}
	writer := newNode(t, wcfg)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	v0, err := writer.Put(ctx, "beacon", []byte("here"), PutOptions{Permanent: true, TTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	if l := writer.Permanent(); len(l) != 1 || l[0].Key != "beacon" || l[0].TTL != ttl {
		t.Fatalf("Permanent() = %+v", l)
	}
	// Two TTLs later it is still there, under a newer version: refreshed.
	waitFor(t, "a refresh", func() bool {
		v, data := readVersion(t, nodes[3], "beacon")
		return data == "here" && v.Newer(v0)
	})
	deadline := time.Now().Add(2 * ttl)
	for time.Now().Before(deadline) {
		if _, data := readVersion(t, nodes[2], "beacon"); data != "here" {
			t.Fatalf("a permanent value read %q while its writer runs", data)
		}
		time.Sleep(500 * time.Millisecond)
	}
	// The list is on disk; a restart with the same data directory goes on
	// refreshing.
	if b, err := os.ReadFile(filepath.Join(dir, permanentFile)); err != nil || len(b) == 0 {
		t.Fatalf("the saved list: %q, %v", b, err)
	}
	if err := writer.Close(); err != nil {
		t.Fatal(err)
	}
	before, _ := readVersion(t, nodes[1], "beacon")
	writer = newNode(t, wcfg)
	if l := writer.Permanent(); len(l) != 1 || l[0].Key != "beacon" {
		t.Fatalf("after a restart Permanent() = %+v", l)
	}
	waitFor(t, "a refresh after the restart", func() bool {
		v, data := readVersion(t, nodes[3], "beacon")
		return data == "here" && v.Newer(before)
	})
	// Cancelled: no more refreshes, gone within its TTL, and forgotten on
	// disk.
	if err := writer.CancelPermanent("beacon"); err != nil {
		t.Fatal(err)
	}
	if err := writer.CancelPermanent("beacon"); !errors.Is(err, ErrNotPermanent) {
		t.Fatalf("a second cancel: %v", err)
	}
	cancelled := time.Now()
	waitFor(t, "the cancelled value to expire", func() bool {
		_, data := readVersion(t, nodes[2], "beacon")
		return data == ""
	})
	if gone := time.Since(cancelled); gone > ttl+5*time.Second {
		t.Errorf("gone %v after the cancel, TTL %v", gone, ttl)
	}
	if l := writer.Permanent(); len(l) != 0 {
		t.Fatalf("after the cancel Permanent() = %+v", l)
	}
	list, err := loadPermanent(filepath.Join(dir, permanentFile))
	if err != nil || len(list) != 0 {
		t.Fatalf("the saved list after the cancel: %+v, %v", list, err)
	}
}

// TestPermanentStops: a delete through the writer stops a permanent put;
// a newer write by someone else (or a delete through another node) stops
// it at its next refresh, which never undoes it.
func TestPermanentStops(t *testing.T) {
	const ttl = MinPermanentTTL
	nodes := network(t, 4, 42)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	w := nodes[0]
	if _, err := w.Put(ctx, "a", []byte("1"), PutOptions{Permanent: true, TTL: ttl}); err != nil {
		t.Fatal(err)
	}
	if err := w.Delete(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if len(w.Permanent()) != 0 {
		t.Fatal("a delete through the writer left the permanent put")
	}
	for _, key := range []string{"b", "c"} {
		if _, err := w.Put(ctx, key, []byte("1"), PutOptions{Permanent: true, TTL: ttl}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := nodes[1].Put(ctx, "b", []byte("2"), PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := nodes[2].Delete(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the writer to see the newer writes", func() bool { return len(w.Permanent()) == 0 })
	if _, data := readVersion(t, nodes[3], "b"); data != "2" {
		t.Fatalf("b reads %q, want the other writer's 2", data)
	}
	if _, data := readVersion(t, nodes[3], "c"); data != "" {
		t.Fatalf("c reads %q after its delete", data)
	}
}

// TestPermanentRefused: the puts that cannot be permanent, and TTLs no
// put may have, fail before anything is written.
func TestPermanentRefused(t *testing.T) {
	cfg := testConfig()
	cfg.Kademlia.Alone = true
	n := newNode(t, cfg)
	ctx := context.Background()
	alice, _ := NewIdentity(make([]byte, 32))
	sealed, err := Seal("k", []byte("v"), alice.Sign, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		value []byte
		opt   PutOptions
		want  error
	}{
		{"negative TTL", []byte("v"), PutOptions{TTL: -time.Second}, store.ErrInvalid},
		{"negative TTL, permanent", []byte("v"), PutOptions{TTL: -time.Second, Permanent: true}, store.ErrInvalid},
		{"TTL too short to refresh", []byte("v"), PutOptions{TTL: time.Second, Permanent: true}, ErrPermanent},
		{"signed", sealed, PutOptions{Permanent: true}, ErrPermanent},
		{"chunked", make([]byte, 3*chunkSize), PutOptions{Permanent: true}, ErrPermanent},
	} {
		if _, err := n.Put(ctx, "k", tc.value, tc.opt); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	if len(n.Permanent()) != 0 {
		t.Fatal("a refused permanent put is kept")
	}
}

// TestPermanentFileDamaged: a damaged list stops the start with a message
// that names the file, instead of dropping the user's permanent puts.
func TestPermanentFileDamaged(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, permanentFile), []byte("[{\"key\":"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig()
	cfg.DataDir = dir
	cfg.Kademlia.Alone = true
	_, err := Listen(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, permanentFile)) {
		t.Fatalf("start with a damaged list: %v", err)
	}
}
