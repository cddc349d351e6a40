package replica

import (
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/store"
)

// The window holds a commit until the oldest queued write has waited it
// out; without a window every Ready commits.
func TestCommitsWindow(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ms := time.Millisecond
	cases := []struct {
		name     string
		window   time.Duration
		queued   []time.Duration // when each write is queued
		now      time.Duration   // the engine's latest time
		due      bool
		deadline time.Duration // -1: none
	}{
		{"nothing queued", 2 * ms, nil, 10 * ms, false, -1},
		{"no window", 0, []time.Duration{0}, 0, true, -1},
		{"within the window", 2 * ms, []time.Duration{0, ms}, ms, false, 2 * ms},
		{"window over", 2 * ms, []time.Duration{0, ms}, 2 * ms, true, 2 * ms},
		{"counted from the oldest", 2 * ms, []time.Duration{5 * ms, 6 * ms, 7 * ms}, 7 * ms, true, 7 * ms},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cm := Commits{Window: c.window}
			for _, q := range c.queued {
				cm.Queue(t0.Add(q), []store.Record{{Key: "k"}}, func(time.Time, []error, []bool) {})
			}
			cm.Now(t0.Add(c.now))
			if got := cm.Due(); got != c.due {
				t.Errorf("Due = %v, want %v", got, c.due)
			}
			d, ok := cm.Deadline()
			if c.deadline < 0 {
				if ok {
					t.Errorf("Deadline = %v, want none", d)
				}
			} else if !ok || !d.Equal(t0.Add(c.deadline)) {
				t.Errorf("Deadline = %v %v, want %v", d, ok, t0.Add(c.deadline))
			}
		})
	}
}

// A commit stores every queued write in one batch and tells each its fate;
// a write queued by a callback waits for the next commit.
func TestCommitsCommit(t *testing.T) {
	st := store.NewMemory(store.Config{})
	var cm Commits
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	v := store.Version{Time: 1, Writer: 1}
	fates := map[string]error{}
	for _, k := range []string{"a", "b", "c"} {
		cm.Queue(now, []store.Record{{Key: k, Value: []byte(k), Version: v}}, func(_ time.Time, errs []error, _ []bool) {
			fates[k] = errs[0]
			if k == "c" {
				cm.Queue(now, []store.Record{{Key: "d", Value: []byte("d"), Version: v}}, func(time.Time, []error, []bool) { fates["d"] = nil })
			}
		})
	}
	changed := 0
	cm.Commit(st, func(time.Time, store.Record) { changed++ })
	if len(fates) != 3 || changed != 3 {
		t.Fatalf("after one commit: fates %v, %d changed; want a, b and c stored", fates, changed)
	}
	if cm.Len() != 1 {
		t.Fatalf("%d writes wait, want the one a callback queued", cm.Len())
	}
	cm.Commit(st, func(time.Time, store.Record) { changed++ })
	if _, ok := fates["d"]; !ok || changed != 4 {
		t.Fatalf("the write queued by a callback was not committed next")
	}
}

// Committing asynchronously, one batch is out at a time: its writes learn
// their fate only when it is finished, after it has run, and the writes
// queued meanwhile wait for the next batch, whatever the window says.
func TestCommitsAsync(t *testing.T) {
	st := store.NewMemory(store.Config{})
	cm := Commits{Async: true}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	v := store.Version{Time: 1, Writer: 1}
	done := map[string]bool{}
	put := func(k string) {
		cm.Queue(now, []store.Record{{Key: k, Value: []byte(k), Version: v}}, func(_ time.Time, errs []error, _ []bool) {
			if errs[0] != nil {
				t.Errorf("%s: %v", k, errs[0])
			}
			if _, ok, _ := st.Get(k); !ok {
				t.Errorf("%s acknowledged before the store held it", k)
			}
			done[k] = true
		})
	}
	put("a")
	put("b")
	b := cm.Take(st)
	if b == nil {
		t.Fatal("Take handed out nothing with writes due")
	}
	put("c")
	if cm.Due() || cm.Take(st) != nil {
		t.Fatal("a second batch is due while one is out")
	}
	if _, ok := cm.Deadline(); ok {
		t.Error("a window deadline while a batch is out")
	}
	b.Run()
	if len(done) != 0 {
		t.Fatalf("writes acknowledged by Run, before Finish: %v", done)
	}
	changed := 0
	cm.Finish(now, b, func(time.Time, store.Record) { changed++ })
	if !done["a"] || !done["b"] || done["c"] || changed != 2 {
		t.Fatalf("after the first batch: done %v, %d changed; want a and b", done, changed)
	}
	b = cm.Take(st)
	if b == nil {
		t.Fatal("the write queued while a batch was out is not due once it is back")
	}
	b.Run()
	cm.Finish(now, b, func(time.Time, store.Record) { changed++ })
	if !done["c"] || changed != 3 || cm.Len() != 0 {
		t.Fatalf("after the second batch: done %v, %d changed, %d waiting", done, changed, cm.Len())
	}
}
