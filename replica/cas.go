package replica

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/dhtkit/dhtkit/store"
)

// Conditional writes (put --if-version V, --if-absent) are decided at the
// key's replica set by single-decree consensus per key: CASPaxos (Denis
// Rystsov, "CASPaxos: Replicated State Machines without logs", 2018).
// A plain per-replica check is not enough: two writers that each pass it
// on different replicas both write, and the loser's write survives on
// one replica and may later win by version (a lost update).
//
// The register of a key is the record its replicas store, and its ballot
// is the record's version (an HLC reading, store.Version), so what an
// acceptor has accepted is durable in its store like any write, and
// repair, hand-over and reads see it as the key's newest version.
//
//  1. Prepare: the proposer (the node coordinating the write) picks a
//     ballot b, a new version from its clock, and asks every member of
//     the key's replica set to promise it. A member promises when b is
//     newer than every ballot it promised for the key and than the
//     version it holds, and answers with what it holds.
//  2. With promises from a write quorum (a majority of the configured
//     replicas, Quorum.Need), the proposer takes the newest record among
//     them as the key's current state and applies the change: the
//     condition (Cond) holds, and the new record is the value under
//     version b; or it fails, and the error names the current version.
//  3. Accept: it asks every member to store the new record. A member
//     stores it unless it promised a newer ballot meanwhile or holds a
//     newer version. A write quorum of acceptances acknowledges the
//     write.
//
// What holds (the README's "Conditional writes" says it to users): among
// conditional writes of a key, each acknowledged one was decided against
// the newest acknowledged state, so no acknowledged conditional write is
// lost or applied to a stale state, with any number of concurrent writers
// and while at most a minority of the replica set is down. A conditional
// write that failed before its accept phase (ErrConflict, ErrContended,
// too few replicas) wrote nothing. One whose accept phase reached some
// members but fewer than the quorum (ErrIndeterminate) may still take
// effect: a later proposer whose majority includes such a member adopts
// the newest record it sees, as Paxos completes a half-made decision.
// Plain puts and deletes of the same key are blind writes ordered by
// version: they may overwrite a conditional write, and a conditional
// write decided before a plain put reached a majority may overwrite it.
//
// Promises live in memory (Acceptor). A node that restarts has lost
// them, so its acceptor refuses every ballot older than its start plus
// store.DefaultMaxSkew: no promise it made before can have been newer
// (replicas refuse versions further ahead of their clocks), so none is
// broken; a restarted member sits out conditional writes for that long,
// and the other members of the majority decide meanwhile.

// Errors of conditional writes.
var (
	// ErrConflict: the condition did not hold. The error (a
	// *ConflictError) names the key's current version.
	ErrConflict = errors.New("condition failed")
	// ErrContended: a member promised or holds a newer ballot (another
	// conditional write, or a plain write of the key, ran at the same
	// time). Nothing was written; try again.
	ErrContended = errors.New("another write of the key ran at the same time; nothing was written, try again")
	// ErrIndeterminate: the accept phase reached fewer members than the
	// quorum. The write may or may not take effect.
	ErrIndeterminate = errors.New("the write reached fewer replicas than its quorum and may or may not take effect: read the key to know")
	// ErrSuperseded: settling an indeterminate write (RecoverChange)
	// found a later write of the key, which may or may not have seen it.
	// It comes wrapped with ErrIndeterminate.
	ErrSuperseded = errors.New("a later write of the key came after it")
)

// Cond is the condition of a conditional write. It is about one record:
// a key's value, where a key holding many values keeps each under its own
// record key (store.ValueKey), so each value is a register of its own and
// a condition names its value by the key it is checked under.
type Cond struct {
	// IfAbsent: the key holds no live value (never written, deleted or
	// expired).
	IfAbsent bool
	// IfVersion, when not zero: the key's live value has this version.
	IfVersion store.Version
}

// IsZero reports whether c sets no condition.
func (c Cond) IsZero() bool { return !c.IfAbsent && c.IfVersion.IsZero() }

// ConflictError is a condition that failed: it names the key's current
// version (zero and Absent when it holds no live value).
type ConflictError struct {
	Key     string
	Cond    Cond
	Current store.Version
	Absent  bool
}

