package replica

import (
	"time"

	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/store"
)

// CASLink is what a CASRound asks of the operation that carries it,
// given once to Start: the round keeps it for the answers. Only the
// transport and the result differ between engines.
type CASLink interface {
	// Send sends the dk_cas payload x to member i and returns the handle
	// its answer will come back under, or false when it could not.
	Send(now time.Time, i int, x []byte) (handle uint64, ok bool)
	// Done is called once, when the proposer decides: with the
	// acknowledgements to report (its write quorum on success) and the
	// outcome.
	Done(now time.Time, acks int, err error)
}

// LocalCAS is this node's acceptor *a answering m over st; *a is made on
// first use (NewAcceptor(now, restarted)), since a node that never runs
// a conditional write needs none. An accepted record goes to changed
// (the engine's listeners), as any write does.
func LocalCAS(a **Acceptor, now time.Time, restarted bool, st store.Store, m CASMsg, changed func(time.Time, store.Record)) (CASAnswer, error) {
	if *a == nil {
		*a = NewAcceptor(now, restarted)
	}
	ans, err := (*a).Handle(st, m)
	if err == nil && ans.OK && m.Phase == PhaseAccept {
		changed(now, *m.Rec)
	}
	return ans, err
}

// CASRound carries one Proposer over a key's replica set, sans I/O: the
// prepare to every member, the accept once the prepare is through, the
// answers matched to the members that owe them. Both engines run their
// conditional writes through it; each only picks the replica set (and
// which members are down) and carries dk_cas.
type CASRound struct {
	P       *Proposer
	Members []Member
	link    CASLink
	local   func(time.Time, CASMsg) (CASAnswer, error)
	observe func(time.Time, store.Version) error
	decided bool
	down    []bool
	handle  []uint64
	waiting []bool
	buf     []byte
}

// NewCASRound starts a round of change to key at ballot under quorum
// rule q, over members (down[i]: known but unreachable). It refuses, as a
// put does, when too few members are up to reach the write quorum.
func NewCASRound(q Quorum, members []Member, down []bool, key string, ballot store.Version, change Change) (*CASRound, error) {
	need := q.Need(true, len(members), len(members) == 1 && members[0].Self)
	up := 0
	for _, d := range down {
		if !d {
			up++
		}
	}
	if err := q.Refuse(up, need); err != nil {
		return nil, err
	}
	return &CASRound{
		P: NewProposer(key, ballot, change, len(members), need), Members: members, down: down,
		handle: make([]uint64, len(members)), waiting: make([]bool, len(members)),
	}, nil
}

// Start sends the prepare over l, which carries the rest of the round.
// local is this node's acceptor answering (LocalCAS); observe tells the
// engine's clock of a version an acceptor saw, so that its next ballot
// beats it.
func (r *CASRound) Start(now time.Time, l CASLink, local func(time.Time, CASMsg) (CASAnswer, error), observe func(time.Time, store.Version) error) {
	r.link, r.local, r.observe = l, local, observe
	r.send(now, r.P.Prepare())
	r.advance(now)
}

// send sends m to every member that is not down; this node answers its
// own at once.
func (r *CASRound) send(now time.Time, m CASMsg) {
	for i, mb := range r.Members {
		if r.down[i] {
			r.P.Fail(i, m.Phase)
			continue
		}
		if mb.Self {
			ans, err := r.local(now, m)
			if err != nil {
				r.P.Fail(i, m.Phase)
			} else {
				r.P.Answer(i, m.Phase, ans, now)
			}
			continue
		}
		r.buf = AppendCASMsg(r.buf[:0], m)
		h, ok := r.link.Send(now, i, r.buf)
		if !ok {
			r.P.Fail(i, m.Phase)
			continue
		}
		r.handle[i], r.waiting[i] = h, true
	}
}

// advance sends the accept once the prepare phase is through, and calls
// Done once the proposer decides.
func (r *CASRound) advance(now time.Time) {
	for range 2 { // twice: a replica set of this node alone decides at once
		if m, ok := r.P.Next(); ok {
			r.send(now, m)
		}
	}
	if done, err := r.P.Done(); done && !r.decided {
		acks := 0
		if err == nil {
			acks = r.P.Need
		}
		r.decided = true
		r.link.Done(now, acks, err)
	}
}

// find returns the member that owes the answer under handle h from node
// from, or -1.
func (r *CASRound) find(from id.ID, h uint64) int {
	for i, mb := range r.Members {
		if !mb.Self && r.waiting[i] && mb.Node.ID == from && r.handle[i] == h {
			return i
		}
	}
	return -1
}

// Answer takes node from's dk_cas answer x under handle h, at now. It
// returns the error of an answer that does not parse (counted as the
// member's failure).
func (r *CASRound) Answer(now time.Time, from id.ID, h uint64, x []byte) (bad error) {
	i := r.find(from, h)
	if i < 0 {
		return nil
	}
	r.waiting[i] = false
	phase := r.P.Phase()
	ans, bad := ParseCASAnswer(x, r.P.Key)
	if bad != nil {
		r.P.Fail(i, phase)
	} else {
		if !ans.Seen.IsZero() {
			_ = r.observe(now, ans.Seen) // the next ballot beats it
		}
		r.P.Answer(i, phase, ans, now)
	}
	r.advance(now)
	return bad
}

// Fail takes the failure of the query to node from under handle h.
func (r *CASRound) Fail(now time.Time, from id.ID, h uint64) {
	if i := r.find(from, h); i >= 0 {
		r.waiting[i] = false
		r.P.Fail(i, r.P.Phase())
		r.advance(now)
	}
}
