package kademlia

import (
	"errors"
	"time"

	"github.com/dhtkit/dhtkit/krpc"
	"github.com/dhtkit/dhtkit/store"
)

// The rest of a put's replica set. A put is acknowledged once its write
// quorum holds it (2 of 3), but the write goes to every member, and the
// members past the quorum must hold it too, at once rather than at the
// next sync: until they do, two nodes that die take a write only they
// held. So a written put lives on, as an internal operation under its own
// id (the queries still out carry it), until every member has answered,
// and a member that refused for a reason the writer can mend is written
// again:
//
//   - It does not know us (a one-hop write carries no token, and the
//     member's table may not hold us as a contact that answered at this
//     address): a push (pushOp) asks it for a token first, as a lookup
//     would have.
//   - It is not a replica by its own table (a one-hop write to a set our
//     table got wrong: a node nearer the key that we have not heard of):
//     the put is written again after a lookup, which finds that node.
//
// A member that did not answer even the retry at the soft timeout is left
// to anti-entropy: it is likely down, and sync finds its stand-in.

// restOf keeps a written put's op alive until every member has answered,
// and writes again to the members that refused in a way the writer can
// mend. It is called once the put is decided Written, and after each
// answer that follows.
func (op *kvOp) restOf(now time.Time, e *Engine) {
	settled := true
	for i := range op.q.Members {
		m, sn := &op.q.Members[i], &op.sent[i]
		if !m.Done {
			settled = false
			continue
		}
		if m.Acked || m.Self || sn.down || sn.mended {
			continue
		}
		sn.mended = true
		var re *RemoteError
		if !errors.As(m.Err, &re) {
			continue // timed out, or never sent: left to sync
		}
		switch re.Code {
		case krpc.CodeProtocol: // "bad token", or "send a token"
			e.pushRecords(now, m.Node, nil, []store.Record{op.rec})
		case codeNotReplica:
			e.putAgain(now, op)
		}
	}
	if _, live := e.ops[op.s.id]; settled && live {
		e.finish(now, op.s, nil)
	} else if !settled && !live {
		// The put's Result is out (a copy): its id lives on, internal,
		// for the answers still due.
		op.s.internal = true
		e.ops[op.s.id] = op.s
	}
}

// putAgain writes op's record again, with its version and expiry, on the
// replica set a lookup finds.
func (e *Engine) putAgain(now time.Time, op *kvOp) {
	put, ok := op.s.op.(KVPut)
	if !ok {
		return
	}
	put.Version = op.rec.Version
	if !put.Delete {
		put.Expires = op.rec.Expires
	}
	e.lastOp++
	s := &opState{id: e.lastOp, op: put, internal: true, started: now}
	e.ops[s.id] = s
	e.startLookup(now, s, krpc.MethodGet, store.KeyTarget(put.Key), nil)
}
