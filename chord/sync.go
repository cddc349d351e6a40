package chord

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"

	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/krpc"
	"github.com/dhtkit/dhtkit/store"
)

// Replica maintenance. A write reaches the key's replica set once; churn
// then erodes it: a replica crashes, or a node joins between the key and
// its replicas. So every SyncInterval each node offers the records it is
// the primary for, those whose target lies in (predecessor, self], to its
// first Replicas-1 successors, which are the rest of their replica set:
// it sends them the keys and versions (ch_sync, in batches that each cover
// a contiguous part of the range), each answers with the entries it lacks
// or holds older, and the node pushes those records with dk_store.
// Replicas that agree exchange keys and versions only, never values.
//
// The ring makes this simpler than Kademlia's digest exchange (package
// kademlia, sync.go): who should hold a key follows from the successor
// list, so only the primary has to look, and a replica that died has
// already been dropped from the list by stabilize when the next round
// runs, which then offers its keys to the node that took its place. A
// node that joins between a key and its replicas is in the list of the
// key's primary after the next stabilize and gets the records from the
// next round; one that joins before the primary becomes the primary, is
// handed its range on notify (pushRange), and offers it on from then on.
//
// The other way round, a successor that is offered a batch by its own
// predecessor pushes back the records of the batch's range that the
// predecessor lacks or holds older: a new primary whose hand-over was lost
// gets the range from the replica next to it. Only a verified predecessor
// gets such pushes, so that a spoofed ch_sync cannot turn this node into
// an amplifier.
//
// Maintenance never drops a record: a node that is no longer in a key's
// replica set keeps its copy until it expires. That costs storage, never
// data; Versions decide, so a stale copy cannot override a newer write or
// a tombstone, and tombstones travel like values, so a delete does not
// come back.

const methodSync = "ch_sync"

// maxSyncEntries bounds the entries accepted in one ch_sync; a batch
// that fits maxPayload holds fewer.
const maxSyncEntries = 1024

// syncBatch is one ch_sync: the sender's entries whose target lies in
// (lo, hi], all of them, in ring order from lo.
type syncBatch struct {
	lo, hi  id.ID
	entries []store.Entry
}

// entrySize estimates an entry's encoded size, with room to spare.
func entrySize(e store.Entry) int { return len(e.Key) + 48 }

// syncBatches splits the entries of the range (lo, hi], in ring order,
// into batches that fit maxPayload. A range without entries still makes
// one, so that the successor can push back what it holds there.
func syncBatches(lo, hi id.ID, entries []store.Entry) []syncBatch {
	var out []syncBatch
	b := syncBatch{lo: lo, hi: hi}
	size := 0
	for _, en := range entries {
		if n := entrySize(en); len(b.entries) > 0 && (size+n > maxPayload || len(b.entries) == maxSyncEntries) {
			b.hi = id.FromString(b.entries[len(b.entries)-1].Key)
			out = append(out, b)
			b, size = syncBatch{lo: b.hi, hi: hi}, 0
		}
		b.entries = append(b.entries, en)
		size += entrySize(en)
	}
	return append(out, b)
}

func encodeSync(dst []byte, b syncBatch) []byte {
	list := make([]any, len(b.entries))
	for i, en := range b.entries {
		// Versions are unsigned; bencode integers are signed 64-bit, so
		// they travel as the same bits, as in a record.
		list[i] = []any{en.Key, int64(en.Version.Time), int64(en.Version.Writer)}
	}
	return encodeX(dst, map[string]any{"a": b.lo[:], "b": b.hi[:], "e": list})
}

