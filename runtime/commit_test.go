package runtime

import (
	"context"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/chord"
	"github.com/dhtkit/dhtkit/kademlia"
	"github.com/dhtkit/dhtkit/store"
)

// slowDisk is a durable store whose PutAll waits for the test's word, as a
// slow fsync would: it says when a commit has begun, and that commit ends
// only when release is closed.
type slowDisk struct {
	store.Store
	begun   chan struct{}
	release chan struct{}
}

func (d *slowDisk) Durable() bool { return true }

func (d *slowDisk) PutAll(rs []store.Record) ([]bool, error) {
	select {
	case d.begun <- struct{}{}:
	default:
	}
	<-d.release
	return d.Store.PutAll(rs)
}

// A node with a durable store commits off the runtime's lock: while a
// commit's fsync is under way the node keeps serving (another operation
// starts and the engine can be inspected), and the put is acknowledged
// only once the commit has returned, never before. Kademlia and Chord.
func TestCommitOffLockAcksAfterSync(t *testing.T) {
	engines := map[string]func(st store.Store) Engine{
		"kademlia": func(st store.Store) Engine {
			kc := kademlia.DefaultConfig()
			kc.Store = st
			kc.Alone = true // a network of one: the put is this node's own write
			return kademlia.New(kc, time.Now())
		},
		"chord": func(st store.Store) Engine {
			cc := chord.DefaultConfig()
			cc.Store = st
			cc.Alone = true
			return chord.New(cc, time.Now())
		},
	}
	for name, newEngine := range engines {
		t.Run(name, func(t *testing.T) { commitOffLock(t, newEngine) })
	}
}

func commitOffLock(t *testing.T, newEngine func(store.Store) Engine) {
	disk := &slowDisk{Store: store.NewMemory(store.Config{}), begun: make(chan struct{}, 1), release: make(chan struct{})}
	r := New(listen(t), newEngine(disk), Options{})
	defer r.Close()

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	acked := make(chan error, 1)
	go func() {
		_, err := r.Do(ctx, kademlia.KVPut{Key: "k", Value: []byte("v")})
		acked <- err
	}()
	var held time.Time // when the first commit was known to be under way
	select {
	case <-disk.begun:
		held = time.Now()
	case err := <-acked:
		t.Fatalf("the put ended (%v) before its commit began", err)
	case <-ctx.Done():
		t.Fatal("the put's commit never began")
	}
	// The commit is blocked in its "fsync": the lock must be free.
	inspected := make(chan struct{})
	go func() {
		r.Inspect(func() {})
		close(inspected)
	}()
	select {
	case <-inspected:
	case <-ctx.Done():
		t.Fatal("the engine's lock is held while a commit syncs")
	}
	// Another put, started meanwhile, waits for the next commit.
	second := make(chan error, 1)
	go func() {
		_, err := r.Do(ctx, kademlia.KVPut{Key: "k2", Value: []byte("v2")})
		second <- err
	}()
	select {
	case err := <-acked:
		t.Fatalf("a put was acknowledged (%v) before its commit returned", err)
	case err := <-second:
		t.Fatalf("a put was acknowledged (%v) with a commit blocked", err)
	case <-time.After(200 * time.Millisecond):
	}
	heldFor := time.Since(held)
	close(disk.release)
	for _, ch := range []chan error{acked, second} {
		select {
		case err := <-ch:
			if err != nil {
				t.Fatalf("put: %v", err)
			}
		case <-ctx.Done():
			t.Fatal("a put was never acknowledged after its commit")
		}
	}
	for _, k := range []string{"k", "k2"} {
		if _, ok, err := disk.Get(k); !ok || err != nil {
			t.Errorf("%s not in the store after its acknowledgement (%v)", k, err)
		}
	}
	// The commits are counted before their writes are acknowledged: two
	// (the second put waited for the next), two records, and the first
	// took at least as long as the test held it.
	st := r.Stats()
	if st.Commit.Count() < 2 || st.CommitRecords < 2 {
		t.Errorf("stats count %d commits of %d records; want 2 or more of each", st.Commit.Count(), st.CommitRecords)
	}
	if st.Commit.Sum < heldFor {
		t.Errorf("commits took %v in all; the first was held for %v", st.Commit.Sum, heldFor)
	}
	var atLeast uint64 // commits in a bucket that can hold heldFor
	for i, n := range st.Commit.Counts {
		if i == len(HistogramBounds) || HistogramBounds[i] >= heldFor {
			atLeast += n
		}
	}
	if atLeast == 0 {
		t.Errorf("no commit in a bucket of %v or more: %v", heldFor, st.Commit.Counts)
	}
}

func TestHistogram(t *testing.T) {
	var h Histogram
	for _, d := range []time.Duration{0, 250 * time.Microsecond, 251 * time.Microsecond, time.Second, time.Hour} {
		h.Observe(d)
	}
	want := [len(HistogramBounds) + 1]uint64{0: 2, 1: 1, len(HistogramBounds) - 1: 1, len(HistogramBounds): 1}
	if h.Counts != want || h.Count() != 5 || h.Sum != time.Hour+time.Second+501*time.Microsecond {
		t.Errorf("histogram %v, count %d, sum %v; want %v, 5, 1h0m1.000501s", h.Counts, h.Count(), h.Sum, want)
	}
}
