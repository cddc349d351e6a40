package dhtkit

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/seal"
)

// writeKeys writes a key file holding keys (key file lines) atomically, as
// an operator's editor or configuration tool would: a new file renamed
// over the old.
func writeKeys(t testing.TB, path string, keys ...[]byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, slices.Concat(keys...), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func newKeyText(t testing.TB) []byte {
	t.Helper()
	k, err := seal.NewKeyText()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func keyedConfig(path string) func(*Config) {
	return func(c *Config) { c.NetworkKey = path }
}

// Only holders of the network key join, read and write: a node without a
// key and a node with another key get no answer, and the members count
// what they dropped.
func TestNetworkKeyAdmitsMembersOnly(t *testing.T) {
	dir := t.TempDir()
	good, other := filepath.Join(dir, "good.key"), filepath.Join(dir, "other.key")
	writeKeys(t, good, newKeyText(t))
	writeKeys(t, other, newKeyText(t))
	nodes := network(t, 3, 7, keyedConfig(good))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := nodes[0].Put(ctx, "greeting", []byte("hello"), PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if v, err := nodes[2].Get(ctx, "greeting"); err != nil || string(v.Data) != "hello" {
		t.Fatalf("get among members: %q, %v", v.Data, err)
	}

	// A signed put carries its owner's version, not this node's: it is no
	// direct write of the node's own, and the replicas take it.
	owner, err := NewIdentity(nil)
	if err != nil {
		t.Fatal(err)
	}
	env, err := Seal("owned", []byte("mine"), owner.Sign, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nodes[1].Put(ctx, "owned", env, PutOptions{}); err != nil {
		t.Fatalf("signed put under a network key: %v", err)
	}
	if v, err := nodes[2].GetSignedBy(ctx, "owned", owner.SignPublic()); err != nil || !bytes.Contains(v.Data, []byte("mine")) {
		t.Fatalf("signed get under a network key: %q, %v", v.Data, err)
	}

	outsiders := map[string]Config{"no key": testConfig(), "another key": testConfig()}
	c := outsiders["another key"]
	c.NetworkKey = other
	outsiders["another key"] = c
	for name, cfg := range outsiders {
		cfg.Kademlia.QueryTimeout = 300 * time.Millisecond
		o := newNode(t, cfg)
		short, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		if _, err := o.Ping(short, nodes[0].Addr()); err == nil {
			t.Errorf("%s: a member answered a ping", name)
		}
		if err := o.Bootstrap(short, nodes[0].Addr()); err == nil {
			t.Errorf("%s: joined the network", name)
		}
		cancel()
	}
	st := nodes[0].SealStats()
	if st.Unsealed == 0 || st.UnknownKey == 0 || st.Undecryptable() != st.Unsealed+st.UnknownKey+st.Forged {
		t.Errorf("the member did not count the outsiders' datagrams: %+v", st)
	}
	for _, n := range nodes {
		if got := n.contacts(); got != 2 {
			t.Errorf("%v has %d contacts, want the 2 members only", n.ID(), got)
		}
	}
	if ids := nodes[0].NetworkKeyIDs(); len(ids) != 1 || len(ids[0]) != 8 {
		t.Errorf("NetworkKeyIDs = %q", ids)
	}
}

func TestNetworkKeyErrors(t *testing.T) {
	dir := t.TempDir()
	loose := filepath.Join(dir, "loose.key")
	if err := os.WriteFile(loose, newKeyText(t), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chmod(loose, 0o644)
	bad := filepath.Join(dir, "bad.key")
	if err := os.WriteFile(bad, []byte("not a key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(dir, "good.key")
	writeKeys(t, good, newKeyText(t))
	tests := []struct {
		name string
		cfg  func(*Config)
		want string
	}{
		{"missing file", keyedConfig(filepath.Join(dir, "absent.key")), "no such file (make one with `dhtkit network-key"},
		{"loose permissions", keyedConfig(loose), "chmod 600"},
		{"not a key", keyedConfig(bad), "line 1 is not a network key"},
		{"mainline", func(c *Config) { c.NetworkKey = good; c.Network = Mainline }, "for private networks"},
	}
	for _, tc := range tests {
		cfg := testConfig()
		tc.cfg(&cfg)
		n, err := Listen(context.Background(), cfg)
		if err == nil {
			n.Close()
			t.Errorf("%s: the node started", tc.name)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %q, want one line saying %q", tc.name, err, tc.want)
		}
	}
}

// A bad edit of the key file leaves the node with its keys: a typo during
// a rotation does not cut it off.
func TestNetworkKeyBadReloadKeepsKeys(t *testing.T) {
	path := filepath.Join(t.TempDir(), "net.key")
	writeKeys(t, path, newKeyText(t))
	nodes := network(t, 2, 3, keyedConfig(path))
	before := nodes[0].NetworkKeyIDs()
	writeKeys(t, path, []byte("garbage\n"))
	if err := nodes[0].ReloadNetworkKey(); err == nil || !strings.Contains(err.Error(), "keeps its keys") {
		t.Fatalf("reload of a bad file: %v", err)
	}
	if !slices.Equal(nodes[0].NetworkKeyIDs(), before) {
		t.Fatal("a bad file changed the keys")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := nodes[0].Ping(ctx, nodes[1].Addr()); err != nil {
		t.Fatalf("after a bad reload: %v", err)
	}
}

// TestNetworkKeyRotation rotates the key of a running 5-node network from
// A to B under continuous writes: install B everywhere (A, B), switch
// (B, A), remove A (B). Each step edits every node's key file; the nodes
// pick the change up by themselves (two of them are told at once, as
// SIGHUP does). No write fails, every node answers every other at every
// step, and no datagram is dropped for want of a key.
func TestNetworkKeyRotation(t *testing.T) {
	dir := t.TempDir()
	a, b := newKeyText(t), newKeyText(t)
	paths := make([]string, 5)
	for i := range paths {
		paths[i] = filepath.Join(dir, fmt.Sprintf("n%d.key", i))
		writeKeys(t, paths[i], a)
	}
	i := 0
	nodes := network(t, 5, 11, func(c *Config) { c.NetworkKey = paths[i]; i++ })

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var writes, failures atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Go(func() {
			for k := 0; ctx.Err() == nil; k++ {
				key := fmt.Sprintf("w%d-%d", w, k%50)
				wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
				_, err := nodes[(w+k)%5].Put(wctx, key, []byte(key), PutOptions{})
				wcancel()
				if ctx.Err() != nil {
					return
				}
				if err != nil {
					failures.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
				writes.Add(1)
			}
		})
	}
	allPing := func(step string) {
		t.Helper()
		for _, x := range nodes {
			for _, y := range nodes {
				if x == y {
					continue
				}
				pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
				_, err := x.Ping(pctx, y.Addr())
				pcancel()
				if err != nil {
					t.Errorf("%s: %v cannot reach %v: %v", step, x.ID(), y.ID(), err)
				}
			}
		}
	}
	ids := func(keys ...[]byte) []string {
		ring, err := seal.ParseKeyring(slices.Concat(keys...))
		if err != nil {
			t.Fatal(err)
		}
		return ring.IDs()
	}
	allPing("before")
	for _, step := range []struct {
		name string
		keys [][]byte
	}{
		{"install B", [][]byte{a, b}},
		{"switch to B", [][]byte{b, a}},
		{"remove A", [][]byte{b}},
	} {
		before := writes.Load()
		for j, p := range paths {
			writeKeys(t, p, step.keys...)
			if j < 2 {
				if err := nodes[j].ReloadNetworkKey(); err != nil {
					t.Fatal(err)
				}
			}
		}
		want := ids(step.keys...)
		deadline := time.Now().Add(30 * time.Second)
		for _, n := range nodes {
			for !slices.Equal(n.NetworkKeyIDs(), want) {
				if time.Now().After(deadline) {
					t.Fatalf("%s: %v still has keys %v, want %v", step.name, n.ID(), n.NetworkKeyIDs(), want)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
		allPing(step.name)
		// Writes went on during the step.
		for writes.Load() < before+20 {
			if time.Now().After(deadline) {
				t.Fatalf("%s: only %d writes in the step", step.name, writes.Load()-before)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	cancel()
	wg.Wait()
	if f := failures.Load(); f > 0 {
		t.Fatalf("%d of %d writes failed during the rotation; first: %v", f, writes.Load(), firstErr.Load())
	}
	for _, n := range nodes {
		if st := n.SealStats(); st.Undecryptable() > 0 || st.Replayed > 0 || st.Stale > 0 {
			t.Errorf("%v dropped datagrams during the rotation: %+v", n.ID(), st)
		}
	}
	// A node that still holds only A is now outside.
	old := filepath.Join(dir, "old.key")
	writeKeys(t, old, a)
	cfg := testConfig()
	cfg.NetworkKey = old
	cfg.Kademlia.QueryTimeout = 300 * time.Millisecond
	o := newNode(t, cfg)
	pctx, pcancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer pcancel()
	if _, err := o.Ping(pctx, nodes[0].Addr()); err == nil {
		t.Error("a node with the removed key is still answered")
	}
	t.Logf("%d writes, none failed, across the rotation", writes.Load())
}

// A private node without a key says, when it listens off loopback, that
// anyone who reaches its port can read and change its data, and how to
// fix it; it says nothing on loopback, with a key, or on Mainline.
func TestKeylessWarning(t *testing.T) {
	path := filepath.Join(t.TempDir(), "net.key")
	writeKeys(t, path, newKeyText(t))
	tests := []struct {
		name string
		cfg  func(*Config)
		warn bool
	}{
		{"keyless on every address", func(c *Config) { c.Listen = "0.0.0.0:0" }, true},
		{"keyless Chord on every address", func(c *Config) { c.Listen = "0.0.0.0:0"; c.Protocol = Chord }, true},
		{"keyless on loopback", func(c *Config) {}, false},
		{"keyed on every address", func(c *Config) { c.Listen = "0.0.0.0:0"; c.NetworkKey = path }, false},
		{"mainline on every address", func(c *Config) { c.Listen = "0.0.0.0:0"; c.Network = Mainline }, false},
		{"read-only client", func(c *Config) { c.Listen = "0.0.0.0:0"; c.Kademlia.ReadOnly = true }, false},
	}
	for _, tc := range tests {
		var buf bytes.Buffer
		cfg := testConfig()
		cfg.Logger = slog.New(slog.NewTextHandler(&buf, nil))
		tc.cfg(&cfg)
		n := newNode(t, cfg)
		n.Close()
		said := strings.Count(buf.String(), "anyone who can reach UDP port")
		if tc.warn && (said != 1 || !strings.Contains(buf.String(), "--network-key FILE") || !strings.Contains(buf.String(), "level=WARN")) {
			t.Errorf("%s: want one warning naming the fix, got:\n%s", tc.name, buf.String())
		}
		if !tc.warn && said != 0 {
			t.Errorf("%s: warned:\n%s", tc.name, buf.String())
		}
	}
}

// Chord nodes seal through the same runtime: a keyed ring forms and
// stores, and its members count the datagrams of a keyless Chord node
// that tries to join.
func TestNetworkKeyChord(t *testing.T) {
	path := filepath.Join(t.TempDir(), "net.key")
	writeKeys(t, path, newKeyText(t))
	cfg := chordTestConfig()
	cfg.NetworkKey = path
	first := newNode(t, cfg)
	cfg.Bootstrap = []string{first.Addr().String()}
	second := newNode(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	// Written on one node, read on the other once the ring has formed.
	for {
		_, err := second.Put(ctx, "k", []byte("v"), PutOptions{})
		var v Value
		if err == nil {
			v, err = first.Get(ctx, "k")
		}
		if err == nil && string(v.Data) == "v" {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("put and get on a keyed Chord ring: %q, %v", v.Data, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if first.SealStats().Opened == 0 {
		t.Fatal("the Chord ring did not go through the sealer")
	}
	out := chordTestConfig()
	out.Bootstrap = []string{first.Addr().String()}
	newNode(t, out)
	for first.SealStats().Unsealed == 0 {
		if ctx.Err() != nil {
			t.Fatal("the keyed Chord node saw no datagram of the keyless one")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
