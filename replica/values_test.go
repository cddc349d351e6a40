package replica

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/store"
)

func rec(key string, id store.ValueID, t uint64, value string) store.Record {
	return store.Record{Key: store.ValueKey(key, id), Version: store.Version{Time: t, Writer: 1}, Value: []byte(value)}
}

func tomb(key string, id store.ValueID, t uint64) store.Record {
	return store.Record{Key: store.ValueKey(key, id), Version: store.Version{Time: t, Writer: 1}, Deleted: true}
}

func entryOf(r store.Record) store.Entry {
	return store.Entry{Key: r.Key, Version: r.Version, Deleted: r.Deleted}
}

// TestValuesMerge: each value's newest version wins among the answers,
// newest first, and each replica is repaired with what it lacks.
func TestValuesMerge(t *testing.T) {
	type answer struct {
		recs []store.Record
		ents []store.Entry
	}
	for _, tc := range []struct {
		name    string
		answers []*answer // nil: did not answer
		want    []string  // record key@time, newest first
		fetch   []string
		repairs map[int][]string
	}{
		{
			name: "agree",
			answers: []*answer{
				{recs: []store.Record{rec("k", 0, 10, "a"), rec("k", 1, 20, "b")}},
				{recs: []store.Record{rec("k", 0, 10, "a"), rec("k", 1, 20, "b")}},
			},
			want: []string{store.ValueKey("k", 1) + "@20", "k@10"},
		},
		{
			name: "newest per value, repairs per member",
			answers: []*answer{
				{recs: []store.Record{rec("k", 1, 20, "old"), rec("k", 2, 5, "x")}},
				{recs: []store.Record{rec("k", 1, 30, "new")}},
				nil,
			},
			want:    []string{store.ValueKey("k", 1) + "@30", store.ValueKey("k", 2) + "@5"},
			repairs: map[int][]string{0: {store.ValueKey("k", 1) + "@30"}, 1: {store.ValueKey("k", 2) + "@5"}},
		},
		{
			name: "a tombstone is a version like any",
			answers: []*answer{
				{recs: []store.Record{rec("k", 3, 10, "v")}},
				{recs: []store.Record{tomb("k", 3, 11)}},
			},
			want:    []string{store.ValueKey("k", 3) + "@11"},
			repairs: map[int][]string{0: {store.ValueKey("k", 3) + "@11"}},
		},
		{
			name: "known only as an entry: fetched",
			answers: []*answer{
				{ents: []store.Entry{entryOf(rec("k", 4, 40, "big"))}},
				{recs: []store.Record{rec("k", 4, 30, "older")}},
			},
			fetch: []string{store.ValueKey("k", 4)},
		},
		{
			name: "an entry and a record of one version: the record serves",
			answers: []*answer{
				{ents: []store.Entry{entryOf(rec("k", 4, 40, "big"))}},
				{recs: []store.Record{rec("k", 4, 40, "big")}},
			},
			want: []string{store.ValueKey("k", 4) + "@40"},
		},
		{
			name:    "nothing",
			answers: []*answer{{}, {}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := NewValues(len(tc.answers))
			for i, a := range tc.answers {
				if a != nil {
					v.Answer(i, a.recs, a.ents)
				}
			}
			m := v.Merge()
			var got []string
			for _, r := range m.Records {
				got = append(got, fmt.Sprintf("%s@%d", r.Key, r.Version.Time))
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("records %q, want %q", got, tc.want)
			}
			if !slices.Equal(m.Fetch, tc.fetch) {
				t.Errorf("fetch %q, want %q", m.Fetch, tc.fetch)
			}
			if len(m.Repairs) != len(tc.repairs) {
				t.Errorf("repairs of %d members, want %d: %v", len(m.Repairs), len(tc.repairs), m.Repairs)
			}
			for i, want := range tc.repairs {
				var got []string
				for _, r := range m.Repairs[i] {
					got = append(got, fmt.Sprintf("%s@%d", r.Key, r.Version.Time))
				}
				if !slices.Equal(got, want) {
					t.Errorf("repairs of member %d: %q, want %q", i, got, want)
				}
			}
		})
	}
}

// TestAppendValuesFits: a key's values that do not fit one answer are
// listed as entries, every answer fits MaxPayload, and what it lists is
// every live value of the key and nothing else.
func TestAppendValuesFits(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	st := store.NewMemory(store.Config{MaxTTL: -1})
	big := string(make([]byte, 6000))
	var want []string
	for i := range store.MaxValuesPerKey {
		r := rec("key", store.ValueID(i), uint64(i+1), "small")
		if i%8 == 0 {
			r.Value = []byte(big)
		}
		if _, err := st.Put(r); err != nil {
			t.Fatal(err)
		}
		want = append(want, r.Key)
	}
	if _, err := st.Put(rec("other", 1, 1, "x")); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Put(rec("key", 9999, 1, "one too many")); !errors.Is(err, store.ErrCapacity) {
		t.Fatalf("value %d of a key: %v, want ErrCapacity", store.MaxValuesPerKey+1, err)
	}
	x := AppendValues(nil, st, "key", now)
	if len(x) > MaxPayload {
		t.Fatalf("answer of %d bytes, more than MaxPayload %d", len(x), MaxPayload)
	}
	recs, ents, err := ParseValues(x, "key")
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) == 0 {
		t.Fatal("values past one answer were not listed as entries")
	}
	var got []string
	for _, r := range recs {
		got = append(got, r.Key)
	}
	for _, e := range ents {
		got = append(got, e.Key)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("listed %d record keys, want the key's %d", len(got), len(want))
	}
}

// FuzzValues feeds arbitrary answers to a values query to the decoder:
// no panic, errors are ErrBadRecord, and what decodes belongs to the key
// and is bounded.
func FuzzValues(f *testing.F) {
	st := store.NewMemory(store.Config{MaxTTL: -1})
	for i := range 5 {
		_, _ = st.Put(rec("k", store.ValueID(i), uint64(i+1), "v"))
	}
	f.Add(AppendValues(nil, st, "k", time.Unix(0, 0)))
	f.Add([]byte("d4:recsle1:eli1ei2ei3ei0eeee"))
	f.Add([]byte("d1:eli1ee4:recsle"))
	f.Fuzz(func(t *testing.T, x []byte) {
		recs, ents, err := ParseValues(x, "k")
		if err != nil {
			if !errors.Is(err, ErrBadRecord) {
				t.Fatalf("error %v is not ErrBadRecord", err)
			}
			return
		}
		if len(ents) > store.MaxValuesPerKey {
			t.Fatalf("%d entries", len(ents))
		}
		for _, r := range recs {
			if store.BaseKey(r.Key) != "k" {
				t.Fatalf("record of key %q", r.Key)
			}
		}
		for _, e := range ents {
			if store.BaseKey(e.Key) != "k" {
				t.Fatalf("entry of key %q", e.Key)
			}
		}
		v := NewValues(1)
		v.Answer(0, recs, ents)
		v.Merge()
	})
}
