package replica

import (
	"errors"
	"slices"
	"time"

	"github.com/dhtkit/dhtkit/krpc"
	"github.com/dhtkit/dhtkit/store"
)

// Holder is one replica's answer to a get.
type Holder struct {
	Node    krpc.NodeInfo
	Self    bool // this node
	Has     bool
	Version store.Version
	Deleted bool
	Err     error // it did not answer, or refused
}

// Member is one node of a key's replica set as an Op sees it.
type Member struct {
	Node  krpc.NodeInfo
	Self  bool
	Done  bool          // answered, failed or refused: counted
	Err   error         // why it failed or refused
	Rec   *store.Record // a get: what it holds (nil: nothing)
	Acked bool          // a put: it holds the write, or something newer
	// Skipped: a lean get decided without asking it (Op.Lean).
	Skipped bool

	asked bool // Ask handed it out
}

// Op is a quorum put or get past its lookup, sans I/O: the engine sends
// the write or read to each member, reports each member's fate (Ack,
// Answer, Fail), and asks Decide after each; Decide says once when the
// operation is decided and how. Both engines count by it, so the quorum
// rule, the partial read and read repair are decided in one place.
type Op struct {
	Put     bool
	Key     string
	Members []Member
	Need    int // acknowledgements (put) or answers (get) the quorum needs
	// AllowPartial lets a get that fewer than Need members answered
	// return the best it heard, marked Partial; without it such a get is
	// decided ShortRead (the quorum rule, docs/architecture.md).
	AllowPartial bool
	// Lean makes a get ask only as many members as its read quorum
	// needs, itself first (Ask): the others only when one fails, or when
	// the answers disagree, to repair what is behind. That is as honest
	// as asking all: any Read answers overlap every write Write members
	// acknowledged (Write + Read > Replicas), so their newest is at least
	// the newest acknowledged write.
	Lean bool

	acks, answered, returned int
	best                     *store.Record
	decided                  bool
	held                     store.Version // a put: the newest version a member kept over it (Held)
}

// Kind says how an operation was decided.
type Kind uint8

const (
	Written  Kind = iota // a put reached its write quorum
	Short                // a put can no longer reach it: Err says how short
	Found                // a get found a live value: Outcome.Record
	NotFound             // a get found none, or a tombstone (Outcome.Version)
	NoAnswer             // no replica answered a get: FirstErr says why
	// ShortRead: fewer members than the read quorum answered a get that
	// did not allow a partial answer. Nothing it heard is returned: a
	// value or a not-found from a minority of the replica set may be
	// older than an acknowledged write.
	ShortRead
)

// Outcome is a decided Op.
type Outcome struct {
	Kind     Kind
	Acks     int           // a put: members that hold it
	Version  store.Version // a put's version; a get's newest (tombstone too)
	Record   *store.Record // Found: the newest value
	Holders  []Holder      // a get: what each member answered
	Partial  bool          // a get: fewer than the read quorum answered
	FirstErr error         // the first member's error, to say why
	Answered int           // a get: members that answered
}

// Ack records that member i holds the write (or something newer).
func (o *Op) Ack(i int) {
	m := &o.Members[i]
	if m.Done {
		return
	}
	m.Done, m.Acked = true, true
	o.returned++
	o.acks++
}

// Answer records member i's answer to a get: rec is what it holds, nil
// for nothing (a value expired by now counts as nothing).
func (o *Op) Answer(i int, rec *store.Record) {
	m := &o.Members[i]
	if m.Done {
		return
	}
	m.Done = true
	o.returned++
	o.answered++
	if rec != nil {
		m.Rec = rec
		if o.best == nil || rec.Version.Newer(o.best.Version) {
			o.best = rec
		}
	}
}

// Committed is the callback of a write queued to st, this node's own
// store (Commits.Queue), as member i: the write counts once committed,
// applied or refused for an equal or newer version (either way this
// replica holds the write or something that beats it; what it holds is
// then noted, Held), and then next runs.
func (o *Op) Committed(i int, st store.Store, next func(now time.Time)) Done {
	return func(now time.Time, errs []error, applied []bool) {
		switch {
		case errs[0] != nil:
			o.Fail(i, errs[0])
		case !applied[0]:
			o.heldLocal(st)
			o.Ack(i)
		default:
			o.Ack(i)
		}
		next(now)
	}
}

