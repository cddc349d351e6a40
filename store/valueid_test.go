package store

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

func TestValueKey(t *testing.T) {
	for _, tc := range []struct {
		key  string
		id   ValueID
		want string
	}{
		{"k", DefaultValue, "k"},
		{"k", 1, "k\x00v0000000000000001"},
		{"a/b", 0xfeedfacecafebeef, "a/b\x00vfeedfacecafebeef"},
	} {
		rk := ValueKey(tc.key, tc.id)
		if rk != tc.want {
			t.Errorf("ValueKey(%q, %v) = %q, want %q", tc.key, tc.id, rk, tc.want)
		}
		k, id := SplitKey(rk)
		if k != tc.key || id != tc.id {
			t.Errorf("SplitKey(%q) = %q, %v", rk, k, id)
		}
		if KeyTarget(rk) != KeyTarget(tc.key) {
			t.Errorf("%q is not placed on its key's target", rk)
		}
	}
	// Keys that only look like value keys are keys.
	for _, k := range []string{
		"\x00v0000000000000001",  // no key before the suffix
		"k\x00v000000000000000g", // not hex
		"k\x00v0000000000000000", // the default id is the key itself
		"k\x00V0000000000000001", // not 'v'
		"k\x00v00000000000001",   // too short
		"k\x00vABCDEF0000000001", // upper case is not canonical
	} {
		if got, id := SplitKey(k); got != k || id != DefaultValue {
			t.Errorf("SplitKey(%q) = %q, %v: want the key itself", k, got, id)
		}
	}
}

func TestParseValueID(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want ValueID
		ok   bool
	}{
		{"1", 1, true},
		{"0x1f", 0x1f, true},
		{"FEEDFACECAFEBEEF", 0xfeedfacecafebeef, true},
		{"0", 0, true},
		{"", 0, false},
		{"0x", 0, false},
		{"12345678901234567", 0, false},
		{"-1", 0, false},
		{"zz", 0, false},
	} {
		got, err := ParseValueID(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseValueID(%q) = %v, %v", tc.in, got, err)
		}
	}
}

// TestValuesOfAKey: the values of a key are records of their own, with
// their own versions, listed together, their digests distinct; the store
// bounds them per key, and a bolt file holding them reopens.
func TestValuesOfAKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "values.db")
	b, err := OpenBolt(path, Config{})
	if err != nil {
		t.Fatal(err)
	}
	for name, st := range map[string]Store{"memory": NewMemory(Config{}), "bolt": b} {
		t.Run(name, func(t *testing.T) {
			v := ver(1_700_000_000_000, 1)
			for i := range 3 {
				if _, err := st.Put(Record{Key: ValueKey("k", ValueID(i)), Value: []byte("v"), Version: v}); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := st.Put(Record{Key: "k2", Value: []byte("x"), Version: v}); err != nil {
				t.Fatal(err)
			}
			var keys []string
			if err := Values(st, "k", func(r Record) bool { keys = append(keys, r.Key); return true }); err != nil {
				t.Fatal(err)
			}
			if len(keys) != 3 {
				t.Fatalf("Values listed %q, want the 3 values of k", keys)
			}
			// One version, three values: three distinct hashes, none
			// cancelling another out of a digest.
			h := map[uint64]bool{}
			for _, k := range keys {
				h[Entry{Key: k, Version: v}.Hash()] = true
			}
			if len(h) != 3 {
				t.Fatalf("%d distinct entry hashes for 3 values", len(h))
			}
			for i := 3; i < MaxValuesPerKey; i++ {
				if _, err := st.Put(Record{Key: ValueKey("k", ValueID(i)), Value: []byte("v"), Version: v}); err != nil {
					t.Fatalf("value %d: %v", i, err)
				}
			}
			_, err := st.Put(Record{Key: ValueKey("k", 1<<40), Value: []byte("v"), Version: v})
			if !errors.Is(err, ErrCapacity) || !strings.Contains(err.Error(), "values") {
				t.Fatalf("value %d of a key: %v, want ErrCapacity", MaxValuesPerKey+1, err)
			}
			// A stored value still takes new versions at the limit.
			if ok, err := st.Put(Record{Key: ValueKey("k", 1), Value: []byte("w"), Version: ver(1_700_000_000_001, 1)}); err != nil || !ok {
				t.Fatalf("a new version of a stored value at the limit: %v, %v", ok, err)
			}
		})
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b, err = OpenBolt(path, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	n := 0
	_ = Values(b, "k", func(Record) bool { n++; return true })
	if n != MaxValuesPerKey {
		t.Fatalf("reopened: %d values of k, want %d", n, MaxValuesPerKey)
	}
}

// FuzzSplitKey: any record key splits into a key and an id that make it
// again, and lies on its key's target.
func FuzzSplitKey(f *testing.F) {
	f.Add("k")
	f.Add(ValueKey("k", 5))
	f.Add("\x00v0000000000000001")
	f.Fuzz(func(t *testing.T, rk string) {
		k, id := SplitKey(rk)
		if ValueKey(k, id) != rk {
			t.Fatalf("%q splits into %q, %v, which make %q", rk, k, id, ValueKey(k, id))
		}
		// A key that itself ends like a value's record key names a value
		// of another key: the HTTP API refuses it as a key, so only the
		// others must keep their values on their own target.
		if id != DefaultValue && !IsValueKey(k) && KeyTarget(rk) != KeyTarget(k) {
			t.Fatalf("%q is not on its key's target", rk)
		}
	})
}
