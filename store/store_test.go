package store

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/dhtkit/dhtkit/id"
)

// impls are the implementations every test of the suite runs against.
var impls = []struct {
	name string
	open func(t testing.TB, cfg Config) Store
}{
	{"memory", func(t testing.TB, cfg Config) Store {
		s := NewMemory(cfg)
		t.Cleanup(func() { s.Close() })
		return s
	}},
	{"bolt", func(t testing.TB, cfg Config) Store {
		// Without fsync: durability has tests of its own (bolt_test.go).
		s, err := openBolt(filepath.Join(t.TempDir(), "store.db"), cfg, true)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}},
}

// suite runs fn once per implementation.
func suite(t *testing.T, fn func(t *testing.T, open func(Config) Store)) {
	for _, impl := range impls {
		t.Run(impl.name, func(t *testing.T) {
			fn(t, func(cfg Config) Store { return impl.open(t, cfg) })
		})
	}
}

// ver returns a version ms milliseconds after t0 with logical counter 0.
func ver(ms int, writer uint64) Version {
	return Version{Time: hlcTime(t0.Add(time.Duration(ms) * time.Millisecond)), Writer: writer}
}

func put(t *testing.T, s Store, r Record) bool {
	t.Helper()
	ok, err := s.Put(r)
	if err != nil {
		t.Fatalf("Put(%q, %v): %v", r.Key, r.Version, err)
	}
	return ok
}

func get(t *testing.T, s Store, key string) (Record, bool) {
	t.Helper()
	r, ok, err := s.Get(key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	return r, ok
}

func TestLastWriterWins(t *testing.T) {
	type write struct {
		value   string
		version Version
		applied bool
	}
	tests := []struct {
		name   string
		writes []write
		want   string
	}{
		{"newer time wins", []write{{"a", ver(1, 1), true}, {"b", ver(2, 1), true}}, "b"},
		{"older time refused", []write{{"b", ver(2, 1), true}, {"a", ver(1, 9), false}}, "b"},
		{"tie broken by writer", []write{{"a", ver(1, 1), true}, {"b", ver(1, 2), true}, {"c", ver(1, 1), false}}, "b"},
		{"logical counter orders", []write{{"a", Version{ver(1, 1).Time + 1, 1}, true}, {"b", ver(1, 5), false}}, "a"},
		{"same version is the same write", []write{{"a", ver(1, 1), true}, {"a", ver(1, 1), false}}, "a"},
	}
	suite(t, func(t *testing.T, open func(Config) Store) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				s := open(Config{})
				for i, w := range tt.writes {
					if got := put(t, s, Record{Key: "k", Value: []byte(w.value), Version: w.version}); got != w.applied {
						t.Errorf("write %d (%v): applied = %v, want %v", i, w.version, got, w.applied)
					}
				}
				r, ok := get(t, s, "k")
				if !ok || string(r.Value) != tt.want {
					t.Errorf("Get = %q, %v; want %q", r.Value, ok, tt.want)
				}
			})
		}
	})
}

// Replicas that receive the same writes in any order hold the same record
// and the same digest.
func TestConverges(t *testing.T) {
	writes := []Record{
		{Key: "k", Value: []byte("1"), Version: ver(1, 1)},
		{Key: "k", Value: []byte("2"), Version: ver(2, 1)},
		{Key: "k", Version: ver(3, 2), Deleted: true},
		{Key: "k", Value: []byte("4"), Version: ver(3, 1)},
		{Key: "j", Value: []byte("5"), Version: ver(1, 1)},
	}
	suite(t, func(t *testing.T, open func(Config) Store) {
		var want []uint64
		for i := range 20 {
			s := open(Config{})
			order := rand.New(rand.NewPCG(uint64(i), 0)).Perm(len(writes))
			for _, j := range order {
				put(t, s, writes[j])
			}
			r, _ := get(t, s, "k")
			if !r.Deleted || r.Version != ver(3, 2) {
				t.Fatalf("order %v: k = %+v, want the tombstone", order, r)
			}
			d, err := s.Digest(4)
			if err != nil {
				t.Fatal(err)
			}
			if want == nil {
				want = d
			} else if !slices.Equal(d, want) {
				t.Fatalf("order %v: digest differs", order)
			}
		}
	})
}

