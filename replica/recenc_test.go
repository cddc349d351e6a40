package replica

import (
	"bytes"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/store"
)

// The direct record encoder writes what the generic one (a map per record)
// writes, for every shape of record and of extra flags.
func TestAppendRecordsDirectMatchesGeneric(t *testing.T) {
	v := store.Version{Time: 1 << 62, Writer: 0xdeadbeefcafe}
	exp := time.UnixMilli(1_800_000_000_123)
	recs := []store.Record{
		{Key: "k", Value: []byte("value"), Version: v, Expires: exp},
		{Key: "no-expiry", Value: []byte{}, Version: v},
		{Key: "gone", Deleted: true, Version: v, Expires: exp},
		{Key: "gone-forever", Deleted: true, Version: store.Version{Time: 1, Writer: 1 << 63}},
		{Key: string(make([]byte, 300)), Value: make([]byte, 8192), Version: v},
	}
	cases := []struct {
		name  string
		key   string
		recs  []store.Record
		extra map[string]any
	}{
		{"none", "recs", nil, nil},
		{"one", "recs", recs[:1], nil},
		{"all", "recs", recs, nil},
		{"own write", "recs", recs[:1], map[string]any{"o": int64(1)}},
		{"flags on both sides", "m", recs, map[string]any{"a": int64(2), "z": []byte("x")}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			list := make([]any, len(c.recs))
			for i := range c.recs {
				list[i] = appendRecord(make(map[string]any), &c.recs[i])
			}
			m := map[string]any{c.key: list}
			for k, x := range c.extra {
				m[k] = x
			}
			want := encode(nil, m)
			if got := appendRecordsDirect(nil, c.key, c.recs, c.extra); !bytes.Equal(got, want) {
				t.Errorf("direct encoding\n%q\nwant\n%q", got, want)
			}
		})
	}
}

func TestAppendRecordsDirectAllocations(t *testing.T) {
	rec := []store.Record{{Key: "key", Value: make([]byte, 100), Version: store.Version{Time: 1 << 40, Writer: 7}, Expires: time.UnixMilli(1 << 41)}}
	buf := make([]byte, 0, 1024)
	if n := testing.AllocsPerRun(100, func() { buf = appendRecordsDirect(buf[:0], "recs", rec, nil) }); n != 0 {
		t.Errorf("%v allocations per encoded record, want 0", n)
	}
}
