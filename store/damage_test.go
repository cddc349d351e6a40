package store

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/dhtkit/dhtkit/internal/syncbuf"
)

// syncBuffer is a log sink the store may write to from any goroutine.
type syncBuffer = syncbuf.Buffer

// damageFixture is a real bbolt file holding n records with recognizable
// values, closed; the last write is "last".
func damageFixture(t *testing.T, n int) (path string, want map[string]string) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "values.db")
	s, err := openBolt(path, Config{}, true)
	if err != nil {
		t.Fatal(err)
	}
	want = map[string]string{}
	for i := range n {
		// Odd keys' values lie apart from their headers, even keys'
		// follow them (inlineMax).
		k, v := fmt.Sprint("key-", i), fmt.Sprintf("value-%04d-%s", i, strings.Repeat("x", 100+200*(i%2)))
		put(t, s, Record{Key: k, Value: []byte(v), Version: ver(i, 1)})
		want[k] = v
	}
	// The last write alone in its transaction, the one a damaged meta page
	// loses.
	put(t, s, Record{Key: "last", Value: []byte("the last write"), Version: ver(n, 1)})
	want["last"] = "the last write"
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return path, want
}

func pageSize(t *testing.T, path string) int64 {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, ok := readMeta(f, 0)
	if !ok {
		t.Fatal("fixture has no valid meta page 0")
	}
	return int64(m.pageSize)
}

func mutate(t *testing.T, path string, fn func(b []byte, pageSize int64) []byte) {
	t.Helper()
	ps := pageSize(t, path)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, fn(b, ps), 0o600); err != nil {
		t.Fatal(err)
	}
}

// newestMeta returns the page number (0 or 1) of the meta page bbolt opens.
func newestMeta(b []byte, ps int64) int64 {
	m0, _ := readMeta(bytes.NewReader(b), 0)
	m1, _ := readMeta(bytes.NewReader(b), ps)
	if m1.txid > m0.txid {
		return 1
	}
	return 0
}

// TestBoltDamage damages real bbolt files the ways disks and people do.
// Whatever the damage, opening never panics and nothing is lost in
// silence: either the open fails with ErrDamaged naming the file, or it
// succeeds and every record it serves is the one written, while what it
// no longer holds is counted or logged.
func TestBoltDamage(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	tests := []struct {
		name   string
		damage func(b []byte, ps int64) []byte
		// wantDamaged: the open must fail with ErrDamaged; otherwise it
		// may succeed, as bbolt's check cannot see every garbage byte.
		wantDamaged bool
		// wantLog is in the log when the open succeeds.
		wantLog string
		// lost are keys the open may lose, loudly.
		lost []string
	}{
		{"zero bytes", func([]byte, int64) []byte { return nil }, true, "", nil},
		{"truncated to half", func(b []byte, _ int64) []byte { return b[:len(b)/2] }, true, "", nil},
		{"truncated to one page", func(b []byte, ps int64) []byte { return b[:ps] }, true, "", nil},
		{"both meta pages zeroed", func(b []byte, ps int64) []byte {
			clear(b[:2*ps])
			return b
		}, true, "", nil},
		{"newest meta page garbage", func(b []byte, ps int64) []byte {
			off := newestMeta(b, ps) * ps
			for i := off + 16; i < off+80; i++ {
				b[i] = byte(rng.Uint32())
			}
			return b
		}, false, "meta page", []string{"last"}},
		{"garbage in every data page", func(b []byte, ps int64) []byte {
			for off := 2 * ps; off+ps <= int64(len(b)); off += ps {
				for i := off; i < off+ps; i++ {
					b[i] = byte(rng.Uint32())
				}
			}
			return b
		}, true, "", nil},
		{"garbage page headers", func(b []byte, ps int64) []byte {
			for off := 2 * ps; off+ps <= int64(len(b)); off += ps {
				for i := off; i < off+16; i++ {
					b[i] = byte(rng.Uint32())
				}
			}
			return b
		}, true, "", nil},
		{"zeroed data pages", func(b []byte, ps int64) []byte {
			clear(b[2*ps:])
			return b
		}, true, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path, want := damageFixture(t, 200)
			mutate(t, path, tt.damage)
			var log syncBuffer
			s, err := OpenBolt(path, Config{Logger: slog.New(slog.NewTextHandler(&log, nil))})
			if err != nil {
				if !errors.Is(err, ErrDamaged) {
					t.Fatalf("open failed without ErrDamaged: %v", err)
				}
				if !strings.Contains(err.Error(), path) {
					t.Errorf("error does not name the file: %v", err)
				}
				t.Logf("error: %v", err)
				return
			}
			defer s.Close()
			if tt.wantDamaged {
				t.Fatal("opened a damaged file without a word")
			}
			if !strings.Contains(log.String(), tt.wantLog) {
				t.Errorf("log lacks %q: %s", tt.wantLog, log.String())
			}
			for k, v := range want {
				r, ok, err := s.Get(k)
				if err != nil {
					continue // reported
				}
				if ok && string(r.Value) != v {
					t.Errorf("%q served as %q, written %q", k, r.Value, v)
				}
				if !ok && !slices.Contains(tt.lost, k) {
					t.Errorf("%q lost", k)
				}
			}
		})
	}
}