func TestTombstone(t *testing.T) {
	const ttl = time.Hour
	suite(t, func(t *testing.T, open func(Config) Store) {
		s := open(Config{TombstoneTTL: ttl, MaxTTL: -1})
		put(t, s, Record{Key: "k", Value: []byte("v"), Version: ver(1, 1)})
		if !put(t, s, Record{Key: "k", Value: []byte("ignored"), Version: ver(5, 1), Deleted: true}) {
			t.Fatal("tombstone refused")
		}
		r, ok := get(t, s, "k")
		if !ok || !r.Deleted || r.Value != nil {
			t.Fatalf("after delete Get = %+v, %v; want a tombstone", r, ok)
		}
		if want := t0.Add(5*time.Millisecond + ttl); !r.Expires.Equal(want) {
			t.Errorf("tombstone expires %v, want %v (version time + TTL)", r.Expires, want)
		}
		// A stale write that arrives after the delete does not resurrect it.
		if put(t, s, Record{Key: "k", Value: []byte("stale"), Version: ver(3, 9)}) {
			t.Error("write older than the tombstone applied")
		}
		if r, _ := get(t, s, "k"); !r.Deleted {
			t.Errorf("stale write resurrected the key: %+v", r)
		}
		// A delete of a key never seen is kept too, to refuse its older writes.
		put(t, s, Record{Key: "unseen", Version: ver(5, 1), Deleted: true})
		if put(t, s, Record{Key: "unseen", Value: []byte("x"), Version: ver(4, 1)}) {
			t.Error("older write applied over a tombstone of an unseen key")
		}
		// The tombstone lives its TTL, then goes.
		if n, err := s.Expire(t0.Add(ttl)); err != nil || n != 0 {
			t.Fatalf("Expire before the tombstone TTL = %d, %v", n, err)
		}
		if _, ok := get(t, s, "k"); !ok {
			t.Fatal("tombstone expired early")
		}
		if n, err := s.Expire(t0.Add(ttl + 5*time.Millisecond)); err != nil || n != 2 {
			t.Fatalf("Expire after the tombstone TTL = %d, %v; want 2", n, err)
		}
		if _, ok := get(t, s, "k"); ok {
			t.Error("tombstone still there after its TTL")
		}
		if keys, bytes := s.Stats(); keys != 0 || bytes != 0 {
			t.Errorf("Stats = %d, %d after everything expired", keys, bytes)
		}
		// A newer write after a delete applies.
		if !put(t, s, Record{Key: "k", Value: []byte("new"), Version: ver(10, 1), Expires: t0.Add(3 * ttl)}) {
			t.Error("new write after an expired tombstone refused")
		}
	})
}

func TestTombstoneExpiresLater(t *testing.T) {
	suite(t, func(t *testing.T, open func(Config) Store) {
		s := open(Config{TombstoneTTL: time.Hour, MaxTTL: -1})
		// A tombstone's own Expires counts only if later than version + TTL.
		put(t, s, Record{Key: "short", Version: ver(0, 1), Deleted: true, Expires: t0.Add(time.Second)})
		put(t, s, Record{Key: "long", Version: ver(0, 1), Deleted: true, Expires: t0.Add(2 * time.Hour)})
		for key, want := range map[string]time.Time{"short": t0.Add(time.Hour), "long": t0.Add(2 * time.Hour)} {
			if r, _ := get(t, s, key); !r.Expires.Equal(want) {
				t.Errorf("%s: expires %v, want %v", key, r.Expires, want)
			}
		}
	})
}

// TestMaxTTL checks the rule that keeps deletes deleted: a value lives at
// most MaxTTL past its version, a tombstone at least that long, so a value
// older than a delete is gone by the time the tombstone is.
func TestMaxTTL(t *testing.T) {
	const maxTTL = 10 * time.Hour
	tests := []struct {
		name    string
		rec     Record
		expires time.Time
	}{
		{"no expiry gets MaxTTL", Record{Key: "k", Value: []byte("v"), Version: ver(0, 1)}, t0.Add(maxTTL)},
		{"a longer TTL is capped", Record{Key: "k", Value: []byte("v"), Version: ver(0, 1), Expires: t0.Add(1000 * time.Hour)}, t0.Add(maxTTL)},
		{"the year 2262 is capped", Record{Key: "k", Value: []byte("v"), Version: ver(0, 1), Expires: time.Unix(0, 1<<63-1)}, t0.Add(maxTTL)},
		{"a shorter TTL is kept", Record{Key: "k", Value: []byte("v"), Version: ver(0, 1), Expires: t0.Add(time.Hour)}, t0.Add(time.Hour)},
		{"the cap counts from the version", Record{Key: "k", Value: []byte("v"), Version: ver(3600_000, 1)}, t0.Add(time.Hour + maxTTL)},
		{"a tombstone outlives MaxTTL", Record{Key: "k", Version: ver(0, 1), Deleted: true}, t0.Add(maxTTL + DefaultRepairWindow)},
	}
	suite(t, func(t *testing.T, open func(Config) Store) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				s := open(Config{MaxTTL: maxTTL})
				put(t, s, tt.rec)
				if r, _ := get(t, s, "k"); !r.Expires.Equal(tt.expires) {
					t.Errorf("expires %v, want %v", r.Expires, tt.expires)
				}
			})
		}
		t.Run("a small TombstoneTTL is raised to MaxTTL", func(t *testing.T) {
			s := open(Config{MaxTTL: maxTTL, TombstoneTTL: time.Minute})
			put(t, s, Record{Key: "k", Version: ver(0, 1), Deleted: true})
			if r, _ := get(t, s, "k"); r.Expires.Before(t0.Add(maxTTL)) {
				t.Errorf("tombstone expires %v, before MaxTTL", r.Expires)
			}
		})
		t.Run("a deleted value never comes back", func(t *testing.T) {
			// A replica that missed the delete hands the old value over
			// at every moment after it: it is refused while the tombstone
			// lives and expired once it is gone.
			s := open(Config{MaxTTL: maxTTL})
			old := Record{Key: "k", Value: []byte("old"), Version: ver(0, 1)}
			put(t, s, Record{Key: "k", Version: ver(60_000, 2), Deleted: true})
			for now := time.Duration(0); now < 3*maxTTL; now += time.Hour {
				if _, err := s.Expire(t0.Add(now)); err != nil {
					t.Fatal(err)
				}
				if put(t, s, old) {
					t.Fatalf("at +%v the deleted value was stored again", now)
				}
			}
		})
	})
}

