package replica

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/krpc"
	"github.com/dhtkit/dhtkit/store"
)

// Method is the KRPC method name of the tree exchange.
const Method = "dk_sync"

// Bounds of the exchange.
const (
	// MaxDepth is the deepest prefix a request may name: the store's
	// digest depth, 2^20 leaves.
	MaxDepth = store.MaxDigestDepth
	// MaxFanout is the most child levels one digest request asks for:
	// 2^6 = 64 hashes, 512 bytes.
	MaxFanout = 6
	// MaxPayload bounds the "x" payload of one message, leaving room for
	// the rest of a KRPC message within a 16 KiB datagram.
	MaxPayload = 12 << 10
	// maxKey is the longest key an entry may carry (store's default key
	// limit).
	maxKey = store.DefaultMaxKeySize
	// entryOverhead bounds the bytes an entry adds to a page besides its
	// key: a list, two 20-digit integers and a flag.
	entryOverhead = 56
)

// ErrBadPayload is a malformed dk_sync payload.
var ErrBadPayload = errors.New("malformed dk_sync payload")

// Prefix names a node of the tree: the targets whose first Len bits are
// Bits (right-aligned: Bits < 2^Len).
type Prefix struct {
	Bits uint32
	Len  int
}

// Root is the prefix of the whole id space.
var Root = Prefix{}

// Child returns the i-th of the 2^c children of p at depth p.Len+c.
func (p Prefix) Child(c, i int) Prefix {
	return Prefix{Bits: p.Bits<<uint(c) | uint32(i), Len: p.Len + c}
}

// Contains reports whether target t lies under p.
func (p Prefix) Contains(t id.ID) bool { return prefixOf(t, p.Len) == p }

// Range returns the first and last target under p.
func (p Prefix) Range() (lo, hi id.ID) { return store.BucketRange(p.Len, int(p.Bits)) }

// prefixOf returns the prefix of depth l (<= 32) of t.
func prefixOf(t id.ID, l int) Prefix {
	if l == 0 {
		return Root
	}
	return Prefix{Bits: binary.BigEndian.Uint32(t[:4]) >> (32 - uint(l)), Len: l}
}

// bytes returns the prefix's bits, left-aligned, in ceil(Len/8) bytes.
func (p Prefix) bytes() []byte {
	var b [4]byte
	if p.Len > 0 {
		binary.BigEndian.PutUint32(b[:], p.Bits<<(32-uint(p.Len)))
	}
	return b[:(p.Len+7)/8]
}

func parsePrefix(l int64, b []byte) (Prefix, error) {
	if l < 0 || l > MaxDepth {
		return Prefix{}, fmt.Errorf("%w: depth %d outside [0, %d]", ErrBadPayload, l, MaxDepth)
	}
	if len(b) != int(l+7)/8 {
		return Prefix{}, fmt.Errorf("%w: prefix of %d bytes for depth %d", ErrBadPayload, len(b), l)
	}
	var w [4]byte
	copy(w[:], b)
	v := binary.BigEndian.Uint32(w[:])
	if l == 0 {
		if v != 0 {
			return Prefix{}, fmt.Errorf("%w: bits past the prefix's depth", ErrBadPayload)
		}
		return Root, nil
	}
	if v<<uint(l) != 0 {
		return Prefix{}, fmt.Errorf("%w: bits past the prefix's depth", ErrBadPayload)
	}
	return Prefix{Bits: v >> (32 - uint(l)), Len: int(l)}, nil
}

// Request is one dk_sync query: the hashes of the 2^Fanout children of
// Prefix, or (Entries) a page of Prefix's entries after the key After.
type Request struct {
	Prefix  Prefix
	Fanout  int
	Entries bool
	After   string
}

// AppendRequest appends the "x" payload of q.
func AppendRequest(dst []byte, q Request) []byte {
	m := map[string]any{"l": q.Prefix.Len, "p": q.Prefix.bytes()}
	if q.Entries {
		m["e"] = 1
		if q.After != "" {
			m["a"] = q.After
		}
	} else {
		m["c"] = q.Fanout
	}
	return encode(dst, m)
}

// ParseRequest decodes a dk_sync query's "x" payload and checks its
// bounds: depth, fan-out, and that the children it asks for lie within
// MaxDepth.
func ParseRequest(x []byte) (Request, error) {
	var q Request
	d, err := decodeDict(x)
	if err != nil {
		return q, err
	}
	l, ok1 := d["l"].(int64)
	pb, ok2 := d["p"].([]byte)
	if !ok1 || !ok2 {
		return q, fmt.Errorf("%w: want l and p", ErrBadPayload)
	}
	if q.Prefix, err = parsePrefix(l, pb); err != nil {
		return q, err
	}
	if e, _ := d["e"].(int64); e == 1 {
		q.Entries = true
		if a, ok := d["a"].([]byte); ok {
			if len(a) == 0 || len(a) > maxKey {
				return q, fmt.Errorf("%w: after-key of %d bytes", ErrBadPayload, len(a))
			}
			q.After = string(a)
		}
		return q, nil
	}
	c, ok := d["c"].(int64)
	if !ok || c < 1 || c > MaxFanout || l+c > MaxDepth {
		return q, fmt.Errorf("%w: want c in [1, %d] within depth %d", ErrBadPayload, MaxFanout, MaxDepth)
	}
	q.Fanout = int(c)
	return q, nil
}