func (e *ConflictError) Error() string {
	switch {
	case e.Cond.IfAbsent:
		return fmt.Sprintf("%v: the key holds a value, version %v (want none, --if-absent)", ErrConflict, e.Current)
	case e.Absent:
		return fmt.Sprintf("%v: the key holds no value (want version %v, --if-version)", ErrConflict, e.Cond.IfVersion)
	}
	return fmt.Sprintf("%v: the current version is %v (want %v, --if-version)", ErrConflict, e.Current, e.Cond.IfVersion)
}

func (e *ConflictError) Unwrap() error { return ErrConflict }

// live reports whether r is a live value at now.
func live(r *store.Record, now time.Time) bool {
	return r != nil && !r.Deleted && (r.Expires.IsZero() || r.Expires.After(now))
}

// Check decides c against cur, the key's current record (nil: none), at
// now: nil when the write may go ahead, else a *ConflictError.
func (c Cond) Check(key string, cur *store.Record, now time.Time) error {
	l := live(cur, now)
	switch {
	case c.IfAbsent && !l:
		return nil
	case c.IfAbsent:
		return &ConflictError{Key: key, Cond: c, Current: cur.Version}
	case c.IfVersion.IsZero():
		return nil
	case !l:
		return &ConflictError{Key: key, Cond: c, Absent: true}
	case cur.Version != c.IfVersion:
		return &ConflictError{Key: key, Cond: c, Current: cur.Version}
	}
	return nil
}

// The phases of a conditional write's messages.
const (
	PhasePrepare uint8 = 1
	PhaseAccept  uint8 = 2
)

// CASMsg is what a proposer sends a member: a prepare of Key at Ballot,
// or the accept of Rec (whose version is the ballot).
type CASMsg struct {
	Phase  uint8
	Key    string
	Ballot store.Version
	Rec    *store.Record // PhaseAccept
}

// CASAnswer is a member's answer. OK: it promised (Rec: what it holds,
// nil for nothing) or stored the record. Not OK: Seen is the ballot or
// version that beat the proposer's.
type CASAnswer struct {
	OK   bool
	Rec  *store.Record
	Seen store.Version
}

// MaxPromises bounds the keys an Acceptor keeps a promise for.
const MaxPromises = 1 << 16

// Acceptor is a node's acceptor side of conditional writes: the ballots
// it promised, per key. What it accepted is its store's record.
type Acceptor struct {
	promised map[string]store.Version
	// floor: every ballot below it is refused. It starts at the start
	// time plus store.DefaultMaxSkew (promises made before a restart are
	// lost) and rises to the promises forgotten to keep the map bounded.
	floor store.Version
}

// NewAcceptor returns the acceptor of a node that starts at now;
// restarted says it may have promised ballots before (its store holds
// records from an earlier run): it then refuses every ballot older than
// now plus store.DefaultMaxSkew. A node that starts with an empty store
// has accepted nothing, and one without a data directory starts under a
// new id, a new acceptor.
func NewAcceptor(now time.Time, restarted bool) *Acceptor {
	a := &Acceptor{promised: map[string]store.Version{}}
	if restarted {
		a.floor.Time = uint64(now.Add(store.DefaultMaxSkew).UnixMilli()) << 16
	}
	return a
}

