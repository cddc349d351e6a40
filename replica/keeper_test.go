package replica

import (
	"slices"
	"testing"
	"time"
)

func TestKeeper(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	const ttl = 9 * time.Minute
	type step struct {
		at     time.Duration // since t0
		due    []string      // what Due returns then
		done   map[string]bool
		cancel string
		want   time.Duration // Deadline after the step, since t0; -1: zero
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"refreshed every TTL/3", []step{
			{at: 0, due: []string{"a", "b"}, want: -1},
			{at: time.Second, done: map[string]bool{"a": true, "b": true}, want: time.Second + ttl/3},
			{at: ttl / 3, want: time.Second + ttl/3},
			{at: time.Second + ttl/3, due: []string{"a", "b"}, want: -1},
		}},
		{"a failure is tried again soon", []step{
			{at: 0, due: []string{"a", "b"}, done: map[string]bool{"a": false, "b": true}, want: RetryEvery},
			{at: RetryEvery, due: []string{"a"}, done: map[string]bool{"a": true}, want: ttl / 3},
		}},
		{"cancelled", []step{
			{at: 0, due: []string{"a", "b"}, cancel: "a", done: map[string]bool{"a": true, "b": true}, want: ttl / 3},
			{at: ttl, due: []string{"b"}, want: -1},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := NewKeeper()
			k.Add("a", ttl, t0)
			k.Add("b", ttl, t0)
			for i, s := range tc.steps {
				now := t0.Add(s.at)
				if got := k.Due(now); !slices.Equal(got, s.due) {
					t.Fatalf("step %d: Due = %v, want %v", i, got, s.due)
				}
				if s.cancel != "" && !k.Cancel(s.cancel) {
					t.Fatalf("step %d: Cancel(%q) = false", i, s.cancel)
				}
				for key, ok := range s.done {
					k.Done(key, now, ok)
				}
				d := k.Deadline()
				if s.want < 0 {
					if !d.IsZero() {
						t.Fatalf("step %d: Deadline %v, want none", i, d.Sub(t0))
					}
				} else if !d.Equal(t0.Add(s.want)) {
					t.Fatalf("step %d: Deadline %v, want %v", i, d.Sub(t0), s.want)
				}
			}
		})
	}
}

func TestRefreshInterval(t *testing.T) {
	for _, tc := range []struct{ ttl, want time.Duration }{
		{time.Hour, 20 * time.Minute},
		{10 * time.Second, 10 * time.Second / 3},
		{time.Second, MinRefresh},
	} {
		if got := RefreshInterval(tc.ttl); got != tc.want {
			t.Errorf("RefreshInterval(%v) = %v, want %v", tc.ttl, got, tc.want)
		}
	}
}
