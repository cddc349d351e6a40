package replica

import (
	"errors"
	"fmt"
	"time"

	"github.com/dhtkit/dhtkit/store"
)

// Records travel in dk_store queries and dk_fetch answers of both
// engines as {"recs": [rec, ...]}, rec being
//
//	{"k": key, "v": value, "t": version time, "w": writer,
//	 "e": expiry in unix ms (absent: never), "d": 1 for a tombstone}
//
// Versions are unsigned; bencode integers are signed 64-bit, so they
// travel as the same bits.

// ErrBadRecord is a malformed record.
var ErrBadRecord = errors.New("malformed record")

func appendRecord(m map[string]any, r *store.Record) map[string]any {
	m["k"] = r.Key
	m["t"] = int64(r.Version.Time)
	m["w"] = int64(r.Version.Writer)
	if r.Deleted {
		m["d"] = 1
	} else {
		m["v"] = r.Value
	}
	if !r.Expires.IsZero() {
		m["e"] = r.Expires.UnixMilli()
	}
	return m
}

// AppendRecordsAs appends {key: [rec, ...]}.
func AppendRecordsAs(dst []byte, key string, recs []store.Record) []byte {
	return AppendRecordsWith(dst, key, recs, nil)
}

// AppendRecordsWith appends {key: [rec, ...]} and the entries of extra
// (flags of the message beside its records).
func AppendRecordsWith(dst []byte, key string, recs []store.Record, extra map[string]any) []byte {
	return appendRecordsDirect(dst, key, recs, extra) // recenc.go
}

// AppendRecords appends {"recs": [rec, ...]}.
func AppendRecords(dst []byte, recs []store.Record) []byte {
	return AppendRecordsAs(dst, "recs", recs)
}

// ParseRecords decodes what AppendRecords encodes.
func ParseRecords(x []byte) ([]store.Record, error) {
	if recs, _, _, ok := parseStoreDirect(x); ok {
		return recs, nil
	}
	d, err := decodeDict(x)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadRecord, err)
	}
	return RecordsOf(d, "recs")
}

// RecordsOf decodes the records listed under key of a decoded payload;
// none is an empty list.
func RecordsOf(d map[string]any, key string) ([]store.Record, error) {
	raw, _ := d[key].([]any)
	recs := make([]store.Record, 0, len(raw))
	for _, v := range raw {
		r, err := decodeRecord(v)
		if err != nil {
			return nil, err
		}
		recs = append(recs, r)
	}
	return recs, nil
}

func decodeRecord(v any) (store.Record, error) {
	d, ok := v.(map[string]any)
	if !ok {
		return store.Record{}, ErrBadRecord
	}
	var r store.Record
	k, ok1 := d["k"].([]byte)
	t, ok2 := d["t"].(int64)
	w, ok3 := d["w"].(int64)
	if !ok1 || !ok2 || !ok3 {
		return r, fmt.Errorf("%w: record needs k, t and w", ErrBadRecord)
	}
	if len(k) == 0 {
		return r, fmt.Errorf("%w: record with an empty key", ErrBadRecord)
	}
	r.Key = string(k)
	r.Version = store.Version{Time: uint64(t), Writer: uint64(w)}
	if r.Version.IsZero() {
		return r, fmt.Errorf("%w: record without a version", ErrBadRecord)
	}
	if del, _ := d["d"].(int64); del == 1 {
		r.Deleted = true
	} else if val, ok := d["v"].([]byte); ok {
		r.Value = append([]byte{}, val...)
	} else {
		return r, fmt.Errorf("%w: record without v", ErrBadRecord)
	}
	if e, ok := d["e"].(int64); ok && e > 0 {
		r.Expires = time.UnixMilli(e)
	}
	return r, nil
}