func TestExpire(t *testing.T) {
	suite(t, func(t *testing.T, open func(Config) Store) {
		s := open(Config{MaxTTL: -1})
		for i, ttl := range []time.Duration{time.Minute, 2 * time.Minute, 3 * time.Minute, 0} {
			var exp time.Time
			if ttl != 0 {
				exp = t0.Add(ttl)
			}
			put(t, s, Record{Key: fmt.Sprint("k", i), Value: []byte("v"), Version: ver(0, 1), Expires: exp})
		}
		steps := []struct {
			now       time.Duration
			dropped   int
			remaining int
		}{
			{0, 0, 4},
			{time.Minute - 1, 0, 4},
			{time.Minute, 1, 3}, // Expires is the first moment a record is gone
			{time.Minute, 0, 3},
			{10 * time.Minute, 2, 1},
			{time.Minute, 0, 1}, // the clock does not go back
			{1000 * time.Hour, 0, 1},
		}
		for i, st := range steps {
			n, err := s.Expire(t0.Add(st.now))
			if err != nil {
				t.Fatal(err)
			}
			keys, _ := s.Stats()
			if n != st.dropped || keys != st.remaining {
				t.Errorf("step %d: Expire(+%v) = %d, %d left; want %d, %d", i, st.now, n, keys, st.dropped, st.remaining)
			}
		}
		if _, ok := get(t, s, "k3"); !ok {
			t.Error("record without expiry dropped")
		}
		// A record that expired before it arrives is not stored.
		if put(t, s, Record{Key: "late", Value: []byte("v"), Version: ver(1, 1), Expires: t0.Add(time.Hour)}) {
			t.Error("already expired record applied")
		}
		if put(t, s, Record{Key: "old delete", Version: ver(1, 1), Deleted: true}) {
			t.Error("tombstone older than its TTL applied")
		}
	})
}

func TestRemove(t *testing.T) {
	suite(t, func(t *testing.T, open func(Config) Store) {
		s := open(Config{})
		put(t, s, Record{Key: "k", Value: []byte("v1"), Version: ver(1, 1)})
		put(t, s, Record{Key: "k", Value: []byte("v2"), Version: ver(2, 1)})
		// A purge that raced with a newer write leaves it alone.
		if err := s.Remove("k", ver(1, 1)); err != nil {
			t.Fatal(err)
		}
		if r, ok := get(t, s, "k"); !ok || string(r.Value) != "v2" {
			t.Fatalf("Remove with an old version dropped the newer write: %+v, %v", r, ok)
		}
		if err := s.Remove("k", ver(2, 1)); err != nil {
			t.Fatal(err)
		}
		if _, ok := get(t, s, "k"); ok {
			t.Error("Remove with the current version left the record")
		}
		if err := s.Remove("absent", ver(2, 1)); err != nil {
			t.Errorf("Remove of an absent key: %v", err)
		}
		if keys, bytes := s.Stats(); keys != 0 || bytes != 0 {
			t.Errorf("Stats = %d, %d; want empty", keys, bytes)
		}
	})
}

func TestPutAll(t *testing.T) {
	suite(t, func(t *testing.T, open func(Config) Store) {
		s := open(Config{MaxValueSize: 4})
		applied, err := s.PutAll([]Record{
			{Key: "a", Value: []byte("1"), Version: ver(1, 1)},
			{Key: "a", Value: []byte("2"), Version: ver(2, 1)}, // sees the one before
			{Key: "a", Value: []byte("0"), Version: ver(0, 1)}, // loses to it
			{Key: "b", Version: ver(1, 1), Deleted: true},
		})
		if err != nil || !slices.Equal(applied, []bool{true, true, false, true}) {
			t.Fatalf("PutAll = %v, %v", applied, err)
		}
		if r, _ := get(t, s, "a"); string(r.Value) != "2" {
			t.Errorf("a = %q, want 2", r.Value)
		}
		// A limit stops the batch: the records before it stay.
		applied, err = s.PutAll([]Record{
			{Key: "c", Value: []byte("3"), Version: ver(1, 1)},
			{Key: "d", Value: []byte("too large"), Version: ver(1, 1)},
			{Key: "e", Value: []byte("5"), Version: ver(1, 1)},
		})
		if !errors.Is(err, ErrTooLarge) || !slices.Equal(applied, []bool{true}) {
			t.Fatalf("PutAll over a limit = %v, %v; want [true], ErrTooLarge", applied, err)
		}
		for key, want := range map[string]bool{"c": true, "d": false, "e": false} {
			if _, ok := get(t, s, key); ok != want {
				t.Errorf("%s stored: %v, want %v", key, ok, want)
			}
		}
		if applied, err := s.PutAll(nil); err != nil || len(applied) != 0 {
			t.Errorf("PutAll(nil) = %v, %v", applied, err)
		}
	})
}