// AnswerLocal answers a get as member i, this node, from its own store:
// what st holds of the key (with vals, of each of its values), a value
// expired by now counting as nothing.
func (o *Op) AnswerLocal(i int, st store.Store, vals *Values, now time.Time) {
	if vals != nil {
		if best, err := vals.Local(i, st, o.Key, now); err != nil {
			o.Fail(i, err)
		} else {
			o.Answer(i, best)
		}
		return
	}
	rec, ok, err := st.Get(o.Key)
	switch {
	case err != nil:
		o.Fail(i, err)
	case ok && !Expired(&rec, now):
		o.Answer(i, &rec)
	default:
		o.Answer(i, nil)
	}
}

// errWriteRefused: a replica answered a put's dk_store without
// acknowledging the write.
var errWriteRefused = errors.New("replica refused the write")

// errSkipped is the fate of a lean get's member it did not need to ask.
var errSkipped = errors.New("not asked: the read quorum agreed without it")

// Stored takes member i's answer x to a put's dk_store: the write
// acknowledged (with the newer version the member kept over it, if it
// says so: Held), or refused.
func (o *Op) Stored(i int, x []byte) {
	switch string(x) { // the answers to a put, without decoding them
	case ackOne:
		o.Ack(i)
		return
	case refuseOne:
		o.Fail(i, errWriteRefused)
		return
	}
	d, err := decodeDict(x)
	if err != nil {
		o.Fail(i, err)
		return
	}
	if ok, _ := d["ok"].([]any); len(ok) == 1 && ok[0] == int64(1) {
		for _, h := range heldOf(d) {
			if h.I == 0 {
				o.Held(h.Version)
			}
		}
		o.Ack(i)
	} else {
		o.Fail(i, errWriteRefused)
	}
}

// Fetched takes member i's answer x to a get's dk_fetch: the record of
// the key (with vals, of each of its values), less what expired by now or
// what observe refuses (a version too far ahead of our clock). An answer
// that does not parse fails member i, and Fetched returns its error.
func (o *Op) Fetched(i int, x []byte, vals *Values, now time.Time, observe func(store.Version) error) error {
	if vals != nil {
		recs, ents, err := ParseValues(x, o.Key)
		if err != nil {
			o.Fail(i, err)
			return err
		}
		recs = slices.DeleteFunc(recs, func(r store.Record) bool {
			return Expired(&r, now) || observe(r.Version) != nil
		})
		o.Answer(i, vals.Answer(i, recs, ents))
		return nil
	}
	recs, err := ParseRecords(x)
	if err != nil {
		o.Fail(i, err)
		return err
	}
	var rec *store.Record
	if len(recs) > 0 {
		rec = &recs[0]
	}
	o.FetchedRecord(i, rec, now, observe)
	return nil
}

// FetchedRecord takes member i's answer to a get of one key, rec (nil:
// not found), as Fetched does the record of an answer: a record of
// another key, expired by now or refused by observe is none.
func (o *Op) FetchedRecord(i int, rec *store.Record, now time.Time, observe func(store.Version) error) {
	if rec != nil && rec.Key == o.Key && !Expired(rec, now) && observe(rec.Version) == nil {
		o.Answer(i, rec)
	} else {
		o.Answer(i, nil)
	}
}

// Ask appends to dst the members a lean get should ask now and counts
// them asked: this node first, then the nearest, until the members
// answered and in flight make the read quorum; every member still
// unasked once those that answered disagree, or when none remain to
// make the quorum.
func (o *Op) Ask(dst []int) []int {
	if o.decided {
		return dst
	}
	want, have := o.want(), o.answered+o.inFlight()
	for pass := range 2 { // this node, then the others
		for i := range o.Members {
			m := &o.Members[i]
			if have >= want {
				return dst
			}
			if m.asked || m.Done || m.Self != (pass == 0) {
				continue
			}
			m.asked = true
			have++
			dst = append(dst, i)
		}
	}
	return dst
}

// want is how many answers a lean get wants: its read quorum, or every
// member once those that answered disagree.
func (o *Op) want() int {
	if o.answered >= o.Need && !o.agree() {
		return len(o.Members)
	}
	return o.Need
}

