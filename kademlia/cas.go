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

// Check refuses a KVCas every replica would refuse, before any round
// trip.
func (o KVCas) Check() error {
	switch {
	case o.Key == "":
		return ErrNoKey
	case len(o.Key) > store.DefaultMaxKeySize:
		return fmt.Errorf("%w: the key is %d bytes, at most %d", store.ErrTooLarge, len(o.Key), store.DefaultMaxKeySize)
	case len(o.Value) > MaxRecordValue:
		return fmt.Errorf("%w: %d bytes, at most %d", ErrTooLarge, len(o.Value), MaxRecordValue)
	}
	return nil
}

// ChangeAt is the round's change: Change, or the record of Value with
// TTL (defaultTTL when 0) from now under Cond.
func (o KVCas) ChangeAt(now time.Time, defaultTTL time.Duration) replica.Change {
	if o.Change != nil {
		return o.Change
	}
	ttl := o.TTL
	if ttl <= 0 {
		ttl = defaultTTL
	}
	return replica.CondChange(o.Key, o.Cond, store.Record{Value: o.Value, Expires: now.Add(ttl)})
}

// startCAS validates a KVCas and looks up the key's replicas.
func (e *Engine) startCAS(now time.Time, s *opState, op KVCas) {
	if err := op.Check(); err != nil {
		e.finish(now, s, err)
		return
	}
	if e.table.Len() == 0 {
		e.casReplicas(now, s, nil)
		return
	}
	e.startLookup(now, s, krpc.MethodGet, store.KeyTarget(op.Key), nil)
}

// casOp is a KVCas past its lookup: the replication layer's round
// (replica.CASRound) and the lookup's tokens of its members.
type casOp struct {
	e    *Engine
	s    *opState
	r    *replica.CASRound
	sent []sent
}

// casReplicas picks the replica set as a put does and sends the prepare.
func (e *Engine) casReplicas(now time.Time, s *opState, l *lookup) {
	o := s.op.(KVCas)
	members, sn := e.replicasFound(now, store.KeyTarget(o.Key), l, true)
	down := make([]bool, len(sn))
	for i := range sn {
		down[i] = sn[i].down
	}
	r, err := replica.NewCASRound(e.cfg.quorum(), members, down, o.Key, e.clock.Now(now), o.ChangeAt(now, e.cfg.DefaultTTL))
	if err != nil {
		e.finish(now, s, err)
		return
	}
	op := &casOp{e: e, s: s, r: r, sent: sn}
	s.kv = op
	s.result.Version = r.P.Ballot
	r.Start(now, op, e.casLocal, e.clock.Observe)
}

// Send and Done carry the round (replica.CASLink).

func (op *casOp) Send(now time.Time, i int, x []byte) (uint64, bool) {
	q := op.e.newQuery(krpc.MethodCAS)
	q.A.Has |= krpc.HasX
	if tok := op.sent[i].token; tok != nil {
		q.A.Has |= krpc.HasToken
		q.A.Token = tok
	}
	q.A.X = x
	to := op.r.Members[i].Node
	tid, ok := op.e.sendQueryTID(now, to.Addr, to.ID, op.s.id, forOp)
	return uint64(tid), ok
}

func (op *casOp) Done(now time.Time, acks int, err error) {
	op.s.result.Acks = acks
	op.e.finish(now, op.s, err)
}

func (op *casOp) response(now time.Time, _ *Engine, p *pending, m *krpc.Msg) {
	op.r.Answer(now, p.nodeID, uint64(p.tid), m.R.X)
}

func (op *casOp) failure(now time.Time, _ *Engine, p *pending, _ error) {
	op.r.Fail(now, p.nodeID, uint64(p.tid))
}

// casLocal is this node's acceptor answering m.
func (e *Engine) casLocal(now time.Time, m replica.CASMsg) (replica.CASAnswer, error) {
	return replica.LocalCAS(&e.acceptor, now, e.restarted, e.kvStore(), m, e.changed)
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