// decodeSync reads a ch_sync argument; every entry must be well formed
// and lie in the batch's range.
func decodeSync(x []byte) (syncBatch, error) {
	var b syncBatch
	d, err := decodeX(x)
	if err != nil {
		return b, err
	}
	lo, ok1 := d["a"].([]byte)
	hi, ok2 := d["b"].([]byte)
	if !ok1 || !ok2 || len(lo) != id.Len || len(hi) != id.Len {
		return b, fmt.Errorf("%w: want a and b, 20-byte ids", errBadPayload)
	}
	b.lo, b.hi = id.ID(lo), id.ID(hi)
	list, ok := d["e"].([]any)
	if !ok && d["e"] != nil {
		return b, fmt.Errorf("%w: e is not a list", errBadPayload)
	}
	if len(list) > maxSyncEntries {
		return b, fmt.Errorf("%w: %d entries, at most %d", errBadPayload, len(list), maxSyncEntries)
	}
	b.entries = make([]store.Entry, 0, len(list))
	for _, v := range list {
		en, ok := v.([]any)
		if !ok || len(en) != 3 {
			return b, fmt.Errorf("%w: entry is not a list of key, time and writer", errBadPayload)
		}
		k, ok1 := en[0].([]byte)
		t, ok2 := en[1].(int64)
		w, ok3 := en[2].(int64)
		if !ok1 || !ok2 || !ok3 || len(k) == 0 || len(k) > store.DefaultMaxKeySize {
			return b, fmt.Errorf("%w: entry is not a key, time and writer", errBadPayload)
		}
		e := store.Entry{Key: string(k), Version: store.Version{Time: uint64(t), Writer: uint64(w)}}
		if e.Version.IsZero() {
			return b, fmt.Errorf("%w: entry without a version", errBadPayload)
		}
		if !id.Between(id.FromString(e.Key), b.lo, b.hi) {
			return b, fmt.Errorf("%w: entry %q outside the batch's range", errBadPayload, e.Key)
		}
		b.entries = append(b.entries, e)
	}
	return b, nil
}

// decodeWant reads a ch_sync reply to a batch of n entries: the indexes
// of the entries the replica wants.
func decodeWant(x []byte, n int) ([]int, error) {
	d, err := decodeX(x)
	if err != nil {
		return nil, err
	}
	list, ok := d["w"].([]any)
	if !ok && d["w"] != nil {
		return nil, fmt.Errorf("%w: w is not a list", errBadPayload)
	}
	if len(list) > n {
		return nil, fmt.Errorf("%w: %d wanted of %d entries", errBadPayload, len(list), n)
	}
	out := make([]int, len(list))
	for i, v := range list {
		j, ok := v.(int64)
		if !ok || j < 0 || j >= int64(n) {
			return nil, fmt.Errorf("%w: want index %v out of range", errBadPayload, v)
		}
		out[i] = int(j)
	}
	return out, nil
}

// syncDepth is the depth of the store's index buckets (store.Bucket) that
// maintenance walks: 1024 buckets, so a node of a ring of a thousand
// walks one or two.
const syncDepth = 10

// bucketOf is the index of the bucket of depth syncDepth that holds x.
func bucketOf(x id.ID) int { return int(binary.BigEndian.Uint32(x[:4]) >> (32 - syncDepth)) }

// eachEntry calls fn for each entry whose target lies in the ring
// interval (lo, hi], in ring order from lo; lo == hi is the whole ring.
// It walks the store's index only: values stay where they are (on disk,
// with OpenBolt).
func (e *Engine) eachEntry(lo, hi id.ID, fn func(store.Entry)) {
	st := e.cfg.Store
	if st == nil {
		return
	}
	const buckets = 1 << syncDepth
	first, last := bucketOf(lo), bucketOf(hi)
	n := (last - first + buckets) % buckets // buckets after the first
	if n == 0 && id.Compare(lo, hi) >= 0 {
		n = buckets // around the ring, back into lo's bucket
	}
	for k := 0; k <= n; k++ {
		_ = st.Bucket(syncDepth, (first+k)%buckets, func(en store.Entry) bool {
			t := id.FromString(en.Key)
			if k == 0 && id.Compare(t, lo) <= 0 || k == n && id.Compare(t, hi) > 0 {
				return true
			}
			fn(en)
			return true
		})
	}
}