// Handle answers m with the record st holds of m.Key, storing the record
// of an accept it takes. An error is the store's: the member failed.
func (a *Acceptor) Handle(st store.Store, m CASMsg) (CASAnswer, error) {
	cur, ok, err := st.Get(m.Key)
	if err != nil {
		return CASAnswer{}, err
	}
	var held store.Version
	if ok {
		held = cur.Version
	}
	promised := a.promised[m.Key]
	beaten := func() CASAnswer {
		seen := a.floor
		if promised.Newer(seen) {
			seen = promised
		}
		if held.Newer(seen) {
			seen = held
		}
		return CASAnswer{Seen: seen}
	}
	switch m.Phase {
	case PhasePrepare:
		if m.Ballot.Compare(a.floor) < 0 || !m.Ballot.Newer(promised) || !m.Ballot.Newer(held) {
			return beaten(), nil
		}
		a.promise(m.Key, m.Ballot)
		ans := CASAnswer{OK: true}
		if ok {
			ans.Rec = &cur
		}
		return ans, nil
	case PhaseAccept:
		r := m.Rec
		if r == nil || r.Key != m.Key || r.Version != m.Ballot {
			return CASAnswer{}, fmt.Errorf("%w: an accept's record must be of its key, under its ballot", ErrBadPayload)
		}
		if ok && held == m.Ballot {
			return CASAnswer{OK: true}, nil // a retry of an accept it took
		}
		if m.Ballot.Compare(a.floor) < 0 || m.Ballot.Compare(promised) < 0 || !m.Ballot.Newer(held) {
			return beaten(), nil
		}
		applied, err := st.Put(*r)
		if err != nil {
			return CASAnswer{}, err
		}
		if !applied {
			return beaten(), nil
		}
		a.promise(m.Key, m.Ballot)
		return CASAnswer{OK: true}, nil
	}
	return CASAnswer{}, fmt.Errorf("%w: conditional write phase %d", ErrBadPayload, m.Phase)
}

// promise notes b for key, forgetting every promise (and raising the
// floor past them) when the map is full: refusing more is always safe.
func (a *Acceptor) promise(key string, b store.Version) {
	if _, ok := a.promised[key]; !ok && len(a.promised) >= MaxPromises {
		for _, v := range a.promised {
			if v.Newer(a.floor) {
				a.floor = v
			}
		}
		clear(a.promised)
	}
	a.promised[key] = b
}

// Promises is how many keys hold a promise.
func (a *Acceptor) Promises() int { return len(a.promised) }

// A Change is what a round of CASPaxos applies to the key's current
// record (nil: none) at now: the record to accept (its key and version
// are set to the round's), or an error that ends the round before
// anything is written.
type Change func(cur *store.Record, now time.Time) (store.Record, error)

// CondChange is the change of a conditional write: rec, if cond holds.
func CondChange(key string, cond Cond, rec store.Record) Change {
	return func(cur *store.Record, now time.Time) (store.Record, error) {
		if err := cond.Check(key, cur, now); err != nil {
			return store.Record{}, err
		}
		return rec, nil
	}
}

// RecoverChange settles a conditional write that ended ErrIndeterminate
// (ErrIndeterminate, with Wrote): a new round's majority makes the key's state final, so
// if the newest record is the write's own (version was) it took effect
// and is accepted again (the write succeeds, under the new ballot); if
// the condition still holds, nothing took its place and it is written
// now; otherwise another write came after it, and whether that write
// saw it cannot be told: ErrIndeterminate again.
//
// was lists every ballot the write was accepted under by some member (a
// recovery round that is itself indeterminate adds its own).
func RecoverChange(key string, was []store.Version, cond Cond, rec store.Record) Change {
	return func(cur *store.Record, now time.Time) (store.Record, error) {
		switch {
		case cur != nil && slices.Contains(was, cur.Version):
			return *cur, nil
		case cond.Check(key, cur, now) == nil:
			return rec, nil
		}
		return store.Record{}, fmt.Errorf("%w: %w", ErrIndeterminate, ErrSuperseded)
	}
}

// Proposer is one round of a conditional write, sans I/O: the engine
// sends Prepare to every member of the key's replica set, reports each
// answer or failure, sends the accept Next hands out to every member,
// reports those, and finishes when Done says so.
type Proposer struct {
	Key    string
	Ballot store.Version
	Change Change
	Need   int // members that must promise, then accept (a write quorum)
	// Rec is the record accepted, once the prepare phase applied the
	// change.
	Rec store.Record

	members    int
	phase      uint8
	answered   []bool
	ok, failed int
	nacks      int // failures that were refusals
	cur        *store.Record
	seen       store.Version
	now        time.Time
	err        error
	done       bool
	accept     bool // the accept phase is ready to send
}

// NewProposer starts a round of change to key at ballot, with members
// the size of the replica set and need its write quorum.
func NewProposer(key string, ballot store.Version, change Change, members, need int) *Proposer {
	return &Proposer{Key: key, Ballot: ballot, Change: change, Need: need, members: members, phase: PhasePrepare, answered: make([]bool, members)}
}

