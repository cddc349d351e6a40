package replica

import (
	"fmt"
	"time"

	"github.com/dhtkit/dhtkit/krpc"
	"github.com/dhtkit/dhtkit/store"
)

// A batch of gets' reads to one replica (Kademlia's one-hop reads,
// kademlia/fetchbatch.go) is one dk_fetch of several keys that asks the
// replica to answer each key on its own:
//
//	a.x: {"c": 1, "ks": [key, ...]}
//	r.x: {"ok": [code, ...], "recs": [rec, ...]}
//
// with, in each key's place, 1 (found: its record is the next one of
// "recs"), 0 (not found, or expired) or the error code a dk_fetch of that
// key alone would have drawn (the replica's "not a replica", say), or
// CodeFetchAlone when its record did not fit the answer. A replica of an
// older version reads the query as a fetch of several keys ("ks"),
// answers {"recs": [...]} with what it holds and fits, and no "ok": the
// reader cannot tell a key missing from one left out, and counts that
// answer as a failure of each key (ParseFetchAnswers says !ok).

// CodeFetchAlone is a batch answer's code for a key whose record did not
// fit in the answer: fetch that key alone.
const CodeFetchAlone = 248

// FetchKeySize is what key adds to a batch query, at most, the query's
// own few bytes included.
func FetchKeySize(key string) int { return len(key) + 16 }

// AppendFetchEach appends a batch query for keys, {"c": 1, "ks": [key,
// ...]}.
func AppendFetchEach(dst []byte, keys []string) []byte {
	dst = append(dst, "d1:ci1e2:ksl"...)
	for _, k := range keys {
		dst = appendBStr(dst, k)
	}
	return append(dst, "ee"...)
}

// ParseFetchEach decodes a batch query with a krpc.Cursor. It says
// !each for any payload it does not decode exactly as the map decoding
// would read {"c": 1, "ks": [key, ...]} with every key a non-empty string
// (an unknown or duplicate entry, another type, trailing bytes): the
// caller serves that as any dk_fetch (ServeFetch). A batch of more than
// max keys is an error, found before the rest is read: a replica checks
// each key, and a datagram must not make it check more.
func ParseFetchEach(x []byte, max int) (keys [][]byte, each bool, err error) {
	c, ok := krpc.NewCursor(x)
	if !ok || !c.Open('d') {
		return nil, false, nil
	}
	k, err := c.Str()
	if err != nil || string(k) != "c" {
		return nil, false, nil
	}
	if v, err := c.Int(); err != nil || v != 1 {
		return nil, false, nil
	}
	if k, err = c.Str(); err != nil || string(k) != "ks" || !c.Open('l') {
		return nil, false, nil
	}
	keys = make([][]byte, 0, max) // one allocation for any batch within the bound
	for !c.Close() {
		key, err := c.Str()
		if err != nil || len(key) == 0 {
			return nil, false, nil
		}
		if len(keys) == max {
			return nil, true, fmt.Errorf("%w: more than %d keys to check", ErrBadRecord, max)
		}
		keys = append(keys, key)
	}
	if !c.Close() || !c.Done() {
		return nil, false, nil
	}
	return keys, true, nil
}

// ServeFetchEach appends the answer to a batch query of keys from st:
// each key's code and the records found, in order. refuse gives the
// error code of a key the replica will not answer for (0: it will);
// records beyond limit bytes of payload are left to a fetch of their own
// (CodeFetchAlone), but the first always fits (MaxRecordValue keeps it
// within a datagram).
func ServeFetchEach(now time.Time, st store.Store, dst []byte, keys [][]byte, limit int, refuse func(key string) int) []byte {
	var (
		cbuf [16]int
		rbuf [16]store.Record
	)
	codes, recs := cbuf[:0], rbuf[:0]
	size := 0
	for _, k := range keys {
		key := string(k)
		if c := refuse(key); c != 0 {
			codes = append(codes, c)
			continue
		}
		rec, ok := liveRecord(now, st, key)
		switch {
		case !ok:
			codes = append(codes, 0)
		case size+RecordSize(&rec) > limit && len(recs) > 0:
			codes = append(codes, CodeFetchAlone)
		default:
			size += RecordSize(&rec)
			codes = append(codes, 1)
			recs = append(recs, rec)
		}
	}
	dst = append(dst, "d2:okl"...)
	for _, c := range codes {
		dst = appendBInt(dst, int64(c))
	}
	dst = append(dst, "e4:recsl"...)
	for i := range recs {
		dst = appendRecordTo(dst, &recs[i])
	}
	return append(dst, "ee"...)
}

// liveRecord reads key's record from st, unless it is missing, expired or
// unreadable: what a dk_fetch answers for one key.
func liveRecord(now time.Time, st store.Store, key string) (store.Record, bool) {
	rec, found, err := st.Get(key)
	if err != nil || !found || Expired(&rec, now) {
		return store.Record{}, false
	}
	return rec, true
}

// ParseFetchAnswers decodes the answer to a batch query, with a
// krpc.Cursor, appending its codes and records to codes and recs (the
// caller's buffers, sized for its batch). It says !ok for anything but
// {"ok": [code, ...], "recs": [rec, ...]} with as many records as codes
// of 1, records the map decoding would take: an older replica's answer,
// which has no "ok" (see above), or a malformed one. The caller checks
// that each record is of the key asked.
func ParseFetchAnswers(x []byte, codes []int64, recs []store.Record) ([]int64, []store.Record, bool) {
	codes, recs = codes[:0], recs[:0]
	c, ok := krpc.NewCursor(x)
	if !ok || !c.Open('d') {
		return nil, nil, false
	}
	if k, err := c.Str(); err != nil || string(k) != "ok" || !c.Open('l') {
		return nil, nil, false
	}
	found := 0
	for !c.Close() {
		v, err := c.Int()
		if err != nil {
			return nil, nil, false
		}
		if v == 1 {
			found++
		}
		codes = append(codes, v)
	}
	if k, err := c.Str(); err != nil || string(k) != "recs" || !c.Open('l') {
		return nil, nil, false
	}
	for !c.Close() {
		r, ok := parseRecordDirect(&c)
		if !ok || len(recs) == found {
			return nil, nil, false
		}
		recs = append(recs, r)
	}
	if !c.Close() || !c.Done() || len(recs) != found {
		return nil, nil, false
	}
	return codes, recs, true
}