func TestValueOwnership(t *testing.T) {
	suite(t, func(t *testing.T, open func(Config) Store) {
		s := open(Config{})
		buf := []byte("original")
		put(t, s, Record{Key: "k", Value: buf, Version: ver(1, 1)})
		copy(buf, "CLOBBER!")
		if r, _ := get(t, s, "k"); string(r.Value) != "original" {
			t.Errorf("store shares the caller's buffer: %q", r.Value)
		}
		// An empty value is a value, not a tombstone.
		put(t, s, Record{Key: "empty", Value: nil, Version: ver(1, 1)})
		if r, ok := get(t, s, "empty"); !ok || r.Deleted || len(r.Value) != 0 {
			t.Errorf("empty value: %+v, %v", r, ok)
		}
	})
}

func TestLimits(t *testing.T) {
	// Room for three 16-byte values with one-byte keys, not four.
	cfg := Config{MaxKeySize: 8, MaxValueSize: 16, MaxBytes: 3*(1+16+RecordOverhead) + 10, MaxPerSource: 2}
	big := bytes.Repeat([]byte("x"), 16)
	tests := []struct {
		name    string
		setup   []Record // stored first, must all apply
		rec     Record
		wantErr error
	}{
		{"value at the limit", nil, Record{Key: "k", Value: big}, nil},
		{"value too large", nil, Record{Key: "k", Value: append(big, 'x')}, ErrTooLarge},
		{"key too large", nil, Record{Key: "123456789", Value: []byte("v")}, ErrTooLarge},
		{"tombstone with a long key", nil, Record{Key: "123456789", Deleted: true}, ErrTooLarge},
		{"no version", nil, Record{Key: "k", Value: []byte("v"), Version: Version{}}, ErrInvalid},
		{"capacity", []Record{{Key: "a", Value: big}, {Key: "b", Value: big}, {Key: "c", Value: big}},
			Record{Key: "d", Value: big}, ErrCapacity},
		{"capacity counts the replaced value", []Record{{Key: "a", Value: big}, {Key: "b", Value: big}, {Key: "c", Value: big}},
			Record{Key: "a", Value: big}, nil},
		{"delete when full", []Record{{Key: "a", Value: big}, {Key: "b", Value: big}, {Key: "c", Value: big}},
			Record{Key: "a", Deleted: true}, nil},
		{"delete of a key not held, when full", []Record{{Key: "a", Value: big}, {Key: "b", Value: big}, {Key: "c", Value: big}},
			Record{Key: "d", Deleted: true}, nil},
		{"per-source quota", []Record{{Key: "a", Value: []byte("1"), Source: "10.0.0.1"}, {Key: "b", Value: []byte("2"), Source: "10.0.0.1"}},
			Record{Key: "c", Value: []byte("3"), Source: "10.0.0.1"}, ErrQuota},
		{"quota is per source", []Record{{Key: "a", Value: []byte("1"), Source: "10.0.0.1"}, {Key: "b", Value: []byte("2"), Source: "10.0.0.1"}},
			Record{Key: "c", Value: []byte("3"), Source: "10.0.0.2"}, nil},
		{"overwrite within quota", []Record{{Key: "a", Value: []byte("1"), Source: "10.0.0.1"}, {Key: "b", Value: []byte("2"), Source: "10.0.0.1"}},
			Record{Key: "b", Value: []byte("3"), Source: "10.0.0.1"}, nil},
		{"taking over another source's key", []Record{{Key: "a", Value: []byte("1"), Source: "10.0.0.1"}, {Key: "b", Value: []byte("2"), Source: "10.0.0.1"}, {Key: "c", Value: []byte("3"), Source: "10.0.0.2"}},
			Record{Key: "c", Value: []byte("4"), Source: "10.0.0.1"}, ErrQuota},
		{"delete at quota", []Record{{Key: "a", Value: []byte("1"), Source: "10.0.0.1"}, {Key: "b", Value: []byte("2"), Source: "10.0.0.2"}, {Key: "c", Value: []byte("2"), Source: "10.0.0.2"}},
			Record{Key: "a", Deleted: true, Source: "10.0.0.2"}, nil},
		{"no source, no quota", []Record{{Key: "a", Value: []byte("1")}, {Key: "b", Value: []byte("2")}},
			Record{Key: "c", Value: []byte("3")}, nil},
	}
	suite(t, func(t *testing.T, open func(Config) Store) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				s := open(cfg)
				for i, r := range tt.setup {
					r.Version = ver(i, 1)
					if !put(t, s, r) {
						t.Fatalf("setup write %q not applied", r.Key)
					}
				}
				keys, bytes := s.Stats()
				digest, _ := s.Digest(3)
				before := records(t, s)
				r := tt.rec
				if r.Version == (Version{}) && tt.wantErr != ErrInvalid {
					r.Version = ver(100, 1)
				}
				applied, err := s.Put(r)
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Put = %v, %v; want error %v", applied, err, tt.wantErr)
				}
				if err == nil {
					if !applied {
						t.Fatal("Put refused without an error")
					}
					return
				}
				if applied {
					t.Error("Put applied and failed")
				}
				t.Logf("error: %v", err)
				// Nothing changed.
				k2, b2 := s.Stats()
				d2, _ := s.Digest(3)
				if k2 != keys || b2 != bytes || !slices.Equal(d2, digest) || !equalRecords(records(t, s), before) {
					t.Errorf("a refused write changed the store: stats %d/%d -> %d/%d", keys, bytes, k2, b2)
				}
			})
		}
		t.Run("unlimited", func(t *testing.T) {
			s := open(Config{MaxValueSize: -1, MaxBytes: -1, MaxPerSource: -1})
			put(t, s, Record{Key: "big", Value: make([]byte, 1<<20), Version: ver(1, 1)})
			for i := range 3 {
				put(t, s, Record{Key: fmt.Sprint(i), Value: []byte("v"), Version: ver(1, 1), Source: "s"})
			}
		})
	})
}

