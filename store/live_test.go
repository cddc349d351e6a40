package store

import (
	"path/filepath"
	"testing"
	"time"
)

// TestLive checks the counters status pages read instead of scanning:
// live values and their bytes, tombstones left out, through puts,
// overwrites, deletes, removal, expiry and a reopened file.
func TestLive(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v.db")
	b, err := OpenBolt(path, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { b.Close() }()
	type live interface {
		Store
		Live() (int, int64)
	}
	now := time.Unix(1_800_000_000, 0)
	v := func(s uint64) Version { return Version{Time: s, Writer: 1} }
	for name, st := range map[string]live{"memory": NewMemory(Config{}), "bolt": b} {
		t.Run(name, func(t *testing.T) {
			check := func(step string, keys int, bytes int64) {
				t.Helper()
				if k, by := st.Live(); k != keys || by != bytes {
					t.Fatalf("%s: Live = %d keys, %d bytes; want %d, %d", step, k, by, keys, bytes)
				}
			}
			check("empty", 0, 0)
			mustPut(t, st, Record{Key: "a", Value: []byte("12345"), Version: v(1)})
			mustPut(t, st, Record{Key: "bb", Value: []byte("1"), Version: v(1), Expires: now.Add(time.Minute)})
			check("two values", 2, 6+3+2*RecordOverhead)
			mustPut(t, st, Record{Key: "a", Value: []byte("1"), Version: v(2)})
			check("overwrite", 2, 2+3+2*RecordOverhead)
			mustPut(t, st, Record{Key: "a", Version: v(3), Deleted: true})
			check("delete", 1, 3+RecordOverhead)
			if k, _ := st.Stats(); k != 2 {
				t.Fatalf("Stats counts %d records, want 2 (the tombstone too)", k)
			}
			if _, err := st.Expire(now.Add(2 * time.Minute)); err != nil {
				t.Fatal(err)
			}
			check("expiry", 0, 0)
		})
	}
	b.Close()
	if b, err = OpenBolt(path, Config{}); err != nil {
		t.Fatal(err)
	}
	if k, by := b.Live(); k != 0 || by != 0 {
		t.Fatalf("reopened: Live = %d, %d", k, by)
	}
}

func mustPut(t *testing.T, st Store, r Record) {
	t.Helper()
	if ok, err := st.Put(r); !ok || err != nil {
		t.Fatalf("Put(%q) = %v, %v", r.Key, ok, err)
	}
}
