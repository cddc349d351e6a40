package replica

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/dhtkit/dhtkit/store"
)

// A key holds many values (store.ValueID), each its own record placed on
// the key's target, so a get of every value of a key asks each replica
// for all the records of the key at once, in one dk_fetch:
//
//	a.x: {"k": key, "all": 1}
//	r.x: {"recs": [rec, ...], "e": [[value id, time, writer, deleted], ...]}
//
// "recs" holds whole records while they fit MaxPayload; the records that
// do not fit are listed in "e" by value id and version only, and the
// reader fetches those one by one (by their record keys). A key holds at
// most store.MaxValuesPerKey values on a replica, so "e" always fits. A
// peer that does not know "all" answers with the key's default value
// alone, which reads as a key with one value.
//
// Values merges the answers per value, as Op does per key: each value's
// newest version among the replicas that answered, and the replicas to
// repair with it.

// entryBytes is what one entry of "e" costs at most, encoded.
const entryBytes = 4 + 3*21 + 2

// AppendValuesQuery appends the dk_fetch payload asking for every value
// of key.
func AppendValuesQuery(dst []byte, key string) []byte {
	return encode(dst, map[string]any{"k": key, "all": int64(1)})
}

// ValuesQuery reports whether a decoded dk_fetch payload asks for every
// value of its key, and which key.
func ValuesQuery(d map[string]any) (string, bool) {
	k, ok := d["k"].([]byte)
	all, _ := d["all"].(int64)
	return string(k), ok && len(k) > 0 && all == 1
}

// AppendValues appends the answer to a ValuesQuery for key from st: its
// live records (tombstones included) that fit MaxPayload, and the others
// as entries.
func AppendValues(dst []byte, st store.Store, key string, now time.Time) []byte {
	var recs []store.Record
	_ = store.Values(st, key, func(r store.Record) bool {
		if r.Deleted || r.Expires.IsZero() || r.Expires.After(now) {
			recs = append(recs, r)
		}
		return len(recs) < store.MaxValuesPerKey
	})
	// Newest first, so that what fits whole is what readers most want.
	slices.SortFunc(recs, func(a, b store.Record) int { return b.Version.Compare(a.Version) })
	var whole []store.Record
	var rest []any
	size := 16
	for i, r := range recs {
		n := len(r.Key) + len(r.Value) + 64
		if len(rest) == 0 && size+n+entryBytes*(len(recs)-i-1) <= MaxPayload {
			size += n
			whole = append(whole, r)
			continue
		}
		_, v := store.SplitKey(r.Key)
		d := int64(0)
		if r.Deleted {
			d = 1
		}
		rest = append(rest, []any{int64(v), int64(r.Version.Time), int64(r.Version.Writer), d})
	}
	var extra map[string]any
	if len(rest) > 0 {
		extra = map[string]any{"e": rest}
	}
	return AppendRecordsWith(dst, "recs", whole, extra)
}

// ParseValues decodes an answer to a ValuesQuery for key: the whole
// records, and the entries of the records left out (Entry.Key is the
// record key). Records of other keys are dropped.
func ParseValues(x []byte, key string) ([]store.Record, []store.Entry, error) {
	d, err := decodeDict(x)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrBadRecord, err)
	}
	recs, err := RecordsOf(d, "recs")
	if err != nil {
		return nil, nil, err
	}
	recs = slices.DeleteFunc(recs, func(r store.Record) bool { return store.BaseKey(r.Key) != key })
	raw, _ := d["e"].([]any)
	if len(raw) > store.MaxValuesPerKey {
		return nil, nil, fmt.Errorf("%w: %d entries, at most %d", ErrBadRecord, len(raw), store.MaxValuesPerKey)
	}
	ents := make([]store.Entry, 0, len(raw))
	for _, e := range raw {
		l, _ := e.([]any)
		if len(l) != 4 {
			return nil, nil, fmt.Errorf("%w: entry needs 4 fields", ErrBadRecord)
		}
		v, ok1 := l[0].(int64)
		t, ok2 := l[1].(int64)
		w, ok3 := l[2].(int64)
		del, ok4 := l[3].(int64)
		if !ok1 || !ok2 || !ok3 || !ok4 || (t == 0 && w == 0) {
			return nil, nil, fmt.Errorf("%w: bad entry", ErrBadRecord)
		}
		ents = append(ents, store.Entry{
			Key:     store.ValueKey(key, store.ValueID(uint64(v))),
			Version: store.Version{Time: uint64(t), Writer: uint64(w)},
			Deleted: del == 1,
		})
	}
	return recs, ents, nil
}

