package kademlia

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/dhtkit/dhtkit/krpc"
	"github.com/dhtkit/dhtkit/replica"
	"github.com/dhtkit/dhtkit/store"
)

// KVCas is one round of a conditional write of Key, decided at its
// replica set by CASPaxos (replica/cas.go): the round's change applies
// to the newest record a write quorum holds, and a write quorum accepts
// the result. Change nil means replica.CondChange(Key, Cond, the record
// of Value with TTL). Result.Version is the version written; Err wraps
// replica.ErrConflict (a *replica.ConflictError naming the current
// version), ErrContended, ErrIndeterminate or ErrQuorum. The Chord
// engine runs it too. Result.Version is the round's ballot whatever the
// outcome: the version a write that ended ErrIndeterminate may have been
// accepted under (replica.RecoverChange settles it).
type KVCas struct {
	Key    string
	Value  []byte
	TTL    time.Duration // 0: Config.DefaultTTL
	Cond   replica.Cond
	Change replica.Change
}

func (KVCas) isOp() {}

// startCAS validates a KVCas and looks up the key's replicas.
func (e *Engine) startCAS(now time.Time, s *opState, op KVCas) {
	switch {
	case op.Key == "":
		e.finish(now, s, ErrNoKey)
		return
	case len(op.Key) > store.DefaultMaxKeySize:
		e.finish(now, s, fmt.Errorf("%w: the key is %d bytes, at most %d", store.ErrTooLarge, len(op.Key), store.DefaultMaxKeySize))
		return
	case len(op.Value) > MaxRecordValue:
		e.finish(now, s, fmt.Errorf("%w: %d bytes, at most %d", ErrTooLarge, len(op.Value), MaxRecordValue))
		return
	}
	if e.table.Len() == 0 {
		e.casReplicas(now, s, nil)
		return
	}
	e.startLookup(now, s, krpc.MethodGet, store.KeyTarget(op.Key), nil)
}

// casOp is a KVCas past its lookup: the proposer and the queries sent.
type casOp struct {
	s       *opState
	p       *replica.Proposer
	members []replica.Member
	sent    []sent
}

// casReplicas picks the replica set as a put does and sends the prepare.
func (e *Engine) casReplicas(now time.Time, s *opState, l *lookup) {
	o := s.op.(KVCas)
	members, sn := e.replicasFound(now, store.KeyTarget(o.Key), l, true)
	q := e.cfg.quorum()
	need := q.Need(true, len(members), len(members) == 1 && members[0].Self)
	up := 0
	for i := range sn {
		if !sn[i].down {
			up++
		}
	}
	if err := q.Refuse(up, need); err != nil {
		e.finish(now, s, err)
		return
	}
	change := o.Change
	if change == nil {
		ttl := o.TTL
		if ttl <= 0 {
			ttl = e.cfg.DefaultTTL
		}
		change = replica.CondChange(o.Key, o.Cond, store.Record{Value: o.Value, Expires: now.Add(ttl)})
	}
	op := &casOp{s: s, members: members, sent: sn}
	op.p = replica.NewProposer(o.Key, e.clock.Now(now), change, len(members), need)
	s.kv = op
	s.result.Version = op.p.Ballot
	op.send(now, e, op.p.Prepare())
	op.advance(now, e)
}

// send sends m to every member that is not down; this node answers its
// own at once.
func (op *casOp) send(now time.Time, e *Engine, m replica.CASMsg) {
	for i, r := range op.members {
		sn := &op.sent[i]
		if sn.down {
			op.p.Fail(i, m.Phase)
			continue
		}
		if r.Self {
			ans, err := e.casLocal(now, m)
			if err != nil {
				op.p.Fail(i, m.Phase)
			} else {
				op.p.Answer(i, m.Phase, ans, now)
			}
			continue
		}
		q := e.newQuery(krpc.MethodCAS)
		q.A.Has |= krpc.HasX
		if sn.token != nil {
			q.A.Has |= krpc.HasToken
			q.A.Token = sn.token
		}
		e.xbuf = replica.AppendCASMsg(e.xbuf[:0], m)
		q.A.X = e.xbuf
		tid, ok := e.sendQueryTID(now, r.Node.Addr, r.Node.ID, op.s.id, forOp)
		if !ok {
			op.p.Fail(i, m.Phase)
			continue
		}
		sn.tid, sn.waiting = tid, 1
	}
}

