package dhtkit

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/store"
)

var chunkGCBytes = flag.Int64("chunkgc-bytes", 0,
	"TestChunksReleasedLarge: put and delete a file of this many bytes (1073741824 for the 1 GiB run); 0 skips it")

// chunkGC sets a collector fast enough for a test: uploads must end within
// 3/4 of grace.
func chunkGC(grace time.Duration) func(*Config) {
	return func(c *Config) {
		c.ChunkGrace = grace
		c.ChunkCollectInterval = 100 * time.Millisecond
	}
}

// held is what a node stores: its bytes as counted against MaxBytes, and
// its chunk records per upload group.
func held(n *Node) (bytes int64, chunks map[string]int) {
	chunks = map[string]int{}
	n.rt.Inspect(func() {
		st := n.eng.Store()
		_, bytes = st.Stats()
		_ = st.Bucket(0, 0, func(e store.Entry) bool {
			if strings.HasPrefix(e.Key, chunkKeyPrefix) && !e.Deleted {
				g, _, _ := parseOwnedChunkKey(e.Key)
				chunks[g]++
			}
			return true
		})
	})
	return bytes, chunks
}

// waitChunks waits until every node holds only chunks of the upload
// groups keep allows (nil: none), failing after a generous deadline.
func waitChunks(t *testing.T, nodes []*Node, keep func(group string) bool, what string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		left := 0
		for _, n := range nodes {
			_, chunks := held(n)
			for g, c := range chunks {
				if keep == nil || !keep(g) {
					left += c
				}
			}
		}
		if left == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d chunk records still held after 2 minutes", what, left)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// uploadOf returns the upload group of key's current manifest.
func uploadOf(t *testing.T, n *Node, key string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, kind, data, err := n.getRecord(ctx, key)
	if err != nil || kind != kindManifest {
		t.Fatalf("manifest of %q: kind %d, %v", key, kind, err)
	}
	m, err := decodeManifest(data)
	if err != nil || m.upload == nil {
		t.Fatalf("manifest of %q: %v, upload %v", key, err, m.upload)
	}
	g, _, _ := parseOwnedChunkKey(ownedChunkKey(key, *m.upload, [20]byte{}))
	return g
}

func randomBytes(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// failingReader yields n bytes of data, then fails.
type failingReader struct {
	data []byte
	n    int
}

func (r *failingReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, errors.New("the disk went away")
	}
	k := copy(p, r.data[:min(len(r.data), r.n)])
	r.data, r.n = r.data[k:], r.n-k
	return k, nil
}

// TestChunksReleased puts multi-MiB files on five nodes and checks the
// chunk lifecycle end to end: live chunks survive the collector, and those
// of a deleted value, of an overwritten one and of an interrupted put are
// released on every node, leaving the nodes' stored bytes where they were
// but for the tombstones.
func TestChunksReleased(t *testing.T) {
	const grace = 20 * time.Second
	nodes := network(t, 5, 21, chunkGC(grace))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	before := make([]int64, len(nodes))
	for i, n := range nodes {
		before[i], _ = held(n)
	}
	const size = 3<<20 + 77
	deleted, first, second := randomBytes(1, size), randomBytes(2, size), randomBytes(3, size/2)
	if _, err := nodes[0].Put(ctx, "deleted.bin", deleted, PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := nodes[1].Put(ctx, "overwritten.bin", first, PutOptions{}); err != nil {
		t.Fatal(err)
	}
	firstUpload := uploadOf(t, nodes[1], "overwritten.bin")
	if _, err := nodes[2].Put(ctx, "overwritten.bin", second, PutOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err := nodes[3].PutReader(ctx, "interrupted.bin", &failingReader{data: randomBytes(4, size), n: size / 2}, PutOptions{})
	if err == nil {
		t.Fatal("a put whose reader failed succeeded")
	}
	t.Logf("interrupted put: %v", err)
	live := map[string]bool{uploadOf(t, nodes[0], "deleted.bin"): true, uploadOf(t, nodes[0], "overwritten.bin"): true}

	// Past the grace period, the first upload of the overwritten key and
	// the interrupted one go; the live ones stay and read back whole.
	waitChunks(t, nodes, func(g string) bool { return live[g] }, "overwritten and interrupted uploads")
	for key, want := range map[string][]byte{"deleted.bin": deleted, "overwritten.bin": second} {
		got, err := nodes[4].Get(ctx, key)
		if err != nil || !bytes.Equal(got.Data, want) {
			t.Fatalf("%s after the collector ran: %d bytes, %v", key, len(got.Data), err)
		}
	}
	if live[firstUpload] {
		t.Fatal("the overwritten upload is still the live one")
	}

	// A delete releases the value's chunks at the next pass.
	if err := nodes[4].Delete(ctx, "deleted.bin"); err != nil {
		t.Fatal(err)
	}
	if err := nodes[4].Delete(ctx, "overwritten.bin"); err != nil {
		t.Fatal(err)
	}
	waitChunks(t, nodes, nil, "deleted values")
	// Every node is back where it was, but for the two tombstones on
	// their replicas.
	tombstones := int64(len("deleted.bin")+len("overwritten.bin")) + 2*store.RecordOverhead
	for i, n := range nodes {
		after, _ := held(n)
		if after < before[i] || after > before[i]+tombstones {
			t.Errorf("node %d stores %d bytes, %d before the puts (tombstones: at most %d)", i, after, before[i], tombstones)
		}
	}
}

// TestChunksOfRefusedPut fills the nodes' capacity: the put fails and its
// chunks, stored until the nodes ran out of room, are released.
func TestChunksOfRefusedPut(t *testing.T) {
	const grace = 15 * time.Second
	nodes := network(t, 4, 22, chunkGC(grace), func(c *Config) { c.Limits.MaxBytes = 1 << 20 })
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// 3 copies of 3 MiB do not fit in 4 MiB.
	_, err := nodes[0].Put(ctx, "too-big.bin", randomBytes(5, 3<<20), PutOptions{})
	if !errors.Is(err, store.ErrCapacity) {
		t.Fatalf("put over capacity: %v, want ErrCapacity", err)
	}
	t.Logf("put: %v", err)
	stored := 0
	for _, n := range nodes {
		_, chunks := held(n)
		for _, c := range chunks {
			stored += c
		}
	}
	t.Logf("%d chunk records stored before the refusal", stored)
	waitChunks(t, nodes, nil, "refused put")
	for i, n := range nodes {
		if b, _ := held(n); b != 0 {
			t.Errorf("node %d still stores %d bytes", i, b)
		}
	}
}

// TestChunkedPutTooSlow: a put that cannot end before its chunks would be
// taken for abandoned fails rather than write a manifest naming released
// chunks.
func TestChunkedPutTooSlow(t *testing.T) {
	nodes := network(t, 3, 23, chunkGC(400*time.Millisecond))
	r := io.MultiReader(bytes.NewReader(randomBytes(6, chunkSize+1)), slowReader{time.Second})
	_, err := nodes[0].PutReader(context.Background(), "slow.bin", r, PutOptions{})
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "longer than") {
		t.Fatalf("slow put: %v, want a deadline error that says why", err)
	}
	t.Logf("slow put: %v", err)
	waitChunks(t, nodes, nil, "slow put")
}

type slowReader struct{ d time.Duration }

func (s slowReader) Read(p []byte) (int, error) {
	time.Sleep(s.d)
	return 0, io.EOF
}

func TestPutTTLOverMax(t *testing.T) {
	cfg := testConfig()
	cfg.Limits.MaxTTL = time.Hour
	cfg.Kademlia.Alone = true // a network of one, as asked: its own quorum
	n := newNode(t, cfg)
	_, err := n.Put(context.Background(), "k", []byte("v"), PutOptions{TTL: 2 * time.Hour})
	if !errors.Is(err, store.ErrInvalid) || !strings.Contains(err.Error(), "max-ttl") {
		t.Fatalf("put with a TTL over MaxTTL: %v", err)
	}
	if _, err := n.Put(context.Background(), "k", []byte("v"), PutOptions{TTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
}

// TestChunksReleasedLarge is TestChunksReleased's delete at the size the
// flag gives (go test -run ChunksReleasedLarge -chunkgc-bytes 1073741824):
// every node's stored bytes return to where they were.
func TestChunksReleasedLarge(t *testing.T) {
	if v := os.Getenv("DHTKIT_CHUNKGC_BYTES"); v != "" && *chunkGCBytes <= 0 {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			t.Fatalf("DHTKIT_CHUNKGC_BYTES=%q: want a number of bytes", v)
		}
		*chunkGCBytes = n
	}
	if *chunkGCBytes <= 0 {
		t.Skip("set DHTKIT_CHUNKGC_BYTES=N (or -chunkgc-bytes N) to run")
	}
	grace := 3 * time.Hour // the put itself must end within grace less 5 minutes: under load it takes half an hour
	nodes := network(t, 5, 24, chunkGC(grace), func(c *Config) {
		c.ChunkCollectInterval = time.Second // each pass scans ~100k chunk records
		c.Limits.MaxBytes = 4 << 30
		c.DataDir = t.TempDir() // on disk, as a node runs
		// Five nodes in one process fsyncing a gigabyte on a shared
		// machine answer late at times: a chunk's put (three tries) must
		// not fail over a reply that comes after the default 2 s.
		c.Kademlia.QueryTimeout = 15 * time.Second
		c.Kademlia.MinQueryTimeout = time.Second
	})
	ctx := context.Background()
	before := make([]int64, len(nodes))
	for i, n := range nodes {
		before[i], _ = held(n)
	}
	start := time.Now()
	r := io.LimitReader(&pattern{}, *chunkGCBytes)
	if _, err := nodes[0].PutReader(ctx, "large.bin", r, PutOptions{}); err != nil {
		t.Fatal(err)
	}
	put := time.Since(start)
	var total int64
	for _, n := range nodes {
		b, _ := held(n)
		total += b
	}
	if err := nodes[1].Delete(ctx, "large.bin"); err != nil {
		t.Fatal(err)
	}
	// The delete releases once the grace since the put began has passed:
	// run the collectors' passes at that time instead of waiting for it,
	// until no node holds a chunk (anti-entropy may hand a chunk back to
	// a node that released it before its peers did).
	deleted := time.Now()
	later := start.Add(grace + time.Second)
	for pass := 1; ; pass++ {
		left := 0
		for _, n := range nodes {
			n.collectChunks(ctx, later)
			_, chunks := held(n)
			for _, c := range chunks {
				left += c
			}
		}
		if left == 0 {
			break
		}
		if time.Since(deleted) > 20*time.Minute {
			t.Fatalf("%d chunk records still held 20 minutes after the delete", left)
		}
		t.Logf("pass %d: %d chunk records left", pass, left)
		time.Sleep(time.Second)
	}
	released := time.Since(deleted)
	for i, n := range nodes {
		if after, _ := held(n); after > before[i]+int64(len("large.bin"))+store.RecordOverhead {
			t.Errorf("node %d stores %d bytes, %d before", i, after, before[i])
		}
	}
	fmt.Printf("chunkgc: %d bytes put in %v (%d bytes stored on 5 nodes), released %v after the delete\n",
		*chunkGCBytes, put.Round(time.Millisecond), total, released.Round(time.Millisecond))
}

// pattern yields a stream that is not constant, cheaply.
type pattern struct{ i uint64 }

func (p *pattern) Read(b []byte) (int, error) {
	for j := range b {
		p.i++
		b[j] = byte(p.i * 0x9e3779b97f4a7c15 >> 56)
	}
	return len(b), nil
}

// TestCollectorTakesTurns: a pass looks up at most maxLookupsPerPass
// groups, those never found live first, so every group gets its turn.
func TestCollectorTakesTurns(t *testing.T) {
	var c chunkCollector
	groups := map[string]*chunkGroup{}
	for i := range maxLookupsPerPass + 10 {
		groups[fmt.Sprintf("g%04d", i)] = &chunkGroup{}
	}
	t0 := time.Unix(1700000000, 0)
	first := c.due(groups)
	if len(first) != maxLookupsPerPass {
		t.Fatalf("a pass looks up %d groups, want %d", len(first), maxLookupsPerPass)
	}
	for _, name := range first {
		c.live(name, t0)
	}
	second := c.due(groups)
	for _, name := range second[:10] {
		if !c.checked[name].IsZero() {
			t.Errorf("second pass starts with %s, found live already, before the 10 never looked up", name)
		}
	}
	// Groups no longer held are forgotten.
	delete(groups, first[0])
	c.due(groups)
	if _, ok := c.checked[first[0]]; ok {
		t.Error("a group no longer held is remembered")
	}
}