func records(t *testing.T, s Store) []Record {
	t.Helper()
	var out []Record
	if err := s.Each(func(r Record) bool { out = append(out, r); return true }); err != nil {
		t.Fatal(err)
	}
	return out
}

func equalRecords(a, b []Record) bool {
	return slices.EqualFunc(a, b, func(x, y Record) bool {
		return x.Key == y.Key && bytes.Equal(x.Value, y.Value) && x.Version == y.Version &&
			x.Expires.Equal(y.Expires) && x.Deleted == y.Deleted && x.Source == y.Source
	})
}

// fill stores n records with random keys, a few of them tombstones, and
// returns them.
func fill(t testing.TB, s Store, rng *rand.Rand, n int) []Record {
	var out []Record
	for i := range n {
		r := Record{
			Key:     fmt.Sprintf("key-%d-%d", i, rng.Uint64()),
			Version: Version{Time: hlcTime(t0) + rng.Uint64N(1<<20), Writer: rng.Uint64N(4) + 1},
			Source:  fmt.Sprint("10.0.0.", rng.IntN(4)),
		}
		if rng.IntN(8) == 0 {
			r.Deleted = true
		} else {
			r.Value = fmt.Appendf(nil, "value %d", i)
		}
		if rng.IntN(3) == 0 {
			r.Expires = t0.Add(time.Duration(1+rng.IntN(100)) * time.Hour)
		}
		if ok, err := s.Put(r); err != nil || !ok {
			t.Fatalf("Put %q = %v, %v", r.Key, ok, err)
		}
		out = append(out, r)
	}
	return out
}

func TestEachAndRange(t *testing.T) {
	suite(t, func(t *testing.T, open func(Config) Store) {
		rng := rand.New(rand.NewPCG(1, 2))
		s := open(Config{})
		want := fill(t, s, rng, 500)
		slices.SortFunc(want, func(a, b Record) int {
			ta, tb := a.Target(), b.Target()
			return id.Compare(ta, tb)
		})
		got := records(t, s)
		if len(got) != len(want) {
			t.Fatalf("Each returned %d records, want %d", len(got), len(want))
		}
		for i := range got {
			if got[i].Key != want[i].Key || got[i].Version != want[i].Version || !bytes.Equal(got[i].Value, want[i].Value) {
				t.Fatalf("Each record %d = %+v, want %+v", i, got[i], want[i])
			}
		}
		// Range returns exactly the records whose target is in [lo, hi], in order.
		for range 50 {
			lo, hi := id.Random(rng2{rng}), id.Random(rng2{rng})
			if id.Compare(lo, hi) > 0 {
				lo, hi = hi, lo
			}
			if rng.IntN(5) == 0 { // ranges that start or end on a stored target
				lo = want[rng.IntN(len(want))].Target()
				hi = want[rng.IntN(len(want))].Target()
				if id.Compare(lo, hi) > 0 {
					lo, hi = hi, lo
				}
			}
			var in []string
			for _, r := range want {
				if t := r.Target(); id.Compare(t, lo) >= 0 && id.Compare(t, hi) <= 0 {
					in = append(in, r.Key)
				}
			}
			var seen []string
			if err := s.Range(lo, hi, func(r Record) bool { seen = append(seen, r.Key); return true }); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(seen, in) {
				t.Fatalf("Range(%v, %v) = %d keys, want %d", lo, hi, len(seen), len(in))
			}
		}
		// Stopping early.
		n := 0
		s.Range(id.ID{}, maxID, func(Record) bool { n++; return n < 3 })
		if n != 3 {
			t.Errorf("Range went on after false: %d calls", n)
		}
	})
}

