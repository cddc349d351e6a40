package kademlia

import (
	"errors"
	"fmt"
	"time"

	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/krpc"
	"github.com/dhtkit/dhtkit/store"
)

// The payloads of dhtkit's key-value methods travel bencoded under the key
// "x" of "a" and "r", so that the standard KRPC codec carries them and a
// standard peer, which answers the unknown methods with 204, is not
// disturbed by them.
//
//	dk_store  a.x: {"recs": [rec, ...]}        r.x: {"ok": [0|1, ...]}
//	          ("o": 1 when the sender wrote the one record itself)
//	dk_fetch  a.x: {"k": key} or {"h": target} r.x: {"recs": [rec, ...]}
//	dk_sync   a.x: {"d": depth, "b": [[i, digest], ...]}
//	          r.x: {"m": [[i, [[key, time, writer, deleted], ...]], ...]}
//	dk_listen a.x: {"k": key}                   r.x: {"recs": [rec] or []}
//	dk_notify a.x: {"recs": [rec]}              (empty response; error 253
//	                                             if the receiver stopped listening)
//
// rec is {"k": key, "v": value, "t": version time, "w": writer,
// "e": expiry in unix ms (absent: never), "d": 1 for a tombstone}.

var errBadPayload = errors.New("malformed dhtkit payload")

func appendRecord(m map[string]any, r *store.Record) map[string]any {
	m["k"] = r.Key
	// Versions are unsigned; bencode integers are signed 64-bit, so they
	// travel as the same bits.
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

func encodeRecords(dst []byte, key string, recs []store.Record) []byte {
	list := make([]any, len(recs))
	for i := range recs {
		list[i] = appendRecord(make(map[string]any, 6), &recs[i])
	}
	out, err := krpc.AppendValue(dst, map[string]any{key: list})
	if err != nil {
		panic(err) // only our own, well-typed values are encoded here
	}
	return out
}

// encodeOwnWrite is a dk_store payload of one record the sender wrote with
// its own clock (a put's write to the replicas), marked "o" so that a
// replica can check the version's writer against the authenticated sender
// (store.CheckWriter); repair, hand-over and an owner's signed version
// (whose signature vouches for it) travel unmarked.
func encodeOwnWrite(dst []byte, r store.Record) []byte {
	out, err := krpc.AppendValue(dst, map[string]any{"recs": []any{appendRecord(make(map[string]any, 6), &r)}, "o": int64(1)})
	if err != nil {
		panic(err) // only our own, well-typed values are encoded here
	}
	return out
}

func decodeRecord(v any) (store.Record, error) {
	d, ok := v.(map[string]any)
	if !ok {
		return store.Record{}, errBadPayload
	}
	var r store.Record
	k, ok1 := d["k"].([]byte)
	t, ok2 := d["t"].(int64)
	w, ok3 := d["w"].(int64)
	if !ok1 || !ok2 || !ok3 {
		return r, fmt.Errorf("%w: record needs k, t and w", errBadPayload)
	}
	if len(k) == 0 {
		return r, fmt.Errorf("%w: record with an empty key", errBadPayload)
	}
	r.Key = string(k)
	r.Version = store.Version{Time: uint64(t), Writer: uint64(w)}
	if r.Version.IsZero() {
		return r, fmt.Errorf("%w: record without a version", errBadPayload)
	}
	if del, _ := d["d"].(int64); del == 1 {
		r.Deleted = true
	} else if val, ok := d["v"].([]byte); ok {
		r.Value = append([]byte{}, val...)
	} else {
		return r, fmt.Errorf("%w: record without v", errBadPayload)
	}
	if e, ok := d["e"].(int64); ok && e > 0 {
		r.Expires = time.UnixMilli(e)
	}
	return r, nil
}

// decodeX decodes the "x" payload of a message into a dictionary.
func decodeX(x []byte) (map[string]any, error) {
	if len(x) == 0 {
		return nil, fmt.Errorf("%w: no x", errBadPayload)
	}
	v, err := krpc.Unmarshal(x)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errBadPayload, err)
	}
	d, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%w: x is not a dictionary", errBadPayload)
	}
	return d, nil
}

func decodeRecords(d map[string]any, key string) ([]store.Record, error) {
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

// AppendRecords appends the payload of a dk_store query or a dk_fetch
// answer, {"recs": [rec, ...]}: the record format other engines (chord)
// share.
func AppendRecords(dst []byte, recs []store.Record) []byte { return encodeRecords(dst, "recs", recs) }

// ParseRecords decodes what AppendRecords encodes.
func ParseRecords(x []byte) ([]store.Record, error) {
	d, err := decodeX(x)
	if err != nil {
		return nil, err
	}
	return decodeRecords(d, "recs")
}

func encodeX(dst []byte, v map[string]any) []byte {
	out, err := krpc.AppendValue(dst, v)
	if err != nil {
		panic(err)
	}
	return out
}

// target of a fetch request: a key's hash, given directly or by the key.
func fetchTarget(d map[string]any) (id.ID, string, bool) {
	if k, ok := d["k"].([]byte); ok {
		return id.FromString(string(k)), string(k), true
	}
	if h, ok := d["h"].([]byte); ok {
		if t, ok := id.FromBytes(h); ok {
			return t, "", true
		}
	}
	return id.ID{}, "", false
}
