package replica

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/store"
)

// A batch query is written as the map encoding would write it, and read
// back by the Cursor decoder; anything but that exact shape is left to
// ServeFetch, and a batch over the bound is refused whole.
func TestFetchEachQuery(t *testing.T) {
	for _, keys := range [][]string{{"a"}, {"a", "b"}, {"k-1", "a longer key/with slashes", strings.Repeat("x", 1024)}} {
		x := AppendFetchEach(nil, keys)
		list := make([]any, len(keys))
		for i, k := range keys {
			list[i] = k
		}
		if want := encode(nil, map[string]any{"c": 1, "ks": list}); !bytes.Equal(x, want) {
			t.Fatalf("AppendFetchEach wrote %q, encode %q", x, want)
		}
		got, each, err := ParseFetchEach(x, 16)
		if !each || err != nil || len(got) != len(keys) {
			t.Fatalf("ParseFetchEach(%q) = %q, %v, %v", x, got, each, err)
		}
		for i := range keys {
			if string(got[i]) != keys[i] {
				t.Fatalf("key %d: %q, want %q", i, got[i], keys[i])
			}
		}
	}
	for _, tc := range []struct {
		x    string
		each bool
		err  bool
		keys int
	}{
		{"d1:ci1e2:kslee", true, false, 0},
		{"d1:ci1e2:ksl1:a1:b1:cee", true, false, 3},
		{"d1:ci1e2:ksl1:a1:b1:c1:dee", true, true, 0}, // over the bound of 3
		{"d1:k1:ae", false, false, 0},                 // a get's one key
		{"d2:ksl1:a1:bee", false, false, 0},           // a listener's keys, unchecked
		{"d1:ci0e2:ksl1:aee", false, false, 0},        // "c" not 1
		{"d1:ci1e2:ksl0:ee", false, false, 0},         // an empty key
		{"d1:ci1e2:ksli1eee", false, false, 0},        // a key of another type
		{"d1:ci1e2:ksl1:ae1:xi1ee", false, false, 0},  // another entry
		{"d1:ci1e2:ksl1:aeex", false, false, 0},       // trailing bytes
		{"d1:ci1e2:ksl1:ae", false, false, 0},         // cut short
		{"d2:ksl1:ae1:ci1ee", false, false, 0},        // out of order: the map decoding's
	} {
		keys, each, err := ParseFetchEach([]byte(tc.x), 3)
		if each != tc.each || (err != nil) != tc.err || len(keys) != tc.keys {
			t.Errorf("ParseFetchEach(%q) = %d keys, %v, %v; want %d, %v, error %v", tc.x, len(keys), each, err, tc.keys, tc.each, tc.err)
		}
	}
}

// A replica answers a batch key by key: the record, not found (missing or
// expired; a tombstone is a record), the code its check gives, and a
// record past the answer's room fetched alone; the reader takes back
// exactly that.
func TestServeFetchEach(t *testing.T) {
	now := time.Now()
	st := store.NewMemory(store.Config{})
	v := store.Version{Time: uint64(now.UnixMilli()) << 16, Writer: 4}
	big := bytes.Repeat([]byte("b"), 600)
	for _, r := range []store.Record{
		{Key: "live", Value: []byte("value"), Version: v, Expires: now.Add(time.Hour)},
		{Key: "gone", Value: []byte("old"), Version: v, Expires: now.Add(-time.Hour)},
		{Key: "dead", Deleted: true, Version: v},
		{Key: "theirs", Value: []byte("x"), Version: v},
		{Key: "big1", Value: big, Version: v},
		{Key: "big2", Value: big, Version: v},
	} {
		if _, err := st.Put(r); err != nil {
			t.Fatal(err)
		}
	}
	refuse := func(k string) int {
		if k == "theirs" {
			return 249
		}
		return 0
	}
	for _, tc := range []struct {
		name  string
		keys  []string
		limit int
		codes []int64
		recs  []string
	}{
		{"each kind", []string{"live", "gone", "dead", "none", "theirs"}, 1000, []int64{1, 0, 1, 0, 249}, []string{"live", "dead"}},
		{"empty", nil, 1000, []int64{}, nil},
		{"one", []string{"none"}, 1000, []int64{0}, nil},
		{"room for one big", []string{"big1", "live", "big2"}, 1000, []int64{1, 1, CodeFetchAlone}, []string{"big1", "live"}},
		{"first always fits", []string{"big1", "big2"}, 10, []int64{1, CodeFetchAlone}, []string{"big1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bs := make([][]byte, len(tc.keys))
			for i, k := range tc.keys {
				bs[i] = []byte(k)
			}
			x := ServeFetchEach(now, st, nil, bs, tc.limit, refuse)
			codes, recs, ok := ParseFetchAnswers(x, nil, nil)
			if !ok {
				t.Fatalf("ParseFetchAnswers(%q) refused it", x)
			}
			if len(codes) != len(tc.codes) || len(codes) > 0 && !reflect.DeepEqual(codes, tc.codes) {
				t.Errorf("codes %v, want %v", codes, tc.codes)
			}
			var keys []string
			for _, r := range recs {
				keys = append(keys, r.Key)
			}
			if !reflect.DeepEqual(keys, tc.recs) {
				t.Errorf("records of %q, want %q", keys, tc.recs)
			}
			// The map decoding reads the same answer.
			d, err := decodeDict(x)
			if err != nil {
				t.Fatal(err)
			}
			if slow, err := RecordsOf(d, "recs"); err != nil || len(slow) != len(recs) {
				t.Errorf("map decoding: %d records, %v", len(slow), err)
			}
		})
	}
}

