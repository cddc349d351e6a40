package replica

import (
	"errors"
	"testing"

	"github.com/dhtkit/dhtkit/store"
)

// FuzzRequest feeds arbitrary dk_sync query payloads to the decoder and
// to a node's tree: none may panic, what decodes must re-encode to the
// same request, and every answer must fit MaxPayload and decode as the
// asker would decode it.
func FuzzRequest(f *testing.F) {
	st := store.NewMemory(store.Config{})
	fill(f, st, 0, 3000, ver)
	tree := NewTree(st)
	f.Add(AppendRequest(nil, Request{Prefix: Root, Fanout: 6}))
	f.Add(AppendRequest(nil, Request{Prefix: Root.Child(6, 33), Fanout: 6}))
	f.Add(AppendRequest(nil, Request{Prefix: Prefix{Bits: 5, Len: 19}, Fanout: 1}))
	f.Add(AppendRequest(nil, Request{Prefix: Root.Child(2, 1), Entries: true}))
	f.Add(AppendRequest(nil, Request{Prefix: Root.Child(9, 100), Entries: true, After: "key-0000001"}))
	f.Add([]byte("d1:ci7e1:li0e1:p0:e"))
	f.Add([]byte("d1:ei1e1:li3e1:p1:\xffe"))
	f.Fuzz(func(t *testing.T, x []byte) {
		q, err := ParseRequest(x)
		if err != nil {
			if !errors.Is(err, ErrBadPayload) {
				t.Fatalf("error %v is not ErrBadPayload", err)
			}
			return
		}
		again, err := ParseRequest(AppendRequest(nil, q))
		if err != nil || again != q {
			t.Fatalf("request does not round-trip: %+v, %+v, %v", q, again, err)
		}
		out, err := tree.Serve(t0, nil, x)
		if err != nil {
			return // refused: too deep to hash on demand
		}
		if len(out) > MaxPayload {
			t.Fatalf("answer of %d bytes to %+v", len(out), q)
		}
		if q.Entries {
			if _, _, err := ParseEntries(out, q.Prefix, q.After); err != nil {
				t.Fatalf("our own entries answer to %+v does not decode: %v", q, err)
			}
		} else if _, err := ParseDigests(out, q.Fanout); err != nil {
			t.Fatalf("our own digests answer to %+v does not decode: %v", q, err)
		}
	})
}

// FuzzAnswer feeds arbitrary answers to the asker's decoders: none may
// panic, and every entry accepted lies under the prefix asked, in order.
func FuzzAnswer(f *testing.F) {
	st := store.NewMemory(store.Config{})
	fill(f, st, 0, 300, ver)
	tree := NewTree(st)
	p := Root.Child(1, 0)
	es, more, _ := tree.Entries(p, "")
	f.Add(appendEntries(nil, es, more), uint8(1))
	f.Add(appendDigests(nil, make([]uint64, 2)), uint8(1))
	f.Add([]byte("d1:eli0eee"), uint8(6))
	f.Fuzz(func(t *testing.T, x []byte, c uint8) {
		fan := int(c%MaxFanout) + 1
		if hs, err := ParseDigests(x, fan); err == nil && len(hs) != 1<<fan {
			t.Fatalf("%d hashes for fan-out %d", len(hs), fan)
		}
		es, _, err := ParseEntries(x, p, "")
		if err != nil {
			return
		}
		for i, e := range es {
			if !p.Contains(targetOf(e)) || e.Version.IsZero() {
				t.Fatalf("accepted %+v", e)
			}
			if i > 0 && compareTK(targetOf(es[i-1]), es[i-1].Key, targetOf(e), e.Key) >= 0 {
				t.Fatal("accepted entries out of order")
			}
		}
	})
}

func targetOf(e store.Entry) [20]byte { return store.Record{Key: e.Key}.Target() }

