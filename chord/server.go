package chord

import (
	"bytes"
	"net/netip"
	"slices"
	"time"

	"github.com/dhtkit/dhtkit/guard"
	"github.com/dhtkit/dhtkit/replica"
	"github.com/dhtkit/dhtkit/store"

	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/krpc"
)

// handleQuery answers a query from a peer.
func (e *Engine) handleQuery(now time.Time, from netip.AddrPort, q *krpc.Msg) {
	m := methodOf(q)
	e.stats.QueriesIn[m]++
	// Past the node's own rate, the nodes that answered us are still
	// answered (guard.Limiter.Admit).
	if why := e.limiter.Admit(now, from.Addr(), func() bool { return e.proven(from, q) }); why != 0 {
		e.drop(why)
		return
	}
	if q.A.Has&krpc.HasID == 0 {
		e.stats.Malformed++
		e.replyError(now, from, q.T, krpc.CodeProtocol, "missing id")
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
			e.replyError(now, from, q.T, krpc.CodeProtocol, methodFindSuccessor+": want x.t, a 20-byte target")
			return
		}
		target := id.ID(t)
		nodes, done, partial, blind := e.route(now, target, e.cfg.K, nil)
		x := make(map[string]any, 4)
		if done {
			x["d"] = 1
			x["n"] = encodeNodes(nodes, e.self)
		} else {
			x["n"] = encodeNodes(e.nextHops(target, step, nil), e.self)
			if partial {
				x["a"] = encodeNodes(nodes, e.self)
			}
			if blind {
				x["u"] = 1
			}
		}
		if done || partial {
			if gone := e.goneAmong(now, target, nodes, e.cfg.K); len(gone) > 0 {
				x["l"] = encodeNodes(gone, e.self)
			}
		}
		e.xbuf = encodeX(e.xbuf[:0], x)
		r = e.newResponse(q.T) // encodeX may not touch e.out, but be plain about it
		r.R.Has |= krpc.HasX
		r.R.X = e.xbuf
	case mGetPredecessor:
		e.xbuf = encodeNeighbors(e.xbuf[:0], e.neighbors(now, true), e.self)
		r.R.Has |= krpc.HasX
		r.R.X = e.xbuf
	case mNotify:
		e.notified(now, sender, e.proven(from, q))
		// Answer with our predecessor now: if it is not the notifier,
		// it lies between us and the notifier should move to it.
		e.xbuf = encodeNeighbors(e.xbuf[:0], e.neighbors(now, false), e.self)
		r = e.newResponse(q.T) // notified may have sent pushes through e.out
		r.R.Has |= krpc.HasX
		r.R.X = e.xbuf
	case mHint:
		e.hinted(now, sender)
	case mLeave:
		nb, err := decodeNeighbors(q.A.X, sender.ID, from)
		if err != nil {
			e.stats.Malformed++
			e.replyError(now, from, q.T, krpc.CodeProtocol, methodLeave+": "+err.Error())
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
	case mListen:
		if !e.handleListen(now, from, q) {
			return
		}
		r = &e.out
	case mKVNotify:
		if !e.handleNotify(now, from, q) {
			return
		}
		r = &e.out
	case mLoad:
		keys, bytes := e.kvStore().Stats()
		e.xbuf = krpc.AppendLoad(e.xbuf[:0], krpc.Load{Keys: int64(keys), Bytes: bytes})
		r.R.Has |= krpc.HasX
		r.R.X = e.xbuf
	default:
		e.replyError(now, from, q.T, krpc.CodeMethodUnknown, "method unknown")
		return
	}
	_ = r
	e.reply(now, from, q, m)
}

// isRead reports whether a dk_fetch payload is a get's read of one
// value: {"k": key} without "all".
func isRead(x []byte) bool {
	d, err := replica.DecodeX(x)
	if err != nil {
		return false
	}
	if _, all := replica.ValuesQuery(d); all {
		return false
	}
	k, ok := d["k"].([]byte)
	return ok && len(k) > 0
}

// proven reports whether the source of q has proven it receives at its
// address: a node that answered a query of ours there, a token we issued
// to its IP, or a datagram sealed with the network key.
func (e *Engine) proven(from netip.AddrPort, q *krpc.Msg) bool {
	if e.peers.Proven(from, q.A.ID) {
		return true
	}
	if q.A.Has&krpc.HasToken != 0 && e.tokens.Valid(from.Addr(), q.A.Token) {
		return true
	}
	if e.cfg.Sender != nil {
		if _, ok := e.cfg.Sender(); ok {
			return true
		}
	}
	return false
}

// reply sends the response in e.out to the source of q within the bounds
// package guard sets for a source that has not proven its address, as
// Kademlia's: an answer of dhtkit's own methods at most
// guard.MaxAmplification times the query (over that, a short answer with
// a token asks again: replica.AppendAgain), and every answer within the
// source's and the node's byte budgets (over them, dropped and counted).
func (e *Engine) reply(now time.Time, to netip.AddrPort, q *krpc.Msg, m method) {
	start, ok := e.encode()
	if !ok {
		return
	}
	why := e.limiter.Reply(now, to.Addr(), e.proven(to, q), m.own(), e.inLen, e.box.Size(start))
	if why != 0 {
		e.box.Undo(start)
		e.drop(why)
	}
	switch why {
	case 0:
		e.queue(to, start)
	case guard.DropUnproven:
		e.askToken(now, to, q)
	}
}