// The reader of a batch's answer takes only an answer per key with the
// records its codes promise.
func TestParseFetchAnswers(t *testing.T) {
	rec := string(appendRecordTo(nil, &store.Record{Key: "k", Value: []byte("v"), Version: store.Version{Time: 1, Writer: 2}}))
	for _, tc := range []struct {
		x  string
		ok bool
	}{
		{"d2:okli1ei0ei249ee4:recsl" + rec + "ee", true},
		{"d2:okle4:recslee", true},
		{"d4:recsl" + rec + "ee", false},                // an older replica's answer: no codes
		{"d2:okli1ei1ee4:recsl" + rec + "ee", false},    // a record short
		{"d2:okli0ee4:recsl" + rec + "ee", false},       // a record too many
		{"d2:okli1ee4:recsld1:k1:keee", false},          // a record without a version
		{"d2:okli1ee4:recsl" + rec + "eex", false},      // trailing bytes
		{"d2:okl1:ae4:recslee", false},                  // a code of another type
		{"d4:recsl" + rec + "e2:okli1eee", false},       // out of order
		{"d2:okli1ee4:recsl" + rec + "e1:xi1ee", false}, // another entry
	} {
		if _, _, ok := ParseFetchAnswers([]byte(tc.x), nil, nil); ok != tc.ok {
			t.Errorf("ParseFetchAnswers(%q) ok %v, want %v", tc.x, ok, tc.ok)
		}
	}
}

// FuzzParseFetchEach checks the Cursor decoder of a batch query against
// the map decoding: whatever it takes as a batch, the map decoder reads
// as {"c": 1, "ks": [...]} with the same keys.
func FuzzParseFetchEach(f *testing.F) {
	for _, s := range []string{
		"d1:ci1e2:ksl1:a1:bee", "d1:ci1e2:kslee", "d1:k1:ae", "d2:ksl1:aee", "d1:ci1e2:ksl0:ee",
		"d1:ci1e2:ksl1:aeex", "d1:ci01e2:ksl1:aee", "d1:ci1e2:ksl1:a1:b1:c1:d1:eee",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, x []byte) {
		keys, each, err := ParseFetchEach(x, 4)
		if !each {
			return
		}
		d, derr := decodeDict(x)
		ks, isList := d["ks"].([]any)
		if err != nil {
			// Refused whole before the rest is read: the map decoder
			// refuses it too, or reads more keys than the bound.
			if derr == nil && len(ks) <= 4 {
				t.Fatalf("refused %q, %d keys, as over the bound of 4", x, len(ks))
			}
			return
		}
		if derr != nil {
			t.Fatalf("direct decoder took what the map decoder refuses: %v", derr)
		}
		if len(d) != 2 || d["c"] != int64(1) || !isList {
			t.Fatalf("direct decoder took %q as a batch; the map decoder reads %v", x, d)
		}
		if len(ks) != len(keys) {
			t.Fatalf("direct decoder: %d keys; map decoder: %d", len(keys), len(ks))
		}
		for i, k := range ks {
			if kb, _ := k.([]byte); string(kb) != string(keys[i]) || len(kb) == 0 {
				t.Fatalf("key %d: direct %q, map %q", i, keys[i], k)
			}
		}
	})
}

// FuzzParseFetchAnswers checks the Cursor decoder of a batch's answer
// against the map decoding: the same codes, the same records, one per
// code of 1.
func FuzzParseFetchAnswers(f *testing.F) {
	rec := string(appendRecordTo(nil, &store.Record{Key: "k", Value: []byte("v"), Version: store.Version{Time: 1, Writer: 2}, Expires: time.UnixMilli(5)}))
	for _, s := range []string{
		"d2:okli1ei0ee4:recsl" + rec + "ee", "d2:okle4:recslee", "d4:recsl" + rec + "ee", "d2:okli248ee4:recslee",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, x []byte) {
		codes, recs, ok := ParseFetchAnswers(x, nil, nil)
		if !ok {
			return
		}
		d, err := decodeDict(x)
		if err != nil {
			t.Fatalf("direct decoder took what the map decoder refuses: %v", err)
		}
		list, isList := d["ok"].([]any)
		if len(d) != 2 || !isList || len(list) != len(codes) {
			t.Fatalf("direct decoder took %q; the map decoder reads %v", x, d)
		}
		found := 0
		for i, v := range list {
			if v != codes[i] {
				t.Fatalf("code %d: direct %d, map %v", i, codes[i], v)
			}
			if codes[i] == 1 {
				found++
			}
		}
		slow, err := RecordsOf(d, "recs")
		if err != nil || len(slow) != len(recs) || len(recs) > 0 && !reflect.DeepEqual(slow, recs) || len(recs) != found {
			t.Fatalf("records: direct %+v, map %+v (%v), %d found", recs, slow, err, found)
		}
	})
}
