package replica

import (
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/krpc"
	"github.com/dhtkit/dhtkit/store"
)

// FuzzServe feeds the dk_store and dk_fetch decoders and the dk_fetch
// server arbitrary payloads: none may panic, an answer fits MaxPayload
// plus one record, and what decodes as a store payload encodes back to a
// payload that decodes the same.
func FuzzServe(f *testing.F) {
	rec := store.Record{Key: "k", Value: []byte("v"), Version: store.Version{Time: 1, Writer: 2}}
	f.Add(AppendRecords(nil, []store.Record{rec}))
	f.Add(AppendOwnWrite(nil, rec))
	f.Add(AppendFetch(nil, "k"))
	f.Add(AppendFetch(nil, "k", "other"))
	f.Add(AppendValuesQuery(nil, "k"))
	f.Add(AppendAcks(nil, 3, []int{0, 2}, []error{nil, nil}, nil))
	f.Add(AppendAgain(nil))
	f.Add([]byte("d1:h20:01234567890123456789e"))
	f.Add([]byte("d2:ksli1eee"))
	st := store.NewMemory(store.Config{})
	now := time.Unix(1e9, 0)
	for _, k := range []string{"k", "other"} {
		r := rec
		r.Key = k
		if _, err := st.Put(r); err != nil {
			f.Fatal(err)
		}
	}
	f.Fuzz(func(t *testing.T, x []byte) {
		if recs, _, err := ParseStore(x); err == nil {
			again, _, err := ParseStore(AppendRecords(nil, recs))
			if err != nil || len(again) != len(recs) {
				t.Fatalf("%d records encode to %d (%v)", len(recs), len(again), err)
			}
		}
		_ = ParseAcks(x)
		m := krpc.Msg{Y: krpc.Response}
		m.R.Has, m.R.Token, m.R.X = krpc.HasToken|krpc.HasX, []byte("tok"), x
		_ = IsAgain(&m)
		out, err := ServeFetch(now, st, nil, x, MaxPayload)
		if err == nil && len(out) > MaxPayload+RecordSize(&rec)+64 {
			t.Fatalf("an answer of %d bytes", len(out))
		}
	})
}
