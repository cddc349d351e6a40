package krpc

import (
	"errors"
	"math"
)

// Load is what a node holds for the network, as a dk_load response
// carries it in r.x: {"k": records, "b": bytes}.
type Load struct {
	Keys  int64
	Bytes int64
}

// AppendLoad appends the bencoded payload of a dk_load response.
func AppendLoad(dst []byte, l Load) []byte {
	out, err := AppendValue(dst, map[string]any{"k": max(l.Keys, 0), "b": max(l.Bytes, 0)})
	if err != nil {
		panic(err) // two integers always encode
	}
	return out
}

var errBadLoad = errors.New("krpc: dk_load: want x = {\"k\": records, \"b\": bytes}, both non-negative")

// ParseLoad reads the payload of a dk_load response.
func ParseLoad(x []byte) (Load, error) {
	v, err := Unmarshal(x)
	if err != nil {
		return Load{}, errors.Join(errBadLoad, err)
	}
	d, ok := v.(map[string]any)
	if !ok {
		return Load{}, errBadLoad
	}
	k, ok1 := d["k"].(int64)
	b, ok2 := d["b"].(int64)
	if !ok1 || !ok2 || k < 0 || b < 0 || k == math.MaxInt64 {
		return Load{}, errBadLoad
	}
	return Load{Keys: k, Bytes: b}, nil
}
