package replica

import (
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/store"
)

// FuzzParseFetchKey checks the Cursor decoder of a one-key dk_fetch
// against the map decoding ServeFetch stands on: whatever it takes, the
// map decoder takes as the same one-key fetch.
func FuzzParseFetchKey(f *testing.F) {
	for _, s := range []string{
		"d1:k3:keye", "d1:k0:e", "d1:ki1ee", "d1:k1:a1:ki1ee", "d1:k1:ae1:x", "d2:ks1:ae",
		"d1:k1:a3:alli1ee", "d1:h20:aaaaaaaaaaaaaaaaaaaae", "d1:k01:ae", "d1:k1:a", "l1:ke", "",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, x []byte) {
		k, ok := parseFetchKey(x)
		if !ok {
			return
		}
		d, err := decodeDict(x)
		if err != nil {
			t.Fatalf("direct decoder took what the map decoder refuses: %v", err)
		}
		if _, all := ValuesQuery(d); all || d["ks"] != nil || len(d) != 1 {
			t.Fatalf("direct decoder took %q as one key; the map decoder reads %v", x, d)
		}
		if want, _ := d["k"].([]byte); string(want) != string(k) || len(k) == 0 {
			t.Fatalf("direct decoder: key %q; map decoder: %q", k, want)
		}
	})
}

// TestFetchKey checks that a get's dk_fetch is written as encode would
// and served the fast way with what the slow way answers.
func TestFetchKey(t *testing.T) {
	for _, key := range []string{"k", "a longer key/with slashes", string(make([]byte, 300))} {
		x := AppendFetch(nil, key)
		if want := encode(nil, map[string]any{"k": key}); string(x) != string(want) {
			t.Fatalf("AppendFetch wrote %q, encode %q", x, want)
		}
		if k, ok := parseFetchKey(x); !ok || string(k) != key {
			t.Fatalf("parseFetchKey(%q) = %q, %v", x, k, ok)
		}
	}
	now := time.Now()
	st := store.NewMemory(store.Config{})
	v := store.Version{Time: uint64(now.UnixMilli()) << 16, Writer: 4}
	for _, r := range []store.Record{
		{Key: "live", Value: []byte("value"), Version: v, Expires: now.Add(time.Hour)},
		{Key: "gone", Value: []byte("old"), Version: v, Expires: now.Add(-time.Hour)},
		{Key: "dead", Deleted: true, Version: v},
	} {
		if _, err := st.Put(r); err != nil {
			t.Fatal(err)
		}
	}
	for _, key := range []string{"live", "gone", "dead", "none"} {
		fast, err := ServeFetch(now, st, nil, AppendFetch(nil, key), 1000)
		if err != nil {
			t.Fatal(err)
		}
		// The same query the map decoder reads: a key beside an "all" of 0.
		slow, err := ServeFetch(now, st, nil, encode(nil, map[string]any{"k": key, "all": int64(0)}), 1000)
		if err != nil {
			t.Fatal(err)
		}
		if string(fast) != string(slow) {
			t.Errorf("%s: fast answer %q, slow %q", key, fast, slow)
		}
		recs, err := ParseRecords(fast)
		if err != nil || (key == "live" || key == "dead") != (len(recs) == 1) {
			t.Errorf("%s: ParseRecords(%q) = %+v, %v", key, fast, recs, err)
		}
	}
}
