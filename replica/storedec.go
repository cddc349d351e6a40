package replica

import (
	"time"

	"github.com/dhtkit/dhtkit/krpc"
	"github.com/dhtkit/dhtkit/store"
)

// parseStoreDirect decodes the dk_store payloads puts send, {"c": 1,
// "recs": [rec, ...], "o": 1}, with a krpc.Cursor: no map per dictionary and no
// interface per value, which cost a replica some twenty allocations per
// write. It takes only what it can decode exactly as ParseStore's map
// decoding would, the same records and flags, and says !ok for anything
// else: an unknown key, a duplicate one, a value of another type, a
// record the map decoding refuses, trailing bytes. The caller then
// decodes x the slow way, which accepts or refuses it, with its errors.
func parseStoreDirect(x []byte) (recs []store.Record, own, each, ok bool) {
	c, ok := krpc.NewCursor(x)
	if !ok || !c.Open('d') {
		return nil, false, false, false
	}
	var seenRecs, seenOwn, seenEach bool
	for !c.Close() {
		k, err := c.Str()
		if err != nil {
			return nil, false, false, false
		}
		switch string(k) {
		case "recs":
			if seenRecs || !c.Open('l') {
				return nil, false, false, false
			}
			seenRecs = true
			for !c.Close() {
				r, ok := parseRecordDirect(&c)
				if !ok {
					return nil, false, false, false
				}
				recs = append(recs, r)
			}
		case "o", "c":
			v, err := c.Int()
			seen := &seenOwn
			if k[0] == 'c' {
				seen = &seenEach
			}
			if *seen || err != nil {
				return nil, false, false, false
			}
			*seen = true
			if k[0] == 'c' {
				each = v == 1
			} else {
				own = v == 1
			}
		default:
			return nil, false, false, false
		}
	}
	if !c.Done() {
		return nil, false, false, false
	}
	if recs == nil {
		recs = []store.Record{} // RecordsOf's empty list
	}
	return recs, own, each, true
}

// parseRecordDirect decodes one record as decodeRecord does, or says !ok
// for whatever decodeRecord would refuse or parseStoreDirect leaves to it.
func parseRecordDirect(c *krpc.Cursor) (r store.Record, ok bool) {
	if !c.Open('d') {
		return r, false
	}
	const (
		hasK = 1 << iota
		hasT
		hasW
		hasV
		hasE
		hasD
	)
	var (
		seen       int
		key, val   []byte
		t, w, e, d int64
	)
	for !c.Close() {
		k, err := c.Str()
		if err != nil || len(k) != 1 {
			return r, false
		}
		var bit int
		switch k[0] {
		case 'k':
			bit = hasK
			key, err = c.Str()
		case 'v':
			bit = hasV
			val, err = c.Str()
		case 't':
			bit = hasT
			t, err = c.Int()
		case 'w':
			bit = hasW
			w, err = c.Int()
		case 'e':
			bit = hasE
			e, err = c.Int()
		case 'd':
			bit = hasD
			d, err = c.Int()
		default:
			return r, false
		}
		if err != nil || seen&bit != 0 {
			return r, false
		}
		seen |= bit
	}
	if seen&(hasK|hasT|hasW) != hasK|hasT|hasW || len(key) == 0 {
		return r, false
	}
	r.Key = string(key)
	r.Version = store.Version{Time: uint64(t), Writer: uint64(w)}
	if r.Version.IsZero() {
		return r, false
	}
	switch {
	case d == 1:
		r.Deleted = true
	case seen&hasV != 0:
		r.Value = append([]byte{}, val...)
	default:
		return r, false
	}
	if e > 0 {
		r.Expires = time.UnixMilli(e)
	}
	return r, true
}

// The two answers to a put's dk_store of one record (AppendAcks):
// acknowledged, or refused.
const (
	ackOne    = "d2:okli1eee"
	refuseOne = "d2:okli0eee"
)