// The hand-over pattern: iterate a range and remove what was sent, from
// inside the callback.
func TestRangeRemoveDuring(t *testing.T) {
	suite(t, func(t *testing.T, open func(Config) Store) {
		s := open(Config{})
		fill(t, s, rand.New(rand.NewPCG(3, 4)), 300)
		lo, hi := BucketRange(1, 0) // the lower half of the id space
		moved := 0
		err := s.Range(lo, hi, func(r Record) bool {
			moved++
			if err := s.Remove(r.Key, r.Version); err != nil {
				t.Fatal(err)
			}
			return true
		})
		if err != nil {
			t.Fatal(err)
		}
		left := records(t, s)
		for _, r := range left {
			if r.Target()[0] < 0x80 {
				t.Fatalf("record %q of the removed half is still there", r.Key)
			}
		}
		if moved+len(left) != 300 || moved == 0 {
			t.Errorf("moved %d, left %d, want 300 in all", moved, len(left))
		}
	})
}

// recomputed is the digest computed from scratch from the store's entries.
func recomputed(t *testing.T, s Store, depth int) []uint64 {
	out := make([]uint64, 1<<depth)
	for _, r := range records(t, s) {
		e := Entry{Key: r.Key, Version: r.Version, Deleted: r.Deleted}
		target := r.Target()
		out[leafOf(target, uint8(depth))] ^= e.Hash()
	}
	return out
}

func TestDigestIncremental(t *testing.T) {
	depths := []int{0, 1, 2, 5, 8, 12, MaxDigestDepth}
	suite(t, func(t *testing.T, open func(Config) Store) {
		rng := rand.New(rand.NewPCG(5, 6))
		s := open(Config{})
		check := func(stage string) {
			t.Helper()
			for _, d := range depths {
				got, err := s.Digest(d)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(got, recomputed(t, s, d)) {
					t.Fatalf("%s: incremental digest at depth %d differs from the recomputed one", stage, d)
				}
			}
		}
		check("empty")
		recs := fill(t, s, rng, 2000) // the index grows through several depths
		check("filled")
		for _, r := range recs[:500] { // overwrites and deletes
			r.Version.Time += 1 << 20
			r.Deleted = rng.IntN(2) == 0
			if r.Deleted {
				r.Value = nil
			}
			put(t, s, r)
		}
		check("overwritten")
		for _, r := range recs[500:1900] { // the index shrinks again
			r2, _ := get(t, s, r.Key)
			if err := s.Remove(r.Key, r2.Version); err != nil {
				t.Fatal(err)
			}
		}
		check("removed")
		if _, err := s.Expire(t0.Add(50 * time.Hour)); err != nil {
			t.Fatal(err)
		}
		check("expired")
	})
}

func TestDigestCompare(t *testing.T) {
	// Two replicas with the same contents, stored in different orders and in
	// different implementations, have equal digests; one differing version
	// shows in exactly one bucket at every depth, and Bucket lists it.
	rng := rand.New(rand.NewPCG(7, 8))
	a := impls[0].open(t, Config{})
	b := impls[1].open(t, Config{})
	recs := fill(t, a, rng, 300)
	for _, i := range rng.Perm(len(recs)) {
		put(t, b, recs[i])
	}
	for d := 0; d <= 10; d++ {
		da, _ := a.Digest(d)
		db, _ := b.Digest(d)
		if !slices.Equal(da, db) {
			t.Fatalf("depth %d: digests of equal contents differ", d)
		}
	}
	changed := recs[42]
	changed.Version.Time++
	put(t, b, changed)
	for d := 0; d <= 10; d++ {
		da, _ := a.Digest(d)
		db, _ := b.Digest(d)
		var diff []int
		for i := range da {
			if da[i] != db[i] {
				diff = append(diff, i)
			}
		}
		want := leafOf(changed.Target(), uint8(d))
		if len(diff) != 1 || diff[0] != want {
			t.Fatalf("depth %d: buckets %v differ, want [%d]", d, diff, want)
		}
		// The two bucket listings differ in that one entry only.
		ea, eb := entries(t, a, d, want), entries(t, b, d, want)
		if len(ea) != len(eb) {
			t.Fatalf("depth %d: bucket sizes %d, %d", d, len(ea), len(eb))
		}
		var differing []string
		for i := range ea {
			if ea[i] != eb[i] {
				differing = append(differing, ea[i].Key)
			}
		}
		if len(differing) != 1 || differing[0] != changed.Key {
			t.Fatalf("depth %d: entries %v differ, want [%s]", d, differing, changed.Key)
		}
	}
}

