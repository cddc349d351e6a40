package dhtkit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/kademlia"
	"github.com/dhtkit/dhtkit/store"
)

func TestPutGetOverUDP(t *testing.T) {
	nodes := network(t, 10, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rng := rand.New(rand.NewPCG(1, 2))
	big := make([]byte, 5<<20+123) // past one manifest: an index level
	for i := range big {
		big[i] = byte(rng.Uint32())
	}
	for _, tc := range []struct {
		name  string
		key   string
		value []byte
	}{
		{"small", "greeting", []byte("hello, world")},
		{"empty", "nothing", []byte{}},
		{"one chunk exactly", "edge", bytes.Repeat([]byte{7}, chunkSize)},
		{"chunked", "file.bin", big[:300_000]},
		{"index level", "big.bin", big},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := nodes[1].Put(ctx, tc.key, tc.value, PutOptions{})
			if err != nil {
				t.Fatal(err)
			}
			got, err := nodes[8].Get(ctx, tc.key)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Data, tc.value) || got.Version != v || got.Size != int64(len(tc.value)) {
				t.Fatalf("got %d bytes version %v, want %d bytes version %v", len(got.Data), got.Version, len(tc.value), v)
			}
		})
	}
	if err := nodes[2].Delete(ctx, "greeting"); err != nil {
		t.Fatal(err)
	}
	if _, err := nodes[5].Get(ctx, "greeting"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get after delete: %v, want ErrNotFound", err)
	}
	holders, err := nodes[3].Where(ctx, "file.bin")
	if err != nil {
		t.Fatal(err)
	}
	has := 0
	for _, h := range holders {
		if h.Has {
			has++
		}
	}
	if has != 3 {
		t.Errorf("where: %d of %d replicas hold file.bin, want 3", has, len(holders))
	}
}

func TestDataDirSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig()
	cfg.DataDir = dir
	cfg.Kademlia.Alone = true // a network of one, as asked: no quorum of others
	a := newNode(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	v, err := a.Put(ctx, "persist", []byte("kept"), PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	first := a.ID()
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	b := newNode(t, cfg)
	if b.ID() != first {
		t.Errorf("restarted with id %v, want %v", b.ID(), first)
	}
	got, err := b.Get(ctx, "persist")
	if err != nil || string(got.Data) != "kept" || got.Version != v {
		t.Fatalf("after restart: %q %v, err %v", got.Data, got.Version, err)
	}
	// A new write after the restart is newer than the one before it.
	v2, err := b.Put(ctx, "persist", []byte("again"), PutOptions{})
	if err != nil || !v2.Newer(v) {
		t.Fatalf("version after restart %v not newer than %v (err %v)", v2, v, err)
	}
}

func TestLeaveHandsValuesOver(t *testing.T) {
	nodes := network(t, 8, 5)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	keys := make([]string, 40)
	for i := range keys {
		keys[i] = "k" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		if _, err := nodes[i%8].Put(ctx, keys[i], []byte(keys[i]), PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// Two nodes leave nicely, one after the other.
	for _, i := range []int{3, 6} {
		if err := nodes[i].Leave(ctx); err != nil {
			t.Fatal(err)
		}
		nodes[i].Close()
	}
	for _, k := range keys {
		got, err := nodes[0].Get(ctx, k)
		if err != nil || string(got.Data) != k {
			t.Fatalf("get %s after two nodes left: %q, %v", k, got.Data, err)
		}
	}
}

func TestWatchOverUDP(t *testing.T) {
	nodes := network(t, 8, 7)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	wctx, stop := context.WithCancel(ctx)
	ch, err := nodes[2].Watch(wctx, "news")
	if err != nil {
		t.Fatal(err)
	}
	next := func(what string) Value {
		t.Helper()
		select {
		case v, ok := <-ch:
			if !ok {
				t.Fatalf("%s: the watch ended", what)
			}
			return v
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: no value within 5s", what)
		}
		return Value{}
	}
	big := bytes.Repeat([]byte("chunked "), 40_000)
	for _, tc := range []struct {
		name  string
		value []byte
	}{
		{"put", []byte("one")},
		{"overwrite", []byte("two")},
		{"chunked", big},
	} {
		ver, err := nodes[5].Put(ctx, "news", tc.value, PutOptions{})
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		v := next(tc.name)
		t.Logf("%s: heard %v after the put returned", tc.name, time.Since(start))
		if v.Version != ver || !bytes.Equal(v.Data, tc.value) || v.Size != int64(len(tc.value)) {
			t.Fatalf("%s: got %d bytes version %v, want %d bytes version %v", tc.name, len(v.Data), v.Version, len(tc.value), ver)
		}
	}
	if err := nodes[6].Delete(ctx, "news"); err != nil {
		t.Fatal(err)
	}
	if v := next("delete"); !v.Version.IsZero() || v.Data != nil {
		t.Fatalf("delete: got %+v, want a zero Value", v)
	}
	stop()
	for range ch { // closes once the watch has ended
	}
	if _, err := nodes[2].Watch(ctx, ""); !errors.Is(err, kademlia.ErrNoKey) {
		t.Errorf("watch of an empty key: %v", err)
	}
}

// TestDeleteWhenFull: on nodes at their MaxBytes, a delete still succeeds,
// also of keys the nodes never held (a tombstone fits the reserve past
// MaxBytes), and the deleted keys stay deleted; a put is refused.
func TestDeleteWhenFull(t *testing.T) {
	nodes := network(t, 3, 41, func(c *Config) { c.Limits.MaxBytes = 8 << 10 })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	value := bytes.Repeat([]byte("v"), 200)
	stored := 0
	for ; stored < 1000; stored++ {
		_, err := nodes[0].Put(ctx, fmt.Sprintf("fill-%d", stored), value, PutOptions{})
		if errors.Is(err, store.ErrCapacity) {
			break
		}
		if err != nil {
			t.Fatalf("put %d: %v", stored, err)
		}
	}
	if stored == 0 || stored == 1000 {
		t.Fatalf("%d puts before capacity, want the nodes to fill up", stored)
	}
	for _, key := range []string{"fill-0", "never-stored", fmt.Sprintf("fill-%d", stored)} {
		if err := nodes[1].Delete(ctx, key); err != nil {
			t.Errorf("delete %q on full nodes: %v", key, err)
		}
		if _, err := nodes[2].Get(ctx, key); !errors.Is(err, ErrNotFound) {
			t.Errorf("get %q after its delete: %v, want ErrNotFound", key, err)
		}
	}
}
