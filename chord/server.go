package chord

import (
	"net/netip"
	"slices"
	"time"

	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/krpc"
)

// handleQuery answers a query from a peer.
func (e *Engine) handleQuery(now time.Time, from netip.AddrPort, q *krpc.Msg) {
	m := methodOf(q)
	e.stats.QueriesIn[m]++
	if q.A.Has&krpc.HasID == 0 {
		e.stats.Malformed++
		e.replyError(from, q.T, krpc.CodeProtocol, "missing id")
		return
	}
	if q.A.ID == e.self {
		return // our own query reflected back, or an id thief
	}
	sender := krpc.NodeInfo{ID: q.A.ID, Addr: from}
	e.queriedBy(now, q.A.ID, from)
	r := e.newResponse(q.T)
	switch m {
	case mPing:
	case mFindSuccessor:
		d, err := decodeX(q.A.X)
		var t []byte
		if err == nil {
			t, _ = d["t"].([]byte)
		}
		if len(t) != id.Len {
			e.stats.Malformed++
			e.replyError(from, q.T, krpc.CodeProtocol, methodFindSuccessor+": want x.t, a 20-byte target")
			return
		}
		target := id.ID(t)
		nodes, done, partial := e.route(target, e.cfg.K, nil)
		x := make(map[string]any, 3)
		if done {
			x["d"] = 1
			x["n"] = encodeNodes(nodes, e.self)
		} else {
			x["n"] = encodeNodes(e.nextHops(target, step, nil), e.self)
			if partial {
				x["a"] = encodeNodes(nodes, e.self)
			}
		}
		e.xbuf = encodeX(e.xbuf[:0], x)
		r = e.newResponse(q.T) // encodeX may not touch e.out, but be plain about it
		r.R.Has |= krpc.HasX
		r.R.X = e.xbuf
	case mGetPredecessor:
		e.xbuf = encodeNeighbors(e.xbuf[:0], e.ring.pred, e.ring.hasPred, e.ring.succs, e.self)
		r.R.Has |= krpc.HasX
		r.R.X = e.xbuf
	case mNotify:
		e.notified(now, sender)
		// Answer with our predecessor now: if it is not the notifier,
		// it lies between us and the notifier should move to it.
		e.xbuf = encodeNeighbors(e.xbuf[:0], e.ring.pred, e.ring.hasPred, nil, e.self)
		r = e.newResponse(q.T) // notified may have sent pushes through e.out
		r.R.Has |= krpc.HasX
		r.R.X = e.xbuf
	case mLeave:
		nb, err := decodeNeighbors(q.A.X, sender.ID, from)
		if err != nil {
			e.stats.Malformed++
			e.replyError(from, q.T, krpc.CodeProtocol, methodLeave+": "+err.Error())
			return
		}
		e.left(now, sender, nb)
		r = e.newResponse(q.T)
	case mStore:
		if !e.handleStore(now, from, q) {
			return
		}
		r = &e.out
	case mFetch:
		if !e.handleFetch(now, from, q) {
			return
		}
		r = &e.out
	case mSync:
		if !e.handleSync(now, from, q) {
			return
		}
		r = &e.out
	case mCAS:
		if !e.handleCAS(now, from, q) {
			return
		}
		r = &e.out
	case mLoad:
		keys, bytes := e.kvStore().Stats()
		e.xbuf = krpc.AppendLoad(e.xbuf[:0], krpc.Load{Keys: int64(keys), Bytes: bytes})
		r.R.Has |= krpc.HasX
		r.R.X = e.xbuf
	default:
		e.replyError(from, q.T, krpc.CodeMethodUnknown, "method unknown")
		return
	}
	_ = r
	e.send(from)
}

// left handles a neighbour's goodbye: it names its predecessor and its
// successors, so that the ring closes over the gap at once.
func (e *Engine) left(now time.Time, n krpc.NodeInfo, nb neighbors) {
	r := &e.ring
	if s, ok := r.successor(); ok && s.ID == n.ID {
		rest := append([]krpc.NodeInfo(nil), r.succs[1:]...)
		r.setSuccs(nb.succs, rest)
		e.stats.SuccessorChanges++
	}
	if r.hasPred && r.pred.ID == n.ID {
		r.hasPred = false
		if !nb.pred.ID.IsZero() && nb.pred.ID != e.self {
			r.pred, r.hasPred = nb.pred, true
		}
	}
	r.forget(n.ID, e)
	if i := r.findLost(n.ID); i >= 0 {
		r.lost = slices.Delete(r.lost, i, i+1)
	}
}