// casLocal is this node's acceptor answering m.
func (e *Engine) casLocal(now time.Time, m replica.CASMsg) (replica.CASAnswer, error) {
	if e.acceptor == nil {
		e.acceptor = replica.NewAcceptor(now, e.restarted)
	}
	ans, err := e.acceptor.Handle(e.kvStore(), m)
	if err == nil && ans.OK && m.Phase == replica.PhaseAccept {
		e.changed(now, *m.Rec)
	}
	return ans, err
}

// advance sends the accept once the prepare phase is through, and
// finishes the operation once the proposer decides.
func (op *casOp) advance(now time.Time, e *Engine) {
	if m, ok := op.p.Next(); ok {
		op.send(now, e, m)
	}
	if m, ok := op.p.Next(); ok { // decided at once by this node alone
		op.send(now, e, m)
	}
	done, err := op.p.Done()
	if !done {
		return
	}
	if err == nil {
		op.s.result.Acks = op.p.Need
	}
	e.finish(now, op.s, err)
}

func (op *casOp) find(p *pending) int {
	for i, r := range op.members {
		if !r.Self && r.Node.ID == p.nodeID && op.sent[i].tid == p.tid && op.sent[i].waiting > 0 {
			return i
		}
	}
	return -1
}

func (op *casOp) response(now time.Time, e *Engine, p *pending, m *krpc.Msg) {
	i := op.find(p)
	if i < 0 {
		return
	}
	op.sent[i].waiting = 0
	phase := op.p.Phase()
	ans, err := replica.ParseCASAnswer(m.R.X, op.p.Key)
	if err != nil {
		op.p.Fail(i, phase)
	} else {
		if !ans.Seen.IsZero() {
			_ = e.clock.Observe(now, ans.Seen) // the next ballot beats it
		}
		op.p.Answer(i, phase, ans, now)
	}
	op.advance(now, e)
}

func (op *casOp) failure(now time.Time, e *Engine, p *pending, err error) {
	i := op.find(p)
	if i < 0 {
		return
	}
	op.sent[i].waiting = 0
	op.p.Fail(i, op.p.Phase())
	op.advance(now, e)
}

// handleCAS answers dk_cas: this node's acceptor, for a source whose
// address is proven (a write).
func (e *Engine) handleCAS(now time.Time, from netip.AddrPort, q, r *krpc.Msg) bool {
	if !e.trusted(from, q) {
		e.replyError(now, from, q.T, krpc.CodeProtocol, "dk_cas: bad token")
		return false
	}
	m, err := replica.ParseCASMsg(q.A.X)
	if err == nil {
		err = e.clock.Observe(now, m.Ballot)
	}
	if err == nil && m.Rec != nil {
		if len(m.Rec.Value) > MaxRecordValue {
			err = ErrTooLarge
		}
		m.Rec.Source = e.writer(from, q, m.Rec)
	}
	if err != nil {
		e.replyError(now, from, q.T, krpc.CodeProtocol, "dk_cas: "+err.Error())
		return false
	}
	ans, err := e.casLocal(now, m)
	if err != nil {
		e.replyError(now, from, q.T, storeErrCode(err), "dk_cas: "+err.Error())
		return false
	}
	r.R.Has |= krpc.HasX
	e.xbuf = replica.AppendCASAnswer(e.xbuf[:0], ans)
	r.R.X = e.xbuf
	return true
}
