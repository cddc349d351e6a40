package replica

import (
	"strconv"

	"github.com/dhtkit/dhtkit/krpc"
)

// A get's dk_fetch is {"k": key} one way and {"recs": [rec]} the other,
// at each of the replicas it reads: these write and read the two without
// a map per dictionary or an interface per value (parseStoreDirect reads
// the answer, whose records are those of a dk_store).

// appendFetchKey appends {"k": key}, what encode writes for it.
func appendFetchKey(dst []byte, key string) []byte {
	dst = append(dst, "d1:k"...)
	dst = strconv.AppendInt(dst, int64(len(key)), 10)
	dst = append(dst, ':')
	dst = append(dst, key...)
	return append(dst, 'e')
}

// parseFetchKey decodes a dk_fetch query of one key, {"k": key}, as
// ServeFetch's map decoding would, or says !ok for anything else (other
// keys, an empty key, trailing bytes): the caller then decodes x the slow
// way, which serves or refuses it.
func parseFetchKey(x []byte) (key []byte, ok bool) {
	c, ok := krpc.NewCursor(x)
	if !ok || !c.Open('d') {
		return nil, false
	}
	k, err := c.Str()
	if err != nil || string(k) != "k" {
		return nil, false
	}
	key, err = c.Str()
	if err != nil || len(key) == 0 || !c.Close() || !c.Done() {
		return nil, false
	}
	return key, true
}