func TestParseRejects(t *testing.T) {
	reqs := map[string][]byte{
		"not a dict":            []byte("i1e"),
		"empty":                 nil,
		"no depth":              []byte("d1:ci1e1:p0:e"),
		"depth too large":       []byte("d1:ci1e1:li21e1:p3:\x00\x00\x00e"),
		"negative depth":        []byte("d1:ci1e1:li-1e1:p0:e"),
		"prefix too long":       []byte("d1:ci1e1:li3e1:p2:\x00\x00e"),
		"bits past the depth":   []byte("d1:ci1e1:li3e1:p1:\x10e"),
		"fan-out zero":          []byte("d1:ci0e1:li0e1:p0:e"),
		"fan-out too large":     []byte("d1:ci7e1:li0e1:p0:e"),
		"fan-out past MaxDepth": []byte("d1:ci6e1:li16e1:p2:\x00\x00e"),
		"empty after-key":       []byte("d1:a0:1:ei1e1:li0e1:p0:e"),
	}
	for name, x := range reqs {
		if _, err := ParseRequest(x); !errors.Is(err, ErrBadPayload) {
			t.Errorf("request %s: %v, want ErrBadPayload", name, err)
		}
	}
	p := Prefix{Bits: 0, Len: 1}
	outside := "k"
	for p.Contains(targetOf(store.Entry{Key: outside})) {
		outside += "k"
	}
	answers := map[string][]byte{
		"no e":           []byte("de"),
		"entry not list": appendEntriesRaw([]any{"k"}),
		"short entry":    appendEntriesRaw([]any{[]any{"k", 1, 1}}),
		"no version":     appendEntriesRaw([]any{[]any{"k", 0, 0, 0}}),
		"deleted 2":      appendEntriesRaw([]any{[]any{"k", 1, 1, 2}}),
		"outside":        appendEntriesRaw([]any{[]any{outside, 1, 1, 0}}),
	}
	for name, x := range answers {
		if _, _, err := ParseEntries(x, p, ""); !errors.Is(err, ErrBadPayload) {
			t.Errorf("answer %s: %v, want ErrBadPayload", name, err)
		}
	}
	if _, err := ParseDigests([]byte("d1:h8:12345678e"), 1); !errors.Is(err, ErrBadPayload) {
		t.Errorf("one hash for fan-out 1: %v, want ErrBadPayload", err)
	}
}

func appendEntriesRaw(list []any) []byte { return encode(nil, map[string]any{"e": list}) }

// FuzzRecords feeds arbitrary dk_store / dk_fetch payloads to the record
// decoder: no panic, every record accepted has a key and a version, and
// re-encodes to the same records.
func FuzzRecords(f *testing.F) {
	f.Add(AppendRecords(nil, []store.Record{{Key: "k", Value: []byte("v"), Version: store.Version{Time: 5, Writer: 1}}}))
	f.Add(AppendRecords(nil, []store.Record{{Key: "k", Deleted: true, Version: store.Version{Time: 5, Writer: 1}}}))
	f.Add([]byte("d4:recsld1:k1:a1:ti0e1:v1:b1:wi0eeee"))
	f.Fuzz(func(t *testing.T, x []byte) {
		recs, err := ParseRecords(x)
		if err != nil {
			if !errors.Is(err, ErrBadRecord) {
				t.Fatalf("error %v is not ErrBadRecord", err)
			}
			return
		}
		for _, r := range recs {
			if r.Key == "" || r.Version.IsZero() {
				t.Fatalf("accepted %+v", r)
			}
		}
		again, err := ParseRecords(AppendRecords(nil, recs))
		if err != nil || len(again) != len(recs) {
			t.Fatalf("records do not round-trip: %v", err)
		}
		for i := range recs {
			a, b := recs[i], again[i]
			if a.Key != b.Key || a.Version != b.Version || a.Deleted != b.Deleted || string(a.Value) != string(b.Value) || !a.Expires.Equal(b.Expires) {
				t.Fatalf("record %d changed: %+v, %+v", i, a, b)
			}
		}
	})
}