// TestBoltFlippedValue flips bytes of stored values in the file, one
// inline and one apart from its header: the record is not served, is
// counted and logged, and the store takes the value again from a replica
// (a later Put of the same version applies).
func TestBoltFlippedValue(t *testing.T) {
	for _, tc := range []struct {
		victim string
		flips  int
	}{{"key-7", 1}, {"key-7", 8}, {"key-4", 1}, {"key-4", 8}} {
		victim, flips := tc.victim, tc.flips
		t.Run(fmt.Sprint(victim, " ", flips, " bytes"), func(t *testing.T) {
			path, want := damageFixture(t, 20)
			mutate(t, path, func(b []byte, _ int64) []byte {
				// Every copy: pages bbolt freed may hold old ones.
				found := 0
				for i := 0; ; found++ {
					n := bytes.Index(b[i:], []byte(want[victim]))
					if n < 0 {
						break
					}
					i += n
					for j := range flips {
						b[i+3+j] ^= 0x5a
					}
				}
				if found == 0 {
					t.Fatal("value not found in the file")
				}
				return b
			})
			var log syncBuffer
			s, err := OpenBolt(path, Config{Logger: slog.New(slog.NewTextHandler(&log, nil))})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			// Range (what repair sends) skips it too.
			var seen int
			if err := s.Each(func(r Record) bool {
				seen++
				if r.Key == victim {
					t.Errorf("Each served the damaged %q: %q", victim, r.Value)
				}
				return true
			}); err != nil {
				t.Fatal(err)
			}
			if seen != len(want)-1 {
				t.Errorf("Each saw %d records, want %d", seen, len(want)-1)
			}
			if _, ok := get(t, s, victim); ok {
				t.Errorf("damaged %q served", victim)
			}
			if damaged, _ := s.Faults(); damaged != 1 {
				t.Errorf("Faults counts %d damaged records, want 1", damaged)
			}
			if !strings.Contains(log.String(), victim) {
				t.Errorf("log does not name %q: %s", victim, log.String())
			}
			// Treated as missing: repair stores it again.
			for k, v := range want {
				if r, ok := get(t, s, k); k != victim && (!ok || string(r.Value) != v) {
					t.Errorf("%q: %q, %v", k, r.Value, ok)
				}
			}
			n, _ := strconv.Atoi(strings.TrimPrefix(victim, "key-"))
			if !put(t, s, Record{Key: victim, Value: []byte(want[victim]), Version: ver(n, 1)}) {
				t.Fatal("repair of the damaged record refused")
			}
			if r, ok := get(t, s, victim); !ok || string(r.Value) != want[victim] {
				t.Errorf("after repair %q: %q, %v", victim, r.Value, ok)
			}
		})
	}
}

