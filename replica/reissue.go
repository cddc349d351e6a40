package replica

import (
	"strconv"
	"time"

	"github.com/dhtkit/dhtkit/store"
)

// A write issued after another was acknowledged wins over it, even when
// the two writers' clocks say otherwise. Versions are hybrid logical
// clock readings in milliseconds, ties broken by writer id: a put
// acknowledged at 12:00:00.004 by one node and a delete issued a moment
// later through another node, whose clock had not seen the put, may get
// versions in the wrong order (the same millisecond, a smaller writer id,
// or a clock a little behind). Each replica would then keep the put and
// acknowledge the delete ("it holds something newer"), and the delete
// the application saw succeed would be lost.
//
// So a replica that does not take a direct write (one its writer made
// with its own clock, "o") because it holds a newer version of the key
// says so in its answer, with that version (Held, "h"); the writer moves
// its clock past it and issues the write again with a newer version, to
// the key's replicas, looked up again (Op.Beaten, Reissues). Two writes of one key
// issued one after the other are thus ordered as they were issued: the
// second's write quorum shares a replica with the first's, which reports
// the first's version. Writes that overlap in time are concurrent, and
// either may win, as before. A write that carries its version (an
// owner's signed one, a repair, a hand-over) is never issued again: its
// version is the point.
//
//	dk_store r.x: {"h": [[i, time, writer], ...], "ok": [...]}
//
// "h" lists the records of the query, by position, that the replica did
// not take for holding a newer version, and the version it holds; an
// answer without one is the plain {"ok": [...]}, which a writer of an
// earlier release reads as before (an acknowledgement).

// MaxReissues bounds how many times one put is issued again for a newer
// version a replica holds: writers racing on one key, or a replica that
// lies about what it holds, cost at most that many more rounds.
const MaxReissues = 3

// Held is a record of a dk_store the replica did not take because it
// holds a newer version of its key: I is the record's position in the
// query, Version what the replica holds.
type Held struct {
	I       int
	Version store.Version
}

// Superseded returns the records among recs, the direct writes of one
// dk_store, that the store did not take (applied[j] false, errs[j] nil)
// because it holds a newer version of the key, with that version; idx
// maps j to the position in the query (nil: j itself). Only those
// records cost a read of the store.
func Superseded(st store.Store, recs []store.Record, idx []int, errs []error, applied []bool) []Held {
	var out []Held
	for j := range recs {
		if applied[j] || errs[j] != nil {
			continue
		}
		cur, ok, err := st.Get(recs[j].Key)
		if err != nil || !ok || !cur.Version.Newer(recs[j].Version) {
			continue
		}
		i := j
		if idx != nil {
			i = idx[j]
		}
		out = append(out, Held{I: i, Version: cur.Version})
	}
	return out
}

// appendHeld appends the "h" entry of a dk_store answer (the key and its
// list) for held.
func appendHeld(dst []byte, held []Held) []byte {
	dst = append(dst, "1:hl"...)
	for _, h := range held {
		dst = append(dst, "li"...)
		dst = strconv.AppendInt(dst, int64(h.I), 10)
		dst = append(dst, "ei"...)
		dst = strconv.AppendInt(dst, int64(h.Version.Time), 10)
		dst = append(dst, "ei"...)
		dst = strconv.AppendInt(dst, int64(h.Version.Writer), 10)
		dst = append(dst, "ee"...)
	}
	return append(dst, 'e')
}

// maxHeld bounds the entries of "h" a writer reads: a batch of writes
// carries at most a few dozen records.
const maxHeld = 64

// heldOf decodes the "h" entry of a decoded dk_store answer; malformed
// entries are skipped.
func heldOf(d map[string]any) []Held {
	raw, _ := d["h"].([]any)
	if len(raw) > maxHeld {
		raw = raw[:maxHeld]
	}
	var out []Held
	for _, e := range raw {
		l, _ := e.([]any)
		if len(l) != 3 {
			continue
		}
		i, ok1 := l[0].(int64)
		t, ok2 := l[1].(int64)
		w, ok3 := l[2].(int64)
		v := store.Version{Time: uint64(t), Writer: uint64(w)}
		if !ok1 || !ok2 || !ok3 || i < 0 || i >= maxHeld || v.IsZero() {
			continue
		}
		out = append(out, Held{I: int(i), Version: v})
	}
	return out
}

// ParseHeld decodes the "h" entry of a dk_store answer: none for the
// plain answer, or one that does not parse.
func ParseHeld(x []byte) []Held {
	if len(x) < 4 || string(x[:4]) != "d1:h" {
		return nil // the plain answer, without decoding it
	}
	d, err := decodeDict(x)
	if err != nil {
		return nil
	}
	return heldOf(d)
}

// Held notes that a member holds version v of the key, which it kept
// over the write.
func (o *Op) Held(v store.Version) {
	if v.Newer(o.held) {
		o.held = v
	}
}

// Beaten reports whether a member holds a newer version of the key than
// the write's, v, and the newest such: the write should be issued again
// past it (see MaxReissues).
func (o *Op) Beaten(v store.Version) (store.Version, bool) {
	return o.held, o.held.Newer(v)
}

// Reissues is a put's share of reissuing, which the engine keeps with
// the operation across its attempts: Clocked says that this node's
// clock issued the put's version (only such a put may go again), and it
// counts the times the put went again.
type Reissues struct {
	Clocked bool
	n       int
}

// Next decides whether a written put of version v goes again, and with
// which version: it is Clocked, a member of o kept a newer version over
// it, it went again fewer than MaxReissues times, and clock, the
// writer's, can move past that version (one within its drift). The
// engine then starts the put over with the version returned, to the key's
// replicas looked up again, and drops the answers of the earlier attempt.
func (r *Reissues) Next(now time.Time, clock *store.Clock, o *Op, v store.Version) (store.Version, bool) {
	held, beaten := o.Beaten(v)
	if !r.Clocked || !beaten || r.n >= MaxReissues || clock.Observe(now, held) != nil {
		return v, false
	}
	next := clock.Now(now)
	if !next.Newer(held) {
		return v, false
	}
	r.n++
	return next, true
}

// heldLocal notes what this node's store holds of the key when it did
// not take the write (Committed).
func (o *Op) heldLocal(st store.Store) {
	if cur, ok, err := st.Get(o.Key); err == nil && ok {
		o.Held(cur.Version)
	}
}