// sync offers the records this node is the primary for to the rest of
// their replica set.
func (e *Engine) sync(now time.Time) {
	r := &e.ring
	n := min(e.cfg.Replicas-1, len(r.succs))
	if !r.hasPred || n <= 0 {
		return // the range is unknown, or there is nobody to offer it to
	}
	// Chord keeps no other clock on its records: drop what expired
	// (tombstones included) here, so that expired records are not offered.
	if st := e.cfg.Store; st != nil {
		if _, err := st.Expire(now); err != nil {
			return
		}
	}
	var entries []store.Entry
	e.eachEntry(r.pred.ID, e.self, func(en store.Entry) { entries = append(entries, en) })
	if len(entries) == 0 {
		// Nothing to offer; only the successor, which has us as its
		// predecessor, may push back what we lack (handleSync).
		n = 1
	}
	batches := syncBatches(r.pred.ID, e.self, entries)
	for _, to := range r.succs[:n] {
		for _, b := range batches {
			s := e.newOp(now, nil, true)
			s.sync = &b
			q := e.newQuery(mSync)
			q.A.Has |= krpc.HasX
			e.xbuf = encodeSync(e.xbuf[:0], b)
			q.A.X = e.xbuf
			if !e.sendQuery(now, mSync, to.Addr, to.ID, s.id, forOp) {
				e.finish(now, s, errBadAddr)
			}
		}
	}
}

// synced handles a replica's answer to a batch: push what it wants.
func (e *Engine) synced(now time.Time, s *opState, p *pending, m *krpc.Msg) {
	b := s.sync
	want, err := decodeWant(m.R.X, len(b.entries))
	if err != nil {
		e.stats.Malformed++
		e.finish(now, s, err)
		return
	}
	var recs []store.Record
	st := e.kvStore()
	for _, i := range want {
		rec, ok, err := st.Get(b.entries[i].Key)
		if err == nil && ok && !expired(&rec, now) {
			recs = append(recs, rec)
		}
	}
	e.finish(now, s, nil)
	e.pushRecords(now, krpc.NodeInfo{ID: p.nodeID, Addr: p.to}, recs, 0)
}

// handleSync answers ch_sync: the indexes of the entries we lack or hold
// older; to our predecessor, it first pushes what we hold newer in the
// batch's range, or it lacks. It leaves the reply in e.out and reports
// whether there is one.
func (e *Engine) handleSync(now time.Time, from netip.AddrPort, sender id.ID, q *krpc.Msg) bool {
	b, err := decodeSync(q.A.X)
	if err != nil {
		e.stats.Malformed++
		e.replyError(from, q.T, krpc.CodeProtocol, methodSync+": "+err.Error())
		return false
	}
	st := e.kvStore()
	want := make([]any, 0)
	offered := make(map[string]store.Version, len(b.entries))
	for i, en := range b.entries {
		offered[en.Key] = en.Version
		rec, ok, err := st.Get(en.Key)
		if err == nil && (!ok || en.Version.Newer(rec.Version)) {
			want = append(want, i)
		}
	}
	if r := &e.ring; r.hasPred && r.pred.ID == sender && r.pred.Addr == from {
		var back []store.Record
		e.eachEntry(b.lo, b.hi, func(en store.Entry) {
			if v, ok := offered[en.Key]; ok && !en.Version.Newer(v) {
				return
			}
			if rec, ok, err := st.Get(en.Key); err == nil && ok && !expired(&rec, now) {
				back = append(back, rec)
			}
		})
		e.pushRecords(now, r.pred, back, 0)
	}
	e.xbuf = encodeX(e.xbuf[:0], map[string]any{"w": want})
	r := e.newResponse(q.T) // the pushes went through e.out
	r.R.Has |= krpc.HasX
	r.R.X = e.xbuf
	return true
}
