package chord

import (
	"net/netip"
	"time"

	"github.com/dhtkit/dhtkit/guard"
	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/kademlia"
	"github.com/dhtkit/dhtkit/krpc"
	"github.com/dhtkit/dhtkit/replica"
	"github.com/dhtkit/dhtkit/store"
)

// Conditional writes (kademlia.KVCas, replica/cas.go) on the ring: the
// key's replica set as a put's (replicaSet), the prepare and accept
// carried as dk_cas.

// startCAS validates a KVCas and looks up the key's successor.
func (e *Engine) startCAS(now time.Time, s *opState, op kademlia.KVCas) {
	if err := op.Check(); err != nil {
		e.finish(now, s, err)
		return
	}
	e.startLookup(now, s, store.KeyTarget(op.Key), nil)
}

// casOp is a KVCas past its lookup: the replication layer's round
// (replica.CASRound).
type casOp struct {
	e *Engine
	s *opState
	r *replica.CASRound
}

// casReplicas takes the key's replica set and sends the prepare.
func (e *Engine) casReplicas(now time.Time, s *opState, a answer) {
	o := s.op.(kademlia.KVCas)
	members, down := e.replicaSet(now, store.KeyTarget(o.Key), a)
	r, err := replica.NewCASRound(e.quorum(), members, down, o.Key, e.clock.Now(now), o.ChangeAt(now, e.cfg.DefaultTTL))
	if err != nil {
		e.finish(now, s, err)
		return
	}
	op := &casOp{e: e, s: s, r: r}
	s.cas = op
	s.result.Version = r.P.Ballot
	r.Start(now, op, e.casLocal, e.clock.Observe)
}

// Send and Done carry the round (replica.CASLink).

func (op *casOp) Send(now time.Time, i int, x []byte) (uint64, bool) {
	q := op.e.newQuery(mCAS)
	q.A.Has |= krpc.HasX
	q.A.X = x
	to := op.r.Members[i].Node
	tid, ok := op.e.sendQueryTID(now, mCAS, to.Addr, to.ID, op.s.id, forOp)
	return uint64(tid), ok
}

func (op *casOp) Done(now time.Time, acks int, err error) {
	op.s.result.Acks = acks
	op.e.finish(now, op.s, err)
}

func (op *casOp) response(now time.Time, e *Engine, p *pending, _ id.ID, m *krpc.Msg) {
	if op.r.Answer(now, p.nodeID, uint64(p.tid), m.R.X) != nil {
		e.stats.Malformed++
	}
}

func (op *casOp) failure(now time.Time, _ *Engine, p *pending, _ error) {
	op.r.Fail(now, p.nodeID, uint64(p.tid))
}

// casLocal is this node's acceptor answering m.
func (e *Engine) casLocal(now time.Time, m replica.CASMsg) (replica.CASAnswer, error) {
	return replica.LocalCAS(&e.acceptor, now, e.restarted, e.kvStore(), m, e.changed)
}

// handleCAS answers dk_cas with this node's acceptor, for a source whose
// address is proven (a write).
func (e *Engine) handleCAS(now time.Time, from netip.AddrPort, q *krpc.Msg) bool {
	// A write: only from a source that proved its address, as dk_store.
	if !e.proven(from, q) && !e.limiter.Exempt(from.Addr()) {
		e.drop(guard.DropUnproven)
		e.askToken(now, from, q)
		return false
	}
	m, err := replica.ParseCASMsg(q.A.X)
	if err == nil {
		err = e.clock.Observe(now, m.Ballot)
	}
	if err == nil && m.Rec != nil && len(m.Rec.Value) > kademlia.MaxRecordValue {
		err = kademlia.ErrTooLarge
	}
	if err != nil {
		e.stats.Malformed++
		e.replyError(now, from, q.T, krpc.CodeProtocol, "dk_cas: "+err.Error())
		return false
	}
	ans, err := e.casLocal(now, m)
	if err != nil {
		e.replyError(now, from, q.T, krpc.CodeServer, "dk_cas: "+err.Error())
		return false
	}
	e.xbuf = replica.AppendCASAnswer(e.xbuf[:0], ans)
	r := e.newResponse(q.T)
	r.R.Has |= krpc.HasX
	r.R.X = e.xbuf
	return true
}