// Prepare is the message of the first phase.
func (p *Proposer) Prepare() CASMsg {
	return CASMsg{Phase: PhasePrepare, Key: p.Key, Ballot: p.Ballot}
}

// Phase is the phase whose answers the proposer waits for.
func (p *Proposer) Phase() uint8 { return p.phase }

// Answer reports member i's answer to the current phase's message, at
// now. An answer to another phase, or a second one, is ignored by the
// caller passing the phase it was for.
func (p *Proposer) Answer(i int, phase uint8, a CASAnswer, now time.Time) {
	if p.done || phase != p.phase || i < 0 || i >= p.members || p.answered[i] {
		return
	}
	p.answered[i] = true
	p.now = now
	if !a.OK {
		p.failed++
		p.nacks++
		if a.Seen.Newer(p.seen) {
			p.seen = a.Seen
		}
		p.decide()
		return
	}
	p.ok++
	if phase == PhasePrepare && a.Rec != nil && (p.cur == nil || a.Rec.Version.Newer(p.cur.Version)) {
		r := *a.Rec
		p.cur = &r
	}
	p.decide()
}

// Fail reports that member i did not answer the current phase (or is
// down).
func (p *Proposer) Fail(i int, phase uint8) {
	if p.done || phase != p.phase || i < 0 || i >= p.members || p.answered[i] {
		return
	}
	p.answered[i] = true
	p.failed++
	p.decide()
}

func (p *Proposer) decide() {
	switch {
	case p.ok >= p.Need && p.phase == PhasePrepare:
		rec, err := p.Change(p.cur, p.now)
		if err != nil {
			p.finish(err)
			return
		}
		rec.Key, rec.Version = p.Key, p.Ballot
		p.Rec = rec
		p.phase, p.ok, p.failed, p.nacks, p.accept = PhaseAccept, 0, 0, 0, true
		clear(p.answered)
	case p.ok >= p.Need:
		p.finish(nil)
	case p.members-p.failed < p.Need && p.phase == PhasePrepare:
		if p.seen.IsZero() {
			p.finish(fmt.Errorf("%w: %d of the %d needed promised", ErrQuorum, p.ok, p.Need))
		} else {
			p.finish(fmt.Errorf("%w (ballot %v beaten by %v)", ErrContended, p.Ballot, p.seen))
		}
	case p.members-p.failed < p.Need && p.nacks == p.members:
		// Every member refused the accept: none stored it.
		p.finish(fmt.Errorf("%w (ballot %v beaten by %v)", ErrContended, p.Ballot, p.seen))
	case p.members-p.failed < p.Need && p.ok+p.failed == p.members:
		// A member that did not answer may have stored it, and one that
		// did may hand it on: a later proposer may adopt it.
		p.finish(fmt.Errorf("%w: %d of the %d needed accepted", ErrIndeterminate, p.ok, p.Need))
	}
}

func (p *Proposer) finish(err error) { p.done, p.err = true, err }

// Next returns the accept message once the prepare phase succeeded, once;
// ok is false otherwise.
func (p *Proposer) Next() (CASMsg, bool) {
	if !p.accept || p.done {
		return CASMsg{}, false
	}
	p.accept = false
	r := p.Rec
	return CASMsg{Phase: PhaseAccept, Key: p.Key, Ballot: p.Ballot, Rec: &r}, true
}

// Wrote reports whether the round reached its accept phase: a round
// that ends with an error before it wrote nothing.
func (p *Proposer) Wrote() bool { return p.phase == PhaseAccept }

// Done reports whether the write is decided, and its error: nil when a
// write quorum stored it (under version Ballot).
func (p *Proposer) Done() (bool, error) { return p.done, p.err }

// Seen is the newest ballot or version a member answered that beat this
// proposer's: a retry must pick a newer ballot.
func (p *Proposer) Seen() store.Version { return p.seen }

// Current is the key's state the prepare phase found (nil: none).
func (p *Proposer) Current() *store.Record { return p.cur }