func TestMoveDamaged(t *testing.T) {
	path, _ := damageFixture(t, 3)
	mutate(t, path, func(b []byte, _ int64) []byte { return b[:len(b)/2] })
	if _, err := OpenBolt(path, Config{}); !errors.Is(err, ErrDamaged) {
		t.Fatalf("open = %v, want ErrDamaged", err)
	}
	to, err := MoveDamaged(path, t0)
	if err != nil {
		t.Fatal(err)
	}
	if want := path + ".damaged-20250301T120000Z"; to != want {
		t.Errorf("moved to %s, want %s", to, want)
	}
	if _, err := os.Stat(to); err != nil {
		t.Error(err)
	}
	s, err := OpenBolt(path, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if keys, _ := s.Stats(); keys != 0 {
		t.Errorf("%d keys in the new store", keys)
	}
}

// TestBoltGarbageEveryPage writes garbage over each page of a file in
// turn: no open panics, and a store that opens serves only what was
// written.
func TestBoltGarbageEveryPage(t *testing.T) {
	path, want := damageFixture(t, 200)
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ps := pageSize(t, path)
	rng := rand.New(rand.NewPCG(1, 2))
	var opened, refused int
	for page := int64(0); page*ps < int64(len(orig)); page++ {
		b := bytes.Clone(orig)
		for i := page * ps; i < (page+1)*ps; i++ {
			b[i] = byte(rng.Uint32())
		}
		// A new file each time: an open that failed inside bbolt may
		// hold its lock on the old one until the process exits.
		path := filepath.Join(t.TempDir(), "values.db")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := OpenBolt(path, Config{Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			if !errors.Is(err, ErrDamaged) {
				t.Fatalf("page %d: open failed without ErrDamaged: %v", page, err)
			}
			refused++
			continue
		}
		opened++
		for k, v := range want {
			if r, ok, err := s.Get(k); err == nil && ok && string(r.Value) != v {
				t.Errorf("page %d: %q served as %q", page, k, r.Value)
			}
		}
		s.Close()
	}
	t.Logf("%d pages: %d opens refused as damaged, %d opened (meta or unused pages)", opened+refused, refused, opened)
	if refused == 0 {
		t.Error("no damaged page was noticed")
	}
}

// TestBoltDamageWhileOpen damages the file under an open store: reads that
// meet the garbage fail with ErrDamaged instead of panicking.
func TestBoltDamageWhileOpen(t *testing.T) {
	path, want := damageFixture(t, 200)
	s, err := OpenBolt(path, Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ps := pageSize(t, path)
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := f.Stat()
	garbage := make([]byte, fi.Size()-2*ps)
	for i := range garbage {
		garbage[i] = byte(i*7 + 3)
	}
	if _, err := f.WriteAt(garbage, 2*ps); err != nil {
		t.Fatal(err)
	}
	f.Close()
	var failed int
	for k, v := range want {
		r, ok, err := s.Get(k)
		switch {
		case err != nil:
			if !errors.Is(err, ErrDamaged) {
				t.Fatalf("Get(%q) = %v, want ErrDamaged", k, err)
			}
			failed++
		case ok && string(r.Value) != v:
			t.Errorf("%q served as %q", k, r.Value)
		}
	}
	if err := s.Each(func(Record) bool { return true }); err != nil && !errors.Is(err, ErrDamaged) {
		t.Errorf("Each = %v", err)
	}
	if _, err := s.Put(Record{Key: "new", Value: []byte("v"), Version: ver(1000, 1)}); err != nil && !errors.Is(err, ErrDamaged) {
		t.Errorf("Put = %v", err)
	}
	t.Logf("%d of %d reads reported damage", failed, len(want))
}