// appendDigests appends the answer to a digest request.
func appendDigests(dst []byte, hs []uint64) []byte {
	b := make([]byte, 8*len(hs))
	for i, h := range hs {
		binary.BigEndian.PutUint64(b[8*i:], h)
	}
	return encode(dst, map[string]any{"h": b})
}

// ParseDigests decodes the answer to a digest request of fan-out c.
func ParseDigests(x []byte, c int) ([]uint64, error) {
	d, err := decodeDict(x)
	if err != nil {
		return nil, err
	}
	b, ok := d["h"].([]byte)
	if !ok || len(b) != 8<<uint(c) {
		return nil, fmt.Errorf("%w: want h, %d hashes", ErrBadPayload, 1<<uint(c))
	}
	hs := make([]uint64, 1<<uint(c))
	for i := range hs {
		hs[i] = binary.BigEndian.Uint64(b[8*i:])
	}
	return hs, nil
}

// entrySize is what an entry adds to a page, at most.
func entrySize(e store.Entry) int { return len(e.Key) + entryOverhead }

// appendEntries appends the answer to an entries request.
func appendEntries(dst []byte, es []store.Entry, more bool) []byte {
	list := make([]any, len(es))
	for i, e := range es {
		del := 0
		if e.Deleted {
			del = 1
		}
		// Versions are unsigned; bencode integers are signed 64-bit, so
		// they travel as the same bits.
		list[i] = []any{e.Key, int64(e.Version.Time), int64(e.Version.Writer), del}
	}
	return encode(dst, map[string]any{"e": list, "m": more})
}

// ParseEntries decodes the answer to an entries request of prefix p:
// every entry must be well formed and lie under p, in the store's order
// (target, then key), after the key after.
func ParseEntries(x []byte, p Prefix, after string) (es []store.Entry, more bool, err error) {
	d, err := decodeDict(x)
	if err != nil {
		return nil, false, err
	}
	list, ok := d["e"].([]any)
	if !ok {
		return nil, false, fmt.Errorf("%w: want e", ErrBadPayload)
	}
	m, _ := d["m"].(int64)
	es = make([]store.Entry, 0, len(list))
	var last struct {
		t id.ID
		k string
	}
	if after != "" {
		last.t, last.k = store.KeyTarget(after), after
	}
	for i, v := range list {
		f, ok := v.([]any)
		if !ok || len(f) != 4 {
			return nil, false, fmt.Errorf("%w: entry is not [key, time, writer, deleted]", ErrBadPayload)
		}
		k, ok1 := f[0].([]byte)
		t, ok2 := f[1].(int64)
		w, ok3 := f[2].(int64)
		del, ok4 := f[3].(int64)
		if !ok1 || !ok2 || !ok3 || !ok4 || len(k) == 0 || len(k) > maxKey || del < 0 || del > 1 {
			return nil, false, fmt.Errorf("%w: entry is not [key, time, writer, deleted]", ErrBadPayload)
		}
		e := store.Entry{Key: string(k), Version: store.Version{Time: uint64(t), Writer: uint64(w)}, Deleted: del == 1}
		if e.Version.IsZero() {
			return nil, false, fmt.Errorf("%w: entry without a version", ErrBadPayload)
		}
		tg := store.KeyTarget(e.Key)
		if !p.Contains(tg) {
			return nil, false, fmt.Errorf("%w: entry %q outside the prefix", ErrBadPayload, e.Key)
		}
		if (i > 0 || after != "") && compareTK(tg, e.Key, last.t, last.k) <= 0 {
			return nil, false, fmt.Errorf("%w: entries out of order", ErrBadPayload)
		}
		last.t, last.k = tg, e.Key
		es = append(es, e)
	}
	return es, m == 1, nil
}

func encode(dst []byte, v map[string]any) []byte {
	out, err := krpc.AppendValue(dst, v)
	if err != nil {
		panic(err) // only our own, well-typed values are encoded here
	}
	return out
}

func decodeDict(x []byte) (map[string]any, error) {
	if len(x) == 0 {
		return nil, fmt.Errorf("%w: no x", ErrBadPayload)
	}
	v, err := krpc.Unmarshal(x)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadPayload, err)
	}
	d, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%w: x is not a dictionary", ErrBadPayload)
	}
	return d, nil
}
