package kademlia

import (
	"errors"
	"fmt"

	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/krpc"
	"github.com/dhtkit/dhtkit/replica"
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
//	dk_sync   the replication layer's tree exchange (package replica)
//	dk_keys   a.x: {"d": depth, "b": [[i, digest], ...]}
//	          r.x: {"m": [[i, [[key, time, writer, deleted], ...]], ...],
//	                "t": 1 when buckets asked for did not fit}
//	dk_listen a.x: {"k": key}                   r.x: {"recs": [rec] or []}
//	dk_notify a.x: {"recs": [rec]}              (empty response; error 253
//	                                             if the receiver stopped listening)
//
// rec is the replication layer's record (replica.AppendRecords): {"k":
// key, "v": value, "t": version time, "w": writer, "e": expiry in unix ms
// (absent: never), "d": 1 for a tombstone}.

var errBadPayload = errors.New("malformed dhtkit payload")

// encodeRecords appends {key: [rec, ...]}: the record codec is the
// replication layer's (replica.AppendRecords).
func encodeRecords(dst []byte, key string, recs []store.Record) []byte {
	return replica.AppendRecordsAs(dst, key, recs)
}

// encodeOwnWrite is a dk_store payload of one record the sender wrote with
// its own clock (a put's write to the replicas), marked "o" so that a
// replica can check the version's writer against the authenticated sender
// (store.CheckWriter); repair, hand-over and an owner's signed version
// (whose signature vouches for it) travel unmarked.
func encodeOwnWrite(dst []byte, r store.Record) []byte {
	return replica.AppendRecordsWith(dst, "recs", []store.Record{r}, map[string]any{"o": int64(1)})
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
	return replica.RecordsOf(d, key)
}

// AppendRecords appends the payload of a dk_store query or a dk_fetch
// answer, {"recs": [rec, ...]}: replica.AppendRecords.
func AppendRecords(dst []byte, recs []store.Record) []byte { return replica.AppendRecords(dst, recs) }

// ParseRecords decodes what AppendRecords encodes: replica.ParseRecords.
func ParseRecords(x []byte) ([]store.Record, error) { return replica.ParseRecords(x) }

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
		return store.KeyTarget(string(k)), string(k), true
	}
	if h, ok := d["h"].([]byte); ok {
		if t, ok := id.FromBytes(h); ok {
			return t, "", true
		}
	}
	return id.ID{}, "", false
}

// appendAcks appends a dk_store answer, {"ok": [0|1, ...]} for n records:
// 1 for record idx[j] when errs[j] is nil (the others were refused before
// the commit). It writes what encodeX would, without a map or a list.
func appendAcks(dst []byte, n int, idx []int, errs []error) []byte {
	dst = append(dst, "d2:okl"...)
	start := len(dst)
	for range n {
		dst = append(dst, "i0e"...)
	}
	for j, err := range errs {
		if err == nil {
			dst[start+3*idx[j]+1] = '1'
		}
	}
	return append(dst, "ee"...)
}
