package dhtkit

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/store"
)

// counterValue is an incrementer's counter: the count and the ids of
// every increment, so that an increment whose write ended
// ErrIndeterminate can be told applied or not by reading. Every id, not
// the last few: an incrementer whose reads fail for a while (its node
// lost a replica of the counter) may come back after the others made
// many increments, and must still find its own if it took effect. (With
// the last 64 kept, such an increment was applied twice, 1 run in 15
// under stress-ng.) 160 ids are about 1 KB.
func counterValue(n int, ids []string) []byte {
	return []byte(strconv.Itoa(n) + ";" + strings.Join(ids, ","))
}

func parseCounterValue(b []byte) (int, []string) {
	n, ids, _ := strings.Cut(string(b), ";")
	c, _ := strconv.Atoi(n)
	if ids == "" {
		return c, nil
	}
	return c, strings.Split(ids, ",")
}

// TestConditionalIncrementers: concurrent compare-and-swap incrementers
// of one counter key, through different nodes, with one of the key's
// replicas closed midway: the final count equals the number of
// successful swaps.
func TestConditionalIncrementers(t *testing.T) {
	testIncrementers(t, network(t, 5, 51))
}

func testIncrementers(t *testing.T, nodes []*Node) {
	const (
		key     = "counter"
		writers = 4
		each    = 40
	)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	var (
		mu      sync.Mutex
		applied = map[string]bool{}
		swaps   atomic.Int64
		rounds  atomic.Int64
	)
	increment := func(n *Node, op string) error {
		for try := 0; try < 200; try++ {
			rounds.Add(1)
			cur, err := n.Get(ctx, key)
			opt := PutOptions{IfAbsent: true}
			count, ids := 0, []string(nil)
			switch {
			case errors.Is(err, ErrNotFound):
			case err != nil:
				time.Sleep(50 * time.Millisecond)
				continue
			default:
				count, ids = parseCounterValue(cur.Data)
				if slices.Contains(ids, op) {
					return nil // an earlier indeterminate try took effect
				}
				opt = PutOptions{IfVersion: cur.Version}
			}
			_, err = n.Put(ctx, key, counterValue(count+1, append(ids, op)), opt)
			switch {
			case err == nil:
				return nil
			case errors.Is(err, ErrConflict), errors.Is(err, ErrContended), errors.Is(err, ErrIndeterminate):
				// Read again: the next read tells an indeterminate write
				// applied (its id is in the counter) or not.
			default:
				t.Logf("%s: %v", op, err)
				time.Sleep(100 * time.Millisecond)
			}
		}
		return fmt.Errorf("%s: no swap in 200 tries", op)
	}
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			n := nodes[w%2]
			for i := range each {
				op := "w" + strconv.Itoa(w) + "-" + strconv.Itoa(i)
				if err := increment(n, op); err != nil {
					errs <- err
					return
				}
				mu.Lock()
				applied[op] = true
				mu.Unlock()
				swaps.Add(1)
			}
		})
	}
	// Midway, close one of the key's replicas that no incrementer uses.
	for swaps.Load() < writers*each/4 {
		time.Sleep(2 * time.Millisecond)
	}
	holders, err := nodes[0].Where(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	closed := -1
	for _, h := range holders {
		for i := 2; i < len(nodes) && closed < 0; i++ {
			if h.Has && h.Node.ID == nodes[i].ID() {
				closed = i
			}
		}
	}
	if closed < 0 {
		t.Fatal("no replica of the counter among the nodes no incrementer uses")
	}
	nodes[closed].Close()
	at := swaps.Load()
	t.Logf("closed node %d, a replica, after %d swaps", closed, at)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	v, err := nodes[1].Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	count, ids := parseCounterValue(v.Data)
	// Every successful increment once, and nothing else.
	seen := map[string]int{}
	for _, id := range ids {
		seen[id]++
	}
	for op := range applied {
		if seen[op] != 1 {
			t.Errorf("increment %s is in the counter %d times, want once", op, seen[op])
		}
	}
	if len(seen) != len(applied) || len(ids) != count {
		t.Errorf("the counter lists %d ids (%d distinct) for a count of %d; %d increments succeeded", len(ids), len(seen), count, len(applied))
	}
	t.Logf("%d successful swaps in %d rounds, final count %d (version %v)", swaps.Load(), rounds.Load(), count, v.Version)
	if at >= writers*each {
		t.Fatalf("the replica closed after every swap (%d): not midway", at)
	}
	if int64(count) != swaps.Load() || count != writers*each {
		t.Fatalf("final count %d, successful swaps %d: an update was lost or counted twice", count, swaps.Load())
	}
}

// TestConditionalErrors: a failed condition names the current version;
// the options that cannot go together are refused before anything is
// sent.
func TestConditionalErrors(t *testing.T) {
	nodes := network(t, 4, 52)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n := nodes[0]
	v1, err := n.Put(ctx, "k", []byte("one"), PutOptions{IfAbsent: true})
	if err != nil {
		t.Fatal(err)
	}
	_, err = n.Put(ctx, "k", []byte("two"), PutOptions{IfAbsent: true})
	var ce *ConflictError
	if !errors.As(err, &ce) || ce.Current != v1 || !strings.Contains(err.Error(), v1.String()) {
		t.Fatalf("if-absent on a present key: %v", err)
	}
	stale := v1
	stale.Time--
	if _, err := nodes[1].Put(ctx, "k", []byte("two"), PutOptions{IfVersion: stale}); !errors.As(err, &ce) || ce.Current != v1 {
		t.Fatalf("if-version of another version: %v", err)
	}
	v2, err := nodes[2].Put(ctx, "k", []byte("two"), PutOptions{IfVersion: v1})
	if err != nil || !v2.Newer(v1) {
		t.Fatalf("if-version of the current version: %v %v", v2, err)
	}
	if got, err := nodes[3].Get(ctx, "k"); err != nil || string(got.Data) != "two" || got.Version != v2 {
		t.Fatalf("read after the swap: %q %v %v", got.Data, got.Version, err)
	}
	if err := n.Delete(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Put(ctx, "k", []byte("x"), PutOptions{IfVersion: v2}); !errors.As(err, &ce) || !ce.Absent {
		t.Fatalf("if-version on a deleted key: %v", err)
	}
	if _, err := n.Put(ctx, "k", []byte("three"), PutOptions{IfAbsent: true}); err != nil {
		t.Fatalf("if-absent on a deleted key: %v", err)
	}
	for name, opt := range map[string]PutOptions{
		"both":      {IfAbsent: true, IfVersion: v1},
		"permanent": {IfAbsent: true, Permanent: true},
	} {
		if _, err := n.Put(ctx, "other", []byte("v"), opt); err == nil || errors.Is(err, ErrConflict) {
			t.Errorf("%s: %v, want a refusal", name, err)
		}
	}
	if _, err := n.Put(ctx, "big", make([]byte, 3*chunkSize), PutOptions{IfAbsent: true}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("a chunked conditional write: %v", err)
	}
}

// TestConditionalIncrementersChord is TestConditionalIncrementers on a
// Chord ring.
func TestConditionalIncrementersChord(t *testing.T) {
	testIncrementers(t, chordRing(t, 5))
}
