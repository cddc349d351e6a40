package replica

import (
	"slices"
	"strconv"

	"github.com/dhtkit/dhtkit/krpc"
	"github.com/dhtkit/dhtkit/store"
)

// appendRecordsDirect is AppendRecordsWith without the maps: every put
// encodes its record once per replica, and building a map per record cost
// a dozen allocations. It writes the same canonical bencoding as
// encode(appendRecord(...)) would (recenc_test.go checks that, so a field
// added to appendRecord must be added here too).
func appendRecordsDirect(dst []byte, key string, recs []store.Record, extra map[string]any) []byte {
	var small [4]string
	keys := small[:0]
	for k := range extra {
		keys = append(keys, k)
	}
	keys = append(keys, key)
	slices.Sort(keys)
	dst = append(dst, 'd')
	for _, k := range keys {
		dst = appendBStr(dst, k)
		if k != key {
			var err error
			if dst, err = krpc.AppendValue(dst, extra[k]); err != nil {
				panic(err) // only our own, well-typed values are encoded here
			}
			continue
		}
		dst = append(dst, 'l')
		for i := range recs {
			dst = appendRecordTo(dst, &recs[i])
		}
		dst = append(dst, 'e')
	}
	return append(dst, 'e')
}

// appendRecordTo appends one record's dictionary, keys in bencode's order.
func appendRecordTo(dst []byte, r *store.Record) []byte {
	dst = append(dst, 'd')
	if r.Deleted {
		dst = appendBInt(append(dst, "1:d"...), 1)
	}
	if !r.Expires.IsZero() {
		dst = appendBInt(append(dst, "1:e"...), r.Expires.UnixMilli())
	}
	dst = appendBStr(append(dst, "1:k"...), r.Key)
	dst = appendBInt(append(dst, "1:t"...), int64(r.Version.Time))
	if !r.Deleted {
		dst = appendBStr(append(dst, "1:v"...), r.Value)
	}
	dst = appendBInt(append(dst, "1:w"...), int64(r.Version.Writer))
	return append(dst, 'e')
}

func appendBStr[S ~string | ~[]byte](dst []byte, s S) []byte {
	dst = strconv.AppendInt(dst, int64(len(s)), 10)
	return append(append(dst, ':'), s...)
}

func appendBInt(dst []byte, v int64) []byte {
	return append(strconv.AppendInt(append(dst, 'i'), v, 10), 'e')
}