// Asked reports whether member i was asked (Ask), which a lean get's
// unasked members are not.
func (o *Op) Asked(i int) bool { return o.Members[i].asked || !o.Lean }

// inFlight counts the members asked that have not answered or failed.
func (o *Op) inFlight() int {
	n := 0
	for _, m := range o.Members {
		if m.asked && !m.Done {
			n++
		}
	}
	return n
}

// agree reports whether every member that answered holds the same
// version, or nothing.
func (o *Op) agree() bool {
	var first *store.Record
	seen := false
	for _, m := range o.Members {
		if !m.Done || m.Err != nil {
			continue
		}
		switch {
		case !seen:
			first, seen = m.Rec, true
		case (first == nil) != (m.Rec == nil), first != nil && first.Version != m.Rec.Version:
			return false
		}
	}
	return true
}

// Fail records that member i did not answer or refused, and why.
func (o *Op) Fail(i int, err error) {
	m := &o.Members[i]
	if m.Done {
		return
	}
	m.Done, m.Err = true, err
	o.returned++
}

// Decide returns the outcome once it is known, and true, exactly once: a
// put when its write quorum acknowledged or can no longer, a get when
// every member answered or failed.
func (o *Op) Decide(version store.Version) (Outcome, bool) {
	if o.decided {
		return Outcome{}, false
	}
	if o.Put {
		switch {
		case o.acks >= o.Need && o.Need > 0:
			o.decided = true
			return Outcome{Kind: Written, Acks: o.acks, Version: version}, true
		case o.returned == len(o.Members):
			o.decided = true
			return Outcome{Kind: Short, Acks: o.acks, FirstErr: o.firstErr()}, true
		}
		return Outcome{}, false
	}
	if o.Lean {
		// Decided when nothing is in flight and Ask has no one to add.
		if o.inFlight() > 0 {
			return Outcome{}, false
		}
		unasked := 0
		for _, m := range o.Members {
			if !m.asked && !m.Done {
				unasked++
			}
		}
		if unasked > 0 && o.answered < o.want() {
			return Outcome{}, false
		}
		for i := range o.Members {
			if m := &o.Members[i]; !m.asked && !m.Done {
				m.Skipped = true
			}
		}
	} else if o.returned < len(o.Members) {
		return Outcome{}, false
	}
	o.decided = true
	out := Outcome{Partial: o.answered < o.Need, FirstErr: o.firstErr(), Answered: o.answered}
	out.Holders = make([]Holder, 0, len(o.Members))
	for _, m := range o.Members {
		h := Holder{Node: m.Node, Self: m.Self, Err: m.Err}
		if m.Skipped {
			h.Err = errSkipped
		}
		if m.Rec != nil {
			h.Has, h.Version, h.Deleted = true, m.Rec.Version, m.Rec.Deleted
		}
		out.Holders = append(out.Holders, h)
	}
	switch {
	case out.Partial && !o.AllowPartial:
		out.Kind = ShortRead
	case o.best != nil && !o.best.Deleted:
		rec := *o.best
		out.Kind, out.Record, out.Version = Found, &rec, rec.Version
	case o.answered == 0:
		out.Kind = NoAnswer
	default:
		out.Kind = NotFound
		if o.best != nil {
			out.Version = o.best.Version
		}
	}
	return out, true
}

// firstErr says why the operation fell short: a replica's refusal
// (store.ErrRefused: the owner rule) before any other error, since it is
// the answer, where a member that did not answer only failed to give one;
// else the first member's error.
func (o *Op) firstErr() error {
	var first error
	for _, m := range o.Members {
		if m.Err != nil && errors.Is(m.Err, store.ErrRefused) {
			return m.Err
		}
		if first == nil {
			first = m.Err
		}
	}
	return first
}

// Best is the newest record a get heard of, tombstones included.
func (o *Op) Best() *store.Record { return o.best }

// Stale returns the members a get should repair with Best: those that
// answered with an older version or nothing (read repair).
func (o *Op) Stale() []int {
	if o.best == nil {
		return nil
	}
	var out []int
	for i, m := range o.Members {
		if m.Err != nil || m.Skipped || m.Rec != nil && !o.best.Version.Newer(m.Rec.Version) {
			continue
		}
		out = append(out, i)
	}
	return out
}