func entries(t *testing.T, s Store, depth, i int) []Entry {
	t.Helper()
	var out []Entry
	if err := s.Bucket(depth, i, func(e Entry) bool { out = append(out, e); return true }); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestBucket(t *testing.T) {
	suite(t, func(t *testing.T, open func(Config) Store) {
		s := open(Config{})
		fill(t, s, rand.New(rand.NewPCG(9, 10)), 400)
		all := records(t, s)
		for _, d := range []int{0, 1, 4, 9} {
			total := 0
			for i := range 1 << d {
				for _, e := range entries(t, s, d, i) {
					if got := leafOf(id.FromString(e.Key), uint8(d)); got != i {
						t.Fatalf("depth %d: bucket %d lists %q of bucket %d", d, i, e.Key, got)
					}
					total++
				}
			}
			if total != len(all) {
				t.Fatalf("depth %d: buckets list %d entries, want %d", d, total, len(all))
			}
		}
		for _, bad := range [][2]int{{-1, 0}, {MaxDigestDepth + 1, 0}, {3, 8}, {3, -1}} {
			if err := s.Bucket(bad[0], bad[1], func(Entry) bool { return true }); err == nil {
				t.Errorf("Bucket(%d, %d) succeeded", bad[0], bad[1])
			}
		}
		if _, err := s.Digest(MaxDigestDepth + 1); err == nil {
			t.Error("Digest beyond MaxDigestDepth succeeded")
		}
	})
}

func TestBucketRange(t *testing.T) {
	tests := []struct {
		depth, i int
		lo, hi   string // first two bytes, the rest follows the last bit
	}{
		{0, 0, "0000", "ffff"},
		{1, 0, "0000", "7fff"},
		{1, 1, "8000", "ffff"},
		{4, 5, "5000", "5fff"},
		{12, 0xabc, "abc0", "abcf"},
	}
	for _, tt := range tests {
		lo, hi := BucketRange(tt.depth, tt.i)
		if got := lo.String()[:4]; got != tt.lo || lo.String()[4:] != "000000000000000000000000000000000000" {
			t.Errorf("BucketRange(%d, %d) lo = %v", tt.depth, tt.i, lo)
		}
		if got := hi.String()[:4]; got != tt.hi || hi.String()[4:] != "ffffffffffffffffffffffffffffffffffff" {
			t.Errorf("BucketRange(%d, %d) hi = %v", tt.depth, tt.i, hi)
		}
	}
}

func TestStats(t *testing.T) {
	suite(t, func(t *testing.T, open func(Config) Store) {
		s := open(Config{})
		put(t, s, Record{Key: "ab", Value: []byte("12345"), Version: ver(1, 1)})
		put(t, s, Record{Key: "c", Version: ver(1, 1), Deleted: true})
		if keys, bytes := s.Stats(); keys != 2 || bytes != 8+2*RecordOverhead {
			t.Errorf("Stats = %d, %d; want 2, %d (keys, values and overheads)", keys, bytes, 8+2*RecordOverhead)
		}
		put(t, s, Record{Key: "ab", Version: ver(2, 1), Deleted: true})
		if keys, bytes := s.Stats(); keys != 2 || bytes != 3+2*RecordOverhead {
			t.Errorf("after delete Stats = %d, %d; want 2, %d", keys, bytes, 3+2*RecordOverhead)
		}
	})
}

func TestClosed(t *testing.T) {
	suite(t, func(t *testing.T, open func(Config) Store) {
		s := open(Config{})
		put(t, s, Record{Key: "k", Value: []byte("v"), Version: ver(1, 1)})
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		calls := map[string]error{}
		_, calls["Put"] = s.Put(Record{Key: "k", Version: ver(2, 1)})
		_, calls["PutAll"] = s.PutAll([]Record{{Key: "k", Version: ver(2, 1)}})
		_, _, calls["Get"] = s.Get("k")
		calls["Each"] = s.Each(func(Record) bool { return true })
		calls["Bucket"] = s.Bucket(0, 0, func(Entry) bool { return true })
		calls["Remove"] = s.Remove("k", ver(1, 1))
		_, calls["Expire"] = s.Expire(t0)
		_, calls["Digest"] = s.Digest(0)
		for name, err := range calls {
			if !errors.Is(err, ErrClosed) {
				t.Errorf("%s after Close = %v, want ErrClosed", name, err)
			}
		}
	})
}

// Concurrent readers and a writer, for the race detector.
func TestConcurrent(t *testing.T) {
	suite(t, func(t *testing.T, open func(Config) Store) {
		s := open(Config{})
		var wg sync.WaitGroup
		for g := range 3 {
			wg.Go(func() {
				for i := range 50 {
					key := fmt.Sprint(i % 10)
					switch g {
					case 0:
						if _, err := s.Put(Record{Key: key, Value: []byte("v"), Version: ver(i, 1)}); err != nil {
							t.Error(err)
						}
					case 1:
						if _, _, err := s.Get(key); err != nil {
							t.Error(err)
						}
					default:
						s.Each(func(Record) bool { return true })
						s.Digest(2)
						s.Stats()
					}
				}
			})
		}
		wg.Wait()
	})
}

// An empty memory store is small: the simulator holds one per node.
func TestMemoryCompact(t *testing.T) {
	if size := unsafe.Sizeof(Memory{}); size > 192 {
		t.Errorf("Memory is %d bytes, want at most 192", size)
	}
	if n := testing.AllocsPerRun(100, func() { sink = NewMemory(Config{}) }); n != 1 {
		t.Errorf("NewMemory allocates %v times, want 1", n)
	}
	// Emptied again, it lets go of its index.
	m := NewMemory(Config{})
	m.Put(Record{Key: "k", Value: []byte("v"), Version: ver(1, 1), Source: "s"})
	m.Remove("k", ver(1, 1))
	if m.idx.leaves != nil || m.idx.tree != nil || m.idx.sources != nil {
		t.Error("an emptied store keeps its index allocated")
	}
}

var sink Store

// rng2 adapts math/rand/v2 to io.Reader for id.Random.
type rng2 struct{ r *rand.Rand }

func (r rng2) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(r.r.Uint32())
	}
	return len(p), nil
}

