package replica

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/store"
)

// FuzzParseStoreDirect checks the Cursor decoder of dk_store payloads
// against the map decoder it stands in for: whatever it takes, the map
// decoder takes too, with the same records and the same "o" flag.
func FuzzParseStoreDirect(f *testing.F) {
	v := store.Version{Time: 5, Writer: 1}
	f.Add(AppendOwnWrite(nil, store.Record{Key: "k", Value: []byte("v"), Version: v, Expires: time.UnixMilli(1e12)}))
	f.Add(AppendRecords(nil, []store.Record{{Key: "k", Deleted: true, Version: v}, {Key: "j", Version: v}}))
	f.Add(AppendOwnWrites(nil, []*store.Record{{Key: "k", Value: []byte("v"), Version: v}, {Key: "j", Deleted: true, Version: v}}))
	for _, s := range []string{
		"de", "d4:recslee", "d4:recsle1:oi1ee", "d1:oi1e4:recslee", "d4:recsle4:recslee",
		"d4:recsld1:k1:a1:ti0e1:v1:b1:wi0eeee", "d4:recsld1:k1:a1:ti1e1:v1:b1:wi0e1:k1:beee",
		"d4:recsld1:di1e1:k1:a1:ti1e1:wi0eeee", "d4:recsld1:di0e1:k1:a1:ti1e1:wi0eeee",
		"d4:recsld1:ei-5e1:k1:a1:ti1e1:v0:1:wi0eeee", "d4:recsld1:k0:1:ti1e1:v0:1:wi0eeee",
		"d4:recsld1:k1:a1:ti1e1:v0:1:wi0e1:xi0eeee", "d4:recsld1:k1:a1:ti1e1:v0:1:wi0eeeex",
		"d4:recsi1ee", "d1:o1:1e", "d4:recsld1:k1:a1:ti01e1:v0:1:wi0eeee", "d4:recsld1:k1:a1:ti1e",
		"d4:recsld1:k1:a1:ti1e1:v0:1:wi9223372036854775808eeee", "d4:recsld1:k1:a1:t0:1:v0:1:wi0eeee",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, x []byte) {
		recs, own, each, ok := parseStoreDirect(x)
		if !ok {
			return
		}
		d, err := decodeDict(x)
		if err != nil {
			t.Fatalf("direct decoder took what the map decoder refuses: %v", err)
		}
		want, err := RecordsOf(d, "recs")
		if err != nil {
			t.Fatalf("direct decoder took records the map decoder refuses: %v", err)
		}
		if !reflect.DeepEqual(recs, want) || own != (d["o"] == int64(1)) || each != (d["c"] == int64(1)) {
			t.Fatalf("direct decoder: %+v, own %v, each %v; map decoder: %+v, own %v, each %v", recs, own, each, want, d["o"] == int64(1), d["c"] == int64(1))
		}
	})
}

// TestParseStoreDirectTakesPuts checks that the payload every put sends
// is decoded the fast way, and the answers it gets too.
func TestParseStoreDirectTakesPuts(t *testing.T) {
	r := store.Record{Key: "key", Value: []byte("value"), Version: store.Version{Time: 7, Writer: 3}, Expires: time.UnixMilli(2e12)}
	x := AppendOwnWrite(nil, r)
	if want := AppendRecordsWith(nil, "recs", []store.Record{r}, map[string]any{"o": int64(1)}); string(x) != string(want) {
		t.Fatalf("AppendOwnWrite wrote %q, AppendRecordsWith %q", x, want)
	}
	recs, own, _, ok := parseStoreDirect(x)
	if !ok || !own || len(recs) != 1 || recs[0].Key != r.Key || string(recs[0].Value) != "value" || recs[0].Version != r.Version || !recs[0].Expires.Equal(r.Expires) {
		t.Fatalf("own write: %+v, own %v, ok %v", recs, own, ok)
	}
	if got := string(AppendAcks(nil, 1, []int{0}, []error{nil}, nil)); got != ackOne {
		t.Fatalf("acknowledgement %q, the fast path knows %q", got, ackOne)
	}
	if got := string(AppendAcks(nil, 1, nil, nil, nil)); got != refuseOne {
		t.Fatalf("refusal %q, the fast path knows %q", got, refuseOne)
	}
	refused := errors.New("refused")
	for _, c := range []struct {
		n    int
		idx  []int
		errs []error
		want string
	}{
		{1, nil, []error{nil}, ackOne},
		{3, nil, []error{nil, refused, nil}, "d2:okli1ei0ei1eee"},
		{3, []int{0, 2}, []error{refused, nil}, "d2:okli0ei0ei1eee"},
	} {
		if got := string(AppendAcks(nil, c.n, c.idx, c.errs, nil)); got != c.want {
			t.Errorf("AppendAcks(%v, %v) = %q, want %q", c.idx, c.errs, got, c.want)
		}
	}
}

// TestOwnWritesBatch checks that a batch of writes is what the generic
// encoder writes, that it is decoded the fast way with its "c" flag, and
// that the per-record codes of its answer are read back.
func TestOwnWritesBatch(t *testing.T) {
	v := store.Version{Time: 7, Writer: 3}
	rs := []store.Record{
		{Key: "a", Value: []byte("1"), Version: v, Expires: time.UnixMilli(2e12)},
		{Key: "b", Deleted: true, Version: v},
	}
	x := AppendOwnWrites(nil, []*store.Record{&rs[0], &rs[1]})
	if want := AppendRecordsWith(nil, "recs", rs, map[string]any{"o": int64(1), "c": int64(1)}); string(x) != string(want) {
		t.Fatalf("AppendOwnWrites wrote %q, AppendRecordsWith %q", x, want)
	}
	recs, own, each, ok := parseStoreDirect(x)
	if !ok || !own || !each || len(recs) != 2 || recs[0].Key != "a" || !recs[1].Deleted {
		t.Fatalf("batch: %+v, own %v, each %v, ok %v", recs, own, each, ok)
	}
	if _, _, each, err := ParseStoreEach(AppendOwnWrite(nil, rs[0])); err != nil || each {
		t.Fatalf("a single write: each %v, %v", each, err)
	}
	if got := AckCodes([]byte("d2:okli1ei0ei249eee")); !reflect.DeepEqual(got, []int64{1, 0, 249}) {
		t.Fatalf("AckCodes: %v", got)
	}
	if got := AckCodes([]byte("d2:okl1:xee")); !reflect.DeepEqual(got, []int64{0}) {
		t.Fatalf("AckCodes of a string: %v, want a refusal", got)
	}
}
