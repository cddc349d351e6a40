package replica

import (
	"fmt"

	"github.com/dhtkit/dhtkit/store"
)

// The wire form of conditional writes' messages, carried by the engines
// as the x of a query (CASMsg) and of its answer (CASAnswer): bencoded
// dictionaries with the record codec of dk_store,
//
//	query:  {"ph": 1|2, "k": key, "bt": ballot time, "bw": ballot writer, "recs": [record]}
//	answer: {"ok": 0|1, "st": seen time, "sw": seen writer, "recs": [record]}
//
// where the accept's record (one) is the record to store, and a
// promise's (none or one) is what the member holds. One record of at
// most a record's value fits a datagram as dk_store's does.

// AppendCASMsg appends the wire form of m.
func AppendCASMsg(dst []byte, m CASMsg) []byte {
	var recs []store.Record
	if m.Rec != nil {
		recs = []store.Record{*m.Rec}
	}
	return AppendRecordsWith(dst, "recs", recs, map[string]any{
		"ph": int64(m.Phase), "k": m.Key, "bt": int64(m.Ballot.Time), "bw": int64(m.Ballot.Writer),
	})
}

// ParseCASMsg decodes what AppendCASMsg encodes.
func ParseCASMsg(x []byte) (CASMsg, error) {
	d, err := decodeDict(x)
	if err != nil {
		return CASMsg{}, err
	}
	ph, _ := d["ph"].(int64)
	k, _ := d["k"].([]byte)
	bt, ok1 := d["bt"].(int64)
	bw, ok2 := d["bw"].(int64)
	if (ph != int64(PhasePrepare) && ph != int64(PhaseAccept)) || len(k) == 0 || !ok1 || !ok2 {
		return CASMsg{}, fmt.Errorf("%w: a conditional write needs ph, k, bt and bw", ErrBadPayload)
	}
	m := CASMsg{Phase: uint8(ph), Key: string(k), Ballot: store.Version{Time: uint64(bt), Writer: uint64(bw)}}
	if m.Ballot.IsZero() {
		return CASMsg{}, fmt.Errorf("%w: a conditional write without a ballot", ErrBadPayload)
	}
	recs, err := RecordsOf(d, "recs")
	if err != nil {
		return CASMsg{}, err
	}
	switch {
	case m.Phase == PhaseAccept && len(recs) != 1:
		return CASMsg{}, fmt.Errorf("%w: an accept carries one record", ErrBadPayload)
	case m.Phase == PhasePrepare && len(recs) != 0:
		return CASMsg{}, fmt.Errorf("%w: a prepare carries no record", ErrBadPayload)
	case len(recs) == 1:
		m.Rec = &recs[0]
	}
	return m, nil
}

// AppendCASAnswer appends the wire form of a.
func AppendCASAnswer(dst []byte, a CASAnswer) []byte {
	var recs []store.Record
	if a.Rec != nil {
		recs = []store.Record{*a.Rec}
	}
	ok := int64(0)
	if a.OK {
		ok = 1
	}
	return AppendRecordsWith(dst, "recs", recs, map[string]any{
		"ok": ok, "st": int64(a.Seen.Time), "sw": int64(a.Seen.Writer),
	})
}

// ParseCASAnswer decodes what AppendCASAnswer encodes, the answer to a
// message about key.
func ParseCASAnswer(x []byte, key string) (CASAnswer, error) {
	d, err := decodeDict(x)
	if err != nil {
		return CASAnswer{}, err
	}
	ok, ok1 := d["ok"].(int64)
	st, ok2 := d["st"].(int64)
	sw, ok3 := d["sw"].(int64)
	if !ok1 || !ok2 || !ok3 || ok < 0 || ok > 1 {
		return CASAnswer{}, fmt.Errorf("%w: a conditional write's answer needs ok, st and sw", ErrBadPayload)
	}
	a := CASAnswer{OK: ok == 1, Seen: store.Version{Time: uint64(st), Writer: uint64(sw)}}
	recs, err := RecordsOf(d, "recs")
	if err != nil {
		return CASAnswer{}, err
	}
	switch {
	case len(recs) > 1:
		return CASAnswer{}, fmt.Errorf("%w: an answer carries at most one record", ErrBadPayload)
	case len(recs) == 1 && recs[0].Key != key:
		return CASAnswer{}, fmt.Errorf("%w: an answer about another key", ErrBadPayload)
	case len(recs) == 1:
		a.Rec = &recs[0]
	}
	return a, nil
}
