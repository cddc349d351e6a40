package replica

import (
	"fmt"
	"strconv"
	"time"

	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/krpc"
	"github.com/dhtkit/dhtkit/store"
)

// The key-value methods both engines serve, dk_store and dk_fetch, with
// their payloads under the "x" of KRPC's "a" and "r":
//
//	dk_store  a.x: {"recs": [rec, ...], "o": 1 when the sender wrote the
//	          one record itself}            r.x: {"ok": [0|1, ...]}
//	dk_fetch  a.x: {"k": key}, {"ks": [key, ...]} or {"h": target}
//	          r.x: {"recs": [rec, ...]}, as many as fit one datagram;
//	          a.x: {"c": 1, "ks": [key, ...]}, answered key by key
//	          (fetchbatch.go)
//
// A dhtkit method answered to a source that has not proven its address
// may instead carry {"again": 1} and a token (Kademlia's "token" of "r"):
// ask again with it (AppendAgain, IsAgain).

// Expired reports whether r is a value past its expiry. Tombstones are
// never expired here: the store decides when they go.
func Expired(r *store.Record, now time.Time) bool {
	return !r.Deleted && !r.Expires.IsZero() && !r.Expires.After(now)
}

// RecordSize is what a record adds to a payload, at most: its key, its
// value and the bencoding around them.
func RecordSize(r *store.Record) int { return len(r.Key) + len(r.Value) + 64 }

// DecodeX decodes the "x" payload of a message into a dictionary.
func DecodeX(x []byte) (map[string]any, error) { return decodeDict(x) }

// EncodeX appends the bencoding of v, one of the payloads above.
func EncodeX(dst []byte, v map[string]any) []byte { return encode(dst, v) }

// ParseStore decodes a dk_store query's payload: its records, and whether
// the sender says it wrote them itself with its own clock ("o": a put's
// write to its replicas, whose writer a network key lets the replica
// check); repair, hand-over and signed versions travel unmarked.
func ParseStore(x []byte) (recs []store.Record, own bool, err error) {
	recs, own, _, err = ParseStoreEach(x)
	return recs, own, err
}

// ParseStoreEach is ParseStore that also says whether the sender asks the
// replica to check, record by record, that it is one of each key's
// replicas ("c": a one-hop batch of writes to several keys, which no
// single target of the query names; AppendOwnWrites).
func ParseStoreEach(x []byte) (recs []store.Record, own, each bool, err error) {
	if recs, own, each, ok := parseStoreDirect(x); ok {
		return recs, own, each, nil
	}
	d, err := decodeDict(x)
	if err != nil {
		return nil, false, false, fmt.Errorf("%w: %w", ErrBadRecord, err)
	}
	recs, err = RecordsOf(d, "recs")
	return recs, d["o"] == int64(1), d["c"] == int64(1), err
}

// AppendOwnWrite appends a dk_store payload of one record the sender
// wrote itself, marked "o" (see ParseStore).
// It writes what AppendRecordsWith(dst, "recs", []store.Record{r},
// map[string]any{"o": int64(1)}) would, without the map and the slice:
// every put sends one to each replica.
func AppendOwnWrite(dst []byte, r store.Record) []byte {
	dst = append(dst, "d1:oi1e4:recsl"...)
	return append(appendRecordTo(dst, &r), "ee"...)
}

// AppendOwnWrites appends a dk_store payload of several records the
// sender wrote itself, marked "o", and "c": the replica checks each
// record's key (ParseStoreEach). It is the one datagram that carries the
// writes of several puts bound for the same replica.
func AppendOwnWrites(dst []byte, recs []*store.Record) []byte {
	dst = append(dst, "d1:ci1e1:oi1e4:recsl"...)
	for _, r := range recs {
		dst = appendRecordTo(dst, r)
	}
	return append(dst, "ee"...)
}

// AckCodes decodes a dk_store answer's list, {"ok": [n, ...]}: 1 for a
// record held, 0 for one refused, or the error code the replica gave a
// record it refused (a batch of writes, AppendOwnWrites). A malformed
// answer has none.
func AckCodes(x []byte) []int64 {
	d, err := decodeDict(x)
	if err != nil {
		return nil
	}
	list, _ := d["ok"].([]any)
	out := make([]int64, len(list))
	for i, v := range list {
		out[i], _ = v.(int64)
	}
	return out
}

// AppendAcks appends a dk_store answer for n records, {"ok": [0|1, ...]}:
// 1 for record idx[j] when errs[j] is nil (committed, or refused for an
// equal or newer version held), 0 for the others (refused before the
// commit). A nil idx is every record in order: errs[j] is record j's.
// held, if any, are the records kept out by a newer version ("h",
// reissue.go). It writes what EncodeX would, without a map or a list:
// every dk_store answered pays for it.
func AppendAcks(dst []byte, n int, idx []int, errs []error, held []Held) []byte {
	dst = append(dst, 'd')
	if len(held) > 0 {
		dst = appendHeld(dst, held)
	}
	dst = append(dst, "2:okl"...)
	start := len(dst)
	for range n {
		dst = append(dst, "i0e"...)
	}
	for j, err := range errs {
		if err == nil {
			i := j
			if idx != nil {
				i = idx[j]
			}
			dst[start+3*i+1] = '1'
		}
	}
	return append(dst, "ee"...)
}

