package kademlia

import (
	"net/netip"
	"time"

	"github.com/dhtkit/dhtkit/krpc"
	"github.com/dhtkit/dhtkit/store"
)

// KVKeys asks the node at Addr for the entries (key, version, deleted) it
// stores in the digest buckets First to First+Count-1 of the id space
// (KeyBuckets buckets by the keys' hashes). It is one dk_keys query with
// a digest no bucket has: the node answers as many buckets as fit one
// datagram. The Result's Entries are what came
// back, and Next the first bucket to ask for next (KeyBuckets' count when
// the walk is over): a listing of a node's keys is a walk of pages, each
// bounded by the datagram.
type KVKeys struct {
	Addr         netip.AddrPort
	First, Count int
}

func (KVKeys) isOp() {}

// KeyBuckets is the number of buckets KVKeys walks: 2^keysDepth.
const KeyBuckets = 1 << keysDepth

// keysPerQuery bounds the buckets one KVKeys asks for, so that the query
// fits a datagram (about 16 bytes a bucket).
const keysPerQuery = 512

// KeyEntry is a key a node stores, with the version it holds.
type KeyEntry struct {
	Key     string
	Version store.Version
	Deleted bool
}

func (e *Engine) startKeys(now time.Time, s *opState, op KVKeys) {
	first := max(op.First, 0)
	last := min(first+min(max(op.Count, 1), keysPerQuery), KeyBuckets)
	if first >= KeyBuckets {
		s.result.Next = KeyBuckets
		e.finish(now, s, nil)
		return
	}
	list := make([]any, 0, last-first)
	for b := first; b < last; b++ {
		list = append(list, []any{int64(b), int64(noDigest)})
	}
	s.kv = &keysOp{s: s, first: first, last: last}
	m := e.newQuery(krpc.MethodKeys)
	m.A.Has |= krpc.HasX
	e.xbuf = encodeX(e.xbuf[:0], map[string]any{"d": int64(keysDepth), "b": list})
	m.A.X = e.xbuf
	e.querySingle(now, s, op.Addr)
}

// noDigest is the digest KVKeys gives every bucket: a bucket that holds
// records differs from it (but for a 2^-64 chance), so its entries come back.
const noDigest = 0

// keysOp is a KVKeys in flight.
type keysOp struct {
	s           *opState
	first, last int
}

func (k *keysOp) response(now time.Time, e *Engine, _ *pending, m *krpc.Msg) {
	entries, next, err := decodeKeys(m.R.X, k.first, k.last)
	k.s.result.Entries, k.s.result.Next = entries, next
	e.finish(now, k.s, err)
}

func (k *keysOp) failure(now time.Time, e *Engine, _ *pending, err error) {
	e.finish(now, k.s, err)
}

// decodeKeys reads a dk_sync answer to a KVKeys for buckets [first, last):
// the entries, and the first bucket not covered. A node answers buckets in
// the order asked and stops before a bucket that would not fit, saying so
// ("t": 1; a node of an earlier version instead stopped once its answer
// passed maxPayload): such an answer covers the buckets up to its last
// one; any other covers all it was asked. Buckets outside [first, last), or out of order, are a lie:
// the whole answer is refused.
func decodeKeys(x []byte, first, last int) ([]KeyEntry, int, error) {
	d, err := decodeX(x)
	if err != nil {
		return nil, 0, err
	}
	mism, ok := d["m"].([]any)
	if !ok {
		return nil, 0, errBadPayload
	}
	var out []KeyEntry
	size, prev := 0, first-1
	for _, b := range mism {
		pair, ok := b.([]any)
		if !ok || len(pair) != 2 {
			return nil, 0, errBadPayload
		}
		bi, ok1 := pair[0].(int64)
		entries, ok2 := pair[1].([]any)
		if !ok1 || !ok2 || bi <= int64(prev) || bi >= int64(last) {
			return nil, 0, errBadPayload
		}
		prev = int(bi)
		for _, x := range entries {
			ent, ok := x.([]any)
			if !ok || len(ent) != 4 {
				return nil, 0, errBadPayload
			}
			k, ok1 := ent[0].([]byte)
			t, ok2 := ent[1].(int64)
			w, ok3 := ent[2].(int64)
			del, ok4 := ent[3].(int64)
			if !ok1 || !ok2 || !ok3 || !ok4 || len(k) == 0 || len(k) > maxKeyLen {
				return nil, 0, errBadPayload
			}
			out = append(out, KeyEntry{Key: string(k), Version: store.Version{Time: uint64(t), Writer: uint64(w)}, Deleted: del == 1})
			size += len(k) + 40
		}
	}
	if t, _ := d["t"].(int64); (t == 1 || size > maxPayload) && prev+1 < last {
		return out, prev + 1, nil
	}
	return out, last, nil
}

// maxKeyLen bounds a key in a KVKeys answer, whatever a node's own limit.
const maxKeyLen = 4 << 10

// handleKeys answers dk_keys (KVKeys) with our entries of every bucket
// asked whose digest differs from the asker's, in the order asked, as many
// buckets as fit one datagram: it stops before a bucket that would not fit
// and says so ("t": 1). It only reads, and answers anyone: a key's name is
// no secret on a network whose nodes serve any key to anyone.
func (e *Engine) handleKeys(now time.Time, from netip.AddrPort, q, r *krpc.Msg) bool {
	d, err := decodeX(q.A.X)
	depth, ok1 := d["d"].(int64)
	list, ok2 := d["b"].([]any)
	if err != nil || !ok1 || !ok2 || depth != keysDepth || len(list) > keysPerQuery {
		e.replyError(now, from, q.T, krpc.CodeProtocol, "dk_keys: want d and b")
		return false
	}
	st := e.kvStore()
	digest, err := st.Digest(int(depth))
	if err != nil {
		e.replyError(now, from, q.T, krpc.CodeServer, "dk_keys: "+err.Error())
		return false
	}
	var mism []any
	size, truncated := 0, 0
	for _, x := range list {
		pair, ok := x.([]any)
		if !ok || len(pair) != 2 {
			continue
		}
		b, ok1 := pair[0].(int64)
		h, ok2 := pair[1].(int64)
		if !ok1 || !ok2 || b < 0 || b >= int64(len(digest)) || uint64(h) == digest[b] {
			continue
		}
		var entries []any
		bsize := 0
		_ = st.Bucket(int(depth), int(b), func(en store.Entry) bool {
			del := 0
			if en.Deleted {
				del = 1
			}
			entries = append(entries, []any{en.Key, int64(en.Version.Time), int64(en.Version.Writer), del})
			bsize += len(en.Key) + 40
			return true
		})
		if size+bsize > maxPayload && len(mism) > 0 {
			truncated = 1
			break
		}
		size += bsize
		mism = append(mism, []any{b, entries})
	}
	if mism == nil {
		mism = []any{}
	}
	r.R.Has |= krpc.HasX
	e.xbuf = encodeX(e.xbuf[:0], map[string]any{"m": mism, "t": truncated})
	r.R.X = e.xbuf
	return true
}

// keysDepth splits the id space into 2^keysDepth buckets for KVKeys.
const keysDepth = 10