// TestRecordOverheadCoversHeap puts many tiny records in a memory store:
// the bytes it counts against MaxBytes stay within a factor of 1.5 of the
// heap they take, where counting key and value alone was off 23-fold.
func TestRecordOverheadCoversHeap(t *testing.T) {
	const n = 100_000
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	m := NewMemory(Config{MaxPerSource: -1})
	for i := range n {
		if _, err := m.Put(Record{Key: strconv.Itoa(i), Value: []byte{1}, Version: ver(i, 1)}); err != nil {
			t.Fatal(err)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	_, counted := m.Stats()
	heap := int64(after.HeapAlloc - before.HeapAlloc)
	t.Logf("%d tiny records: %d bytes of heap, %d counted (%.0f and %.0f per record)", n, heap, counted, float64(heap)/n, float64(counted)/n)
	if ratio := float64(heap) / float64(counted); ratio > 1.5 {
		t.Errorf("heap is %.1f times the bytes counted", ratio)
	}
	runtime.KeepAlive(m)
}

func TestRemoveAll(t *testing.T) {
	suite(t, func(t *testing.T, open func(Config) Store) {
		s := open(Config{})
		for i := range 10 {
			put(t, s, Record{Key: fmt.Sprint("k", i), Value: []byte("v"), Version: ver(i, 1)})
		}
		digest, _ := s.Digest(2)
		es := []Entry{
			{Key: "k1", Version: ver(1, 1)},
			{Key: "k2", Version: ver(1, 1)}, // another version: a newer write arrived
			{Key: "absent", Version: ver(1, 1)},
			{Key: "k3", Version: ver(3, 1)},
		}
		n, err := s.(interface{ RemoveAll([]Entry) (int, error) }).RemoveAll(es)
		if err != nil || n != 2 {
			t.Fatalf("RemoveAll = %d, %v; want 2", n, err)
		}
		for key, want := range map[string]bool{"k1": false, "k2": true, "k3": false, "k4": true} {
			if _, ok := get(t, s, key); ok != want {
				t.Errorf("%s present %v, want %v", key, ok, want)
			}
		}
		if keys, _ := s.Stats(); keys != 8 {
			t.Errorf("%d keys left, want 8", keys)
		}
		if d, _ := s.Digest(2); slices.Equal(d, digest) {
			t.Error("digest unchanged by the removals")
		}
	})
}

// TestTombstoneReserve: on a full store, tombstones of keys it does not
// hold still fit, up to TombstoneReserve past MaxBytes and no further;
// values never use the reserve.
func TestTombstoneReserve(t *testing.T) {
	const maxBytes = 4 << 10
	cfg := Config{MaxBytes: maxBytes, MaxPerSource: -1}
	suite(t, func(t *testing.T, open func(Config) Store) {
		s := open(cfg)
		v := bytes.Repeat([]byte("v"), 100)
		n := 0
		for ; ; n++ {
			_, err := s.Put(Record{Key: fmt.Sprintf("value-%04d", n), Value: v, Version: ver(n, 1)})
			if errors.Is(err, ErrCapacity) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		_, full := s.Stats()
		tombstones := 0
		for ; ; tombstones++ {
			_, err := s.Put(Record{Key: fmt.Sprintf("gone-%06d", tombstones), Deleted: true, Version: ver(1000+tombstones, 1)})
			if errors.Is(err, ErrCapacity) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if tombstones > 1<<20 {
				t.Fatal("tombstones never hit a bound")
			}
		}
		_, used := s.Stats()
		limit := int64(maxBytes) + TombstoneReserve(maxBytes)
		per := int64(len("gone-000000") + RecordOverhead)
		if used > limit || used+per <= limit {
			t.Errorf("after %d values (%d bytes) and %d tombstones: %d bytes, want within %d of %d", n, full, tombstones, used, per, limit)
		}
		if _, err := s.Put(Record{Key: "one-more", Value: []byte("x"), Version: ver(1<<20, 1)}); !errors.Is(err, ErrCapacity) {
			t.Errorf("a value in the tombstone reserve: %v, want ErrCapacity", err)
		}
	})
}
