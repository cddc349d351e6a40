package dhtkit

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/internal/syncbuf"
)

// deadAddr returns a loopback UDP address where nothing listens.
func deadAddr(t *testing.T) string {
	t.Helper()
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := c.LocalAddr().String()
	c.Close()
	return addr
}

// TestNotReadyRefuses: a node that has not joined, or knows too few
// nodes, refuses reads and writes with ErrNotJoined once the request's
// context ends, saying what to do; it never acknowledges a write alone.
func TestNotReadyRefuses(t *testing.T) {
	tests := []struct {
		name string
		cfg  func(t *testing.T) Config
		want string // in the error
	}{
		{"no bootstrap, not alone", func(t *testing.T) Config { return testConfig() }, "--bootstrap none"},
		{"a dead bootstrap address", func(t *testing.T) Config {
			c := testConfig()
			c.Bootstrap = []string{deadAddr(t)}
			return c
		}, "no node has answered at"},
		{"chord, no bootstrap", func(t *testing.T) Config {
			c := testConfig()
			c.Protocol = Chord
			return c
		}, "fewer than the 1 a write quorum of 3 replicas needs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := newNode(t, tt.cfg(t))
			for _, op := range []struct {
				name string
				do   func(ctx context.Context) error
			}{
				{"put", func(ctx context.Context) error {
					_, err := n.Put(ctx, "k", []byte("v"), PutOptions{})
					return err
				}},
				{"get", func(ctx context.Context) error { _, err := n.Get(ctx, "k"); return err }},
				{"delete", func(ctx context.Context) error { return n.Delete(ctx, "k") }},
			} {
				ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
				err := op.do(ctx)
				cancel()
				if !errors.Is(err, ErrNotJoined) || !strings.Contains(err.Error(), tt.want) {
					t.Errorf("%s: err %v, want ErrNotJoined saying %q", op.name, err, tt.want)
				}
			}
			if ok, why := n.Ready(); ok || why == "" {
				t.Errorf("Ready() = %v, %q", ok, why)
			}
			if len(n.Local()) != 0 {
				t.Errorf("a refused write stored %d records", len(n.Local()))
			}
		})
	}
}

// TestPutRightAfterListenWaitsForTheJoin: a put started at once after
// Listen waits until the node has joined, and the write lands on other
// nodes too (it was acknowledged by one node alone before).
func TestPutRightAfterListenWaitsForTheJoin(t *testing.T) {
	for _, proto := range []string{Kademlia, Chord} {
		t.Run(proto, func(t *testing.T) {
			opt := func(c *Config) { c.Protocol = proto }
			seeds := network(t, 3, 7, opt)
			cfg := testConfig()
			opt(&cfg)
			cfg.Bootstrap = []string{seeds[0].Addr().String()}
			n := newNode(t, cfg)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if _, err := n.Put(ctx, "fresh", []byte("v"), PutOptions{}); err != nil {
				t.Fatal(err)
			}
			if ok, why := n.Ready(); !ok {
				t.Fatalf("a put succeeded on a node that is not ready: %s", why)
			}
			holders, err := n.Where(ctx, "fresh")
			if err != nil {
				t.Fatal(err)
			}
			others := 0
			for _, h := range holders {
				if h.Has && !h.Self {
					others++
				}
			}
			if others == 0 {
				t.Errorf("the write is held by no other node: %+v", holders)
			}
		})
	}
}

// TestAloneOnPurpose: Config.Alone serves at once, and excludes bootstrap
// addresses.
func TestAloneOnPurpose(t *testing.T) {
	cfg := testConfig()
	cfg.Alone = true
	n := newNode(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := n.Put(ctx, "solo", []byte("v"), PutOptions{}); err != nil {
		t.Fatalf("a node alone on purpose refused a put: %v", err)
	}
	if v, err := n.Get(ctx, "solo"); err != nil || string(v.Data) != "v" {
		t.Fatalf("get: %q, %v", v.Data, err)
	}
	cfg.Bootstrap = []string{"127.0.0.1:1"}
	if _, err := Listen(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "Alone") {
		t.Errorf("Alone with Bootstrap: err %v, want a refusal naming Alone", err)
	}
}

// syncBuffer is a bytes.Buffer safe for a logger's concurrent writes.
type syncBuffer = syncbuf.Buffer

// TestDeadBootstrapIsLogged: the README promises "no node answered at
// LIST within 30s" when every bootstrap node is dead.
func TestDeadBootstrapIsLogged(t *testing.T) {
	old := bootSilence
	bootSilence = 200 * time.Millisecond
	t.Cleanup(func() { bootSilence = old })
	for _, proto := range []string{Kademlia, Chord} {
		t.Run(proto, func(t *testing.T) {
			var logs syncBuffer
			cfg := testConfig()
			cfg.Protocol = proto
			dead := deadAddr(t)
			cfg.Bootstrap = []string{dead}
			cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
			newNode(t, cfg)
			want := "no node answered at " + dead + " within 200ms"
			deadline := time.Now().Add(10 * time.Second)
			for !strings.Contains(logs.String(), want) {
				if time.Now().After(deadline) {
					t.Fatalf("no %q in the log:\n%s", want, logs.String())
				}
				time.Sleep(20 * time.Millisecond)
			}
			if !strings.Contains(logs.String(), "--protocol") {
				t.Errorf("the line does not point at a protocol mismatch:\n%s", logs.String())
			}
		})
	}
}
