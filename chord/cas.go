package chord

import (
	"fmt"
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
	switch {
	case op.Key == "":
		e.finish(now, s, kademlia.ErrNoKey)
		return
	case len(op.Key) > store.DefaultMaxKeySize:
		e.finish(now, s, fmt.Errorf("%w: the key is %d bytes, at most %d", store.ErrTooLarge, len(op.Key), store.DefaultMaxKeySize))
		return
	case len(op.Value) > kademlia.MaxRecordValue:
		e.finish(now, s, fmt.Errorf("%w: %d bytes, at most %d", kademlia.ErrTooLarge, len(op.Value), kademlia.MaxRecordValue))
		return
	}
	e.startLookup(now, s, store.KeyTarget(op.Key), nil)
}

// casOp is a KVCas past its lookup: the proposer and the queries sent.
type casOp struct {
	s       *opState
	p       *replica.Proposer
	members []replica.Member
	down    []bool
	tid     []uint16
	waiting []bool
}

// casReplicas takes the key's replica set and sends the prepare.
func (e *Engine) casReplicas(now time.Time, s *opState, nodes []krpc.NodeInfo) {
	o := s.op.(kademlia.KVCas)
	members, down := e.replicaSet(now, store.KeyTarget(o.Key), nodes)
	q := e.quorum()
	need := q.Need(true, len(members), len(members) == 1 && members[0].Self)
	up := 0
	for _, d := range down {
		if !d {
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
	op := &casOp{s: s, members: members, down: down, tid: make([]uint16, len(members)), waiting: make([]bool, len(members))}
	op.p = replica.NewProposer(o.Key, e.clock.Now(now), change, len(members), need)
	s.cas = op
	s.result.Version = op.p.Ballot
	op.send(now, e, op.p.Prepare())
	op.advance(now, e)
}

// send sends m to every member that is not down; this node answers its
// own at once.
func (op *casOp) send(now time.Time, e *Engine, m replica.CASMsg) {
	for i, r := range op.members {
		if op.down[i] {
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
		q := e.newQuery(mCAS)
		q.A.Has |= krpc.HasX
		e.xbuf = replica.AppendCASMsg(e.xbuf[:0], m)
		q.A.X = e.xbuf
		tid, ok := e.sendQueryTID(now, mCAS, r.Node.Addr, r.Node.ID, op.s.id, forOp)
		if !ok {
			op.p.Fail(i, m.Phase)
			continue
		}
		op.tid[i], op.waiting[i] = tid, true
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
	for range 2 { // twice: a replica set of this node alone decides at once
		if m, ok := op.p.Next(); ok {
			op.send(now, e, m)
		}
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
		if !r.Self && op.waiting[i] && r.Node.ID == p.nodeID && op.tid[i] == p.tid {
			return i
		}
	}
	return -1
}

func (op *casOp) response(now time.Time, e *Engine, p *pending, _ id.ID, m *krpc.Msg) {
	i := op.find(p)
	if i < 0 {
		return
	}
	op.waiting[i] = false
	phase := op.p.Phase()
	ans, err := replica.ParseCASAnswer(m.R.X, op.p.Key)
	if err != nil {
		e.stats.Malformed++
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
	op.waiting[i] = false
	op.p.Fail(i, op.p.Phase())
	op.advance(now, e)
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