// AppendAckCodes appends the answer to a batch of writes
// (AppendOwnWrites), {"ok": [code, ...]} (AckCodes), with held, the
// records kept out by a newer version, if any ("h", reissue.go).
func AppendAckCodes(dst []byte, codes []int, held []Held) []byte {
	dst = append(dst, 'd')
	if len(held) > 0 {
		dst = appendHeld(dst, held)
	}
	dst = append(dst, "2:okl"...)
	for _, c := range codes {
		dst = append(dst, 'i')
		dst = strconv.AppendInt(dst, int64(c), 10)
		dst = append(dst, 'e')
	}
	return append(dst, "ee"...)
}

// ParseAcks decodes a dk_store answer; a malformed one acknowledges
// nothing.
func ParseAcks(x []byte) []bool {
	d, err := decodeDict(x)
	if err != nil {
		return nil
	}
	list, _ := d["ok"].([]any)
	out := make([]bool, len(list))
	for i, v := range list {
		out[i] = v == int64(1)
	}
	return out
}

// AppendFetch appends a dk_fetch query for one key ({"k": key}) or for
// several ({"ks": [key, ...]}).
func AppendFetch(dst []byte, keys ...string) []byte {
	if len(keys) == 1 {
		return appendFetchKey(dst, keys[0])
	}
	list := make([]any, len(keys))
	for i, k := range keys {
		list[i] = k
	}
	return encode(dst, map[string]any{"ks": list})
}

// ServeFetch appends to dst the answer to a dk_fetch query from st: every
// value of a key (ValuesQuery: AppendValues), or the live records it asks
// for, by key, keys or target, as many as fit limit bytes of payload (one
// record at least, whatever its size: MaxRecordValue keeps it within a
// datagram), as {"recs": [rec, ...]}.
func ServeFetch(now time.Time, st store.Store, dst, x []byte, limit int) ([]byte, error) {
	if k, ok := parseFetchKey(x); ok { // a get's: one key
		rec, ok := liveRecord(now, st, string(k))
		if !ok {
			return append(dst, "d4:recslee"...), nil
		}
		dst = append(dst, "d4:recsl"...)
		return append(appendRecordTo(dst, &rec), "ee"...), nil
	}
	d, err := decodeDict(x)
	if err != nil {
		return dst, err
	}
	if key, ok := ValuesQuery(d); ok {
		return AppendValues(dst, st, key, now), nil
	}
	var recs []store.Record
	size := 0
	add := func(rec store.Record) bool {
		if Expired(&rec, now) {
			return true
		}
		size += RecordSize(&rec)
		if size > limit && len(recs) > 0 {
			return false
		}
		recs = append(recs, rec)
		return true
	}
	switch {
	case d["ks"] != nil:
		ks, _ := d["ks"].([]any)
		for _, k := range ks {
			kb, ok := k.([]byte)
			if !ok || len(kb) == 0 {
				continue
			}
			if rec, found, err := st.Get(string(kb)); err == nil && found && !add(rec) {
				break
			}
		}
	case d["k"] != nil:
		k, ok := d["k"].([]byte)
		if !ok || len(k) == 0 {
			return dst, fmt.Errorf("%w: k is not a key", ErrBadRecord)
		}
		if rec, found, err := st.Get(string(k)); err == nil && found {
			add(rec)
		}
	case d["h"] != nil:
		h, _ := d["h"].([]byte)
		t, ok := id.FromBytes(h)
		if !ok {
			return dst, fmt.Errorf("%w: h is not a 20-byte target", ErrBadRecord)
		}
		_ = st.Range(t, t, add)
	default:
		return dst, fmt.Errorf("%w: want k, ks or h", ErrBadRecord)
	}
	return AppendRecords(dst, recs), nil
}

// AppendAgain appends the answer of a dhtkit method to a source that has
// not proven it receives at its address, when the true answer would be
// too large for it (or, for dk_store, not to be applied): ask again with
// the token the message carries (krpc's "token" of "r").
func AppendAgain(dst []byte) []byte { return encode(dst, map[string]any{"again": 1}) }

// IsAgain reports whether an answer asks for the query again with its
// token (AppendAgain).
func IsAgain(m *krpc.Msg) bool {
	if m.Y != krpc.Response || m.R.Has&krpc.HasToken == 0 || len(m.R.Token) == 0 {
		return false
	}
	d, err := decodeDict(m.R.X)
	return err == nil && d["again"] == int64(1)
}