// askToken answers q with a token for its source and a request to ask
// again with it (replica.AppendAgain): a few dozen bytes, which reach the
// asker only if it receives at its address.
func (e *Engine) askToken(now time.Time, to netip.AddrPort, q *krpc.Msg) {
	r := e.newResponse(q.T)
	r.R.Has |= krpc.HasToken | krpc.HasX
	r.R.Token = e.tokens.Issue(to.Addr(), e.tokBuf[:0])
	e.xbuf = replica.AppendAgain(e.xbuf[:0])
	r.R.X = e.xbuf
	if start, ok := e.encode(); ok {
		if why := e.box.Charge(now, e.limiter, to, start); why != 0 {
			e.drop(why)
		} else {
			e.queue(to, start)
		}
	}
}

// handleStore answers dk_store: it applies each record (newest version
// wins) and says, per record, whether we now hold it or something newer
// (replica.AppendAcks), once the records are committed. A source that has
// not proven its address is asked to (askToken) and nothing is stored:
// the writer a quota is charged to must be the real one.
func (e *Engine) handleStore(now time.Time, from netip.AddrPort, q *krpc.Msg) bool {
	if !e.proven(from, q) && !e.limiter.Exempt(from.Addr()) {
		e.drop(guard.DropUnproven)
		e.askToken(now, from, q)
		return false
	}
	recs, own, err := replica.ParseStore(q.A.X)
	if err == nil && own && e.cfg.Sender != nil {
		// A direct write: under a network key, its writer is the
		// authenticated sender (as Kademlia's).
		if s, ok := e.cfg.Sender(); ok {
			for i := range recs {
				if err = store.CheckWriter(recs[i].Version, q.A.ID, s); err != nil {
					break
				}
			}
		}
	}
	if err != nil {
		e.stats.Malformed++
		e.replyError(now, from, q.T, krpc.CodeProtocol, "dk_store: "+err.Error())
		return false
	}
	idx := make([]int, 0, len(recs)) // positions in recs of the records queued
	valid := make([]store.Record, 0, len(recs))
	for i := range recs {
		if e.clock.Observe(now, recs[i].Version) != nil || replica.Expired(&recs[i], now) {
			continue
		}
		idx = append(idx, i)
		valid = append(valid, recs[i])
	}
	// The answer waits for the commit Ready makes of every write queued
	// meanwhile: it acknowledges only what is durable.
	tid, n := bytes.Clone(q.T), len(recs)
	e.commits.Queue(now, valid, func(now time.Time, errs []error, applied []bool) {
		var held []replica.Held
		if own {
			held = replica.Superseded(e.kvStore(), valid, idx, errs, applied)
		}
		e.xbuf = replica.AppendAcks(e.xbuf[:0], n, idx, errs, held)
		r := e.newResponse(tid)
		r.R.Has |= krpc.HasX
		r.R.X = e.xbuf
		e.send(from)
	})
	return false // answered at the commit
}

// handleFetch answers dk_fetch with the records asked for, by key ("k"),
// keys ("ks") or target ("h"), or every value of a key, as many as fit one
// datagram (replica.ServeFetch, as Kademlia's). It leaves the reply in
// e.out.
func (e *Engine) handleFetch(now time.Time, from netip.AddrPort, q *krpc.Msg) bool {
	if !e.caughtUp(now) && isRead(q.A.X) {
		// A get's read (repair's pulls use "ks"): see catchUp.
		e.replyError(now, from, q.T, krpc.CodeServer, errCatchingUp.Error())
		return false
	}
	x, err := replica.ServeFetch(now, e.kvStore(), e.xbuf[:0], q.A.X, maxPayload)
	if err != nil {
		e.stats.Malformed++
		e.replyError(now, from, q.T, krpc.CodeProtocol, "dk_fetch: "+err.Error())
		return false
	}
	e.xbuf = x
	r := e.newResponse(q.T)
	r.R.Has |= krpc.HasX
	r.R.X = e.xbuf
	return true
}

// left handles a neighbour's goodbye: it names its predecessor and its
// successors, so that the ring closes over the gap at once.
func (e *Engine) left(now time.Time, n krpc.NodeInfo, nb neighbors) {
	r := &e.ring
	if a, ok := r.addrOf(n.ID); ok && a != n.Addr {
		// Anyone can claim an id: a goodbye counts from the address we
		// know the node at. Another address's would drop a live node
		// from every list, and, claiming our successor's id, put the
		// sender's list of successors in its place.
		return
	}
	if s, ok := r.successor(); ok && s.ID == n.ID {
		rest := append([]krpc.NodeInfo(nil), r.succs[1:]...)
		r.setSuccs(nb.succs, rest)
		e.takeMark(nb.blind) // its list, and what it could not vouch for
		e.stats.SuccessorChanges++
	}
	if r.hasPred && r.pred.ID == n.ID {
		r.hasPred = false
		if !nb.pred.ID.IsZero() && nb.pred.ID != e.self {
			r.pred, r.hasPred = nb.pred, true
		}
	}
	r.forget(n.ID, e)
	r.dropMember(n.ID)
	if i := r.findLost(n.ID); i >= 0 {
		r.lost = slices.Delete(r.lost, i, i+1)
	}
}