// Values gathers the answers of a key's replicas to a ValuesQuery, by
// member (the indexes of Op.Members).
type Values struct {
	answers []valuesAnswer
}

type valuesAnswer struct {
	done bool
	recs []store.Record
	ents []store.Entry
}

// NewValues makes room for the answers of n members.
func NewValues(n int) *Values { return &Values{answers: make([]valuesAnswer, n)} }

// Answer records member i's answer and returns its newest record (nil:
// none), what Op.Answer counts.
func (v *Values) Answer(i int, recs []store.Record, ents []store.Entry) *store.Record {
	a := &v.answers[i]
	a.done, a.recs, a.ents = true, recs, ents
	var best *store.Record
	for j := range recs {
		if best == nil || recs[j].Version.Newer(best.Version) {
			best = &recs[j]
		}
	}
	for _, e := range ents {
		// Known by version only: counts as an answer that holds the key.
		if best == nil || e.Version.Newer(best.Version) {
			best = &store.Record{Key: e.Key, Version: e.Version, Deleted: e.Deleted}
		}
	}
	return best
}

// Local records this node's own answer, member i, read from st.
func (v *Values) Local(i int, st store.Store, key string, now time.Time) (*store.Record, error) {
	var recs []store.Record
	err := store.Values(st, key, func(r store.Record) bool {
		if r.Deleted || r.Expires.IsZero() || r.Expires.After(now) {
			recs = append(recs, r)
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	return v.Answer(i, recs, nil), nil
}

// Merged is the outcome of a get of every value of a key.
type Merged struct {
	// Records holds each value's newest version whose record some
	// replica sent whole, tombstones included, newest first.
	Records []store.Record
	// Fetch names the record keys whose newest version came only as an
	// entry: read each by its record key.
	Fetch []string
	// Repairs lists, by member, the records it answered without or with an
	// older version of (read repair).
	Repairs map[int][]store.Record
}

// Merge decides each value from the answers so far.
func (v *Values) Merge() Merged {
	type best struct {
		ver store.Version
		rec *store.Record // nil: known only as an entry
	}
	newest := map[string]*best{}
	note := func(k string, ver store.Version, rec *store.Record) {
		b := newest[k]
		switch {
		case b == nil:
			newest[k] = &best{ver: ver, rec: rec}
		case ver.Newer(b.ver):
			b.ver, b.rec = ver, rec
		case ver == b.ver && b.rec == nil:
			b.rec = rec
		}
	}
	for i := range v.answers {
		a := &v.answers[i]
		for j := range a.recs {
			note(a.recs[j].Key, a.recs[j].Version, &a.recs[j])
		}
		for _, e := range a.ents {
			note(e.Key, e.Version, nil)
		}
	}
	var m Merged
	for k, b := range newest {
		if b.rec == nil {
			m.Fetch = append(m.Fetch, k)
			continue
		}
		m.Records = append(m.Records, *b.rec)
	}
	slices.SortFunc(m.Records, func(a, b store.Record) int {
		if c := b.Version.Compare(a.Version); c != 0 {
			return c
		}
		return strings.Compare(a.Key, b.Key)
	})
	slices.Sort(m.Fetch)
	for i := range v.answers {
		a := &v.answers[i]
		if !a.done {
			continue
		}
		held := make(map[string]store.Version, len(a.recs)+len(a.ents))
		for _, r := range a.recs {
			held[r.Key] = r.Version
		}
		for _, e := range a.ents {
			held[e.Key] = e.Version
		}
		for _, r := range m.Records {
			if h, ok := held[r.Key]; !ok || r.Version.Newer(h) {
				if m.Repairs == nil {
					m.Repairs = map[int][]store.Record{}
				}
				m.Repairs[i] = append(m.Repairs[i], r)
			}
		}
	}
	return m
}
