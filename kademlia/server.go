package kademlia

import (
	"net/netip"
	"time"

	"github.com/dhtkit/dhtkit/guard"

	"github.com/dhtkit/dhtkit/krpc"
	"github.com/dhtkit/dhtkit/routing"
)

// maxValues bounds the peers in one get_peers reply so that it fits a
// datagram that no path will fragment (about 100 IPv4 peers in 600 bytes).
const maxValues = 100

// maxSamples is the BEP 51 sample size: 20 ids keep the reply small.
const maxSamples = 20

// handleQuery answers a query from a peer.
func (e *Engine) handleQuery(now time.Time, from netip.AddrPort, q *krpc.Msg) {
	e.stats.QueriesIn[q.Q]++
	if e.cfg.ReadOnly && q.Q != krpc.MethodNotify {
		// BEP 43: a read-only node does not answer, but for the
		// notifications it asked for with dk_listen.
		return
	}
	// Past the node's own rate, its routing contacts are still answered.
	if why := e.limiter.Admit(now, from.Addr(), func() bool { return e.contact(from, q) }); why != 0 {
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
	if e.net == nil && q.Q >= krpc.MethodStore {
		// A Mainline node is a standard BEP 5 node: it neither answers
		// nor stores dhtkit's own methods, which anyone on the public DHT
		// could use to fill its store or probe its keys.
		e.replyError(now, from, q.T, krpc.CodeMethodUnknown, "method unknown")
		return
	}
	if q.Q == krpc.MethodBye {
		// A node leaving nicely: drop it now, rather than have every
		// lookup wait out its timeouts until the table notices.
		if c, ok := e.table.Get(q.A.ID); !ok || c.Addr == from {
			e.table.Remove(q.A.ID)
			e.silent.gone(now, q.A.ID)
		}
	} else {
		if !q.RO && from.Port() != 0 {
			e.observe(now, q.A.ID, from, routing.Queried, 0)
		}
		e.silent.forget(q.A.ID)
	}

	r := e.newResponse(from, q.T)

	switch q.Q {
	case krpc.MethodPing:
	case krpc.MethodFindNode:
		if q.A.Has&krpc.HasTarget == 0 {
			e.replyError(now, from, q.T, krpc.CodeProtocol, "find_node: missing target")
			return
		}
		e.appendNodes(r, q, q.A.Target)
	case krpc.MethodGetPeers:
		if q.A.Has&krpc.HasInfoHash == 0 {
			e.replyError(now, from, q.T, krpc.CodeProtocol, "get_peers: missing info_hash")
			return
		}
		r.R.Has |= krpc.HasToken
		r.R.Token = e.tokens.Issue(from.Addr(), e.tokBuf[:0])
		e.answerGetPeers(now, q, r)
		// Nodes too, even with values: they let the asker keep converging.
		e.appendNodes(r, q, q.A.InfoHash)
	case krpc.MethodAnnouncePeer:
		if q.A.Has&krpc.HasInfoHash == 0 || q.A.Has&krpc.HasToken == 0 ||
			(q.A.Has&krpc.HasPort == 0 && !q.A.ImpliedPort) {
			e.replyError(now, from, q.T, krpc.CodeProtocol, "announce_peer: missing info_hash, token or port")
			return
		}
		if !e.tokens.Valid(from.Addr(), q.A.Token) {
			e.replyError(now, from, q.T, krpc.CodeProtocol, "announce_peer: bad token")
			return
		}
		port := from.Port()
		if !q.A.ImpliedPort {
			if q.A.Port <= 0 || q.A.Port > 65535 {
				e.replyError(now, from, q.T, krpc.CodeProtocol, "announce_peer: bad port")
				return
			}
			port = uint16(q.A.Port)
		}
		e.peers.announce(now, q.A.InfoHash, netip.AddrPortFrom(from.Addr(), port), q.A.Seed)
	case krpc.MethodGet:
		if q.A.Has&krpc.HasTarget == 0 {
			e.replyError(now, from, q.T, krpc.CodeProtocol, "get: missing target")
			return
		}
		r.R.Has |= krpc.HasToken
		r.R.Token = e.tokens.Issue(from.Addr(), e.tokBuf[:0])
		if it := e.items.get(q.A.Target, now); it != nil {
			switch {
			case !it.Mutable():
				r.R.Has |= krpc.HasV
				r.R.V = it.V
			case q.A.Has&krpc.HasSeq != 0 && it.Seq <= q.A.Seq:
				// The asker has this version or a newer one already.
				r.R.Has |= krpc.HasSeq
				r.R.Seq = it.Seq
			default:
				r.R.Has |= krpc.HasV | krpc.HasK | krpc.HasSig | krpc.HasSeq
				r.R.V, r.R.K, r.R.Sig, r.R.Seq = it.V, it.K, it.Sig, it.Seq
			}
		}
		e.appendNodes(r, q, q.A.Target)
	case krpc.MethodPut:
		if q.A.Has&krpc.HasToken == 0 || q.A.Has&krpc.HasV == 0 {
			e.replyError(now, from, q.T, krpc.CodeProtocol, "put: missing token or v")
			return
		}
		if !e.tokens.Valid(from.Addr(), q.A.Token) {
			e.replyError(now, from, q.T, krpc.CodeProtocol, "put: bad token")
			return
		}
		it := Item{V: q.A.V, K: q.A.K, Sig: q.A.Sig, Salt: q.A.Salt, Seq: q.A.Seq}
		if err := it.Validate(); err != nil {
			e.replyError(now, from, q.T, errCode(err), err.Error())
			return
		}
		if err := e.items.put(now, it.Target(), &it, q.A.CAS, q.A.Has&krpc.HasCAS != 0); err != nil {
			pe := err.(*putError)
			e.replyError(now, from, q.T, pe.code, pe.msg)
			return
		}
	case krpc.MethodSampleInfohashes:
		if q.A.Has&krpc.HasTarget == 0 {
			e.replyError(now, from, q.T, krpc.CodeProtocol, "sample_infohashes: missing target")
			return
		}
		r.R.Has |= krpc.HasSamples | krpc.HasNum | krpc.HasInterval
		r.R.Samples, r.R.Interval = e.peers.sample(now, e.cfg.SampleInterval, e.rng, r.R.Samples[:0])
		r.R.Num = e.peers.len()
		e.appendNodes(r, q, q.A.Target)
	case krpc.MethodBye:
	case krpc.MethodStore:
		if !e.handleStore(now, from, q, r) {
			return
		}
	case krpc.MethodFetch:
		if !e.handleFetch(now, from, q, r) {
			return
		}
	case krpc.MethodCAS:
		if !e.handleCAS(now, from, q, r) {
			return
		}
	case krpc.MethodSync:
		if !e.handleSync(now, from, q, r) {
			return
		}
	case krpc.MethodKeys:
		if !e.handleKeys(now, from, q, r) {
			return
		}
	case krpc.MethodListen:
		if !e.handleListen(now, from, q, r) {
			return
		}
	case krpc.MethodNotify:
		if !e.handleNotify(now, from, q, r) {
			return
		}
	case krpc.MethodLoad:
		// Two counters the store keeps: the same cost on any store.
		keys, bytes := e.kvStore().Stats()
		r.R.Has |= krpc.HasX
		e.xbuf = krpc.AppendLoad(e.xbuf[:0], krpc.Load{Keys: int64(keys), Bytes: bytes})
		r.R.X = e.xbuf
	default:
		e.replyError(now, from, q.T, krpc.CodeMethodUnknown, "method unknown")
		return
	}
	if e.cfg.QueryHook != nil && !e.cfg.QueryHook(from, q, r) {
		return
	}
	e.reply(now, from, q)
}

// reply sends the response in e.out to `to` within the budgets of a source
// that has not proven it receives at its address (proven: a valid token,
// a table contact that answered us there, or a datagram sealed with the
// network key): at most guard.MaxAmplification (3×) the query's bytes for
// dhtkit's own methods (QUIC's anti-amplification limit; a short error
// asks for the token instead), and the source's and the node's byte
// budgets for every method. Over budget, the reply is dropped and counted.
func (e *Engine) reply(now time.Time, to netip.AddrPort, q *krpc.Msg) {
	start, ok := e.encode()
	if !ok {
		return
	}
	why := e.limiter.Reply(now, to.Addr(), e.trusted(to, q), q.Q >= krpc.MethodStore, e.inLen, e.box.Size(start))
	if why == 0 {
		e.queue(to, start)
		return
	}
	e.box.Undo(start)
	e.drop(why)
	if why == guard.DropUnproven {
		e.replyError(now, to, q.T, krpc.CodeProtocol, q.Q.String()+": send a token")
	}
}

// newResponse starts a response to `to` in e.out.
func (e *Engine) newResponse(to netip.AddrPort, tid []byte) *krpc.Msg {
	r := &e.out
	r.Reset()
	r.Y = krpc.Response
	r.T = tid
	r.V = e.cfg.Version
	r.IP = to
	r.R.Has = krpc.HasID
	r.R.ID = e.self
	return r
}

// appendNodes puts the K closest contacts to target into r, as nodes or
// nodes6 by the table's family and the query's BEP 32 want.
func (e *Engine) appendNodes(r, q *krpc.Msg, target [20]byte) {
	want := q.A.Want
	if q.A.Has&krpc.HasWant == 0 {
		if e.cfg.IPv6 {
			want = krpc.WantN6
		} else {
			want = krpc.WantN4
		}
	}
	if e.cfg.IPv6 && want&krpc.WantN6 == 0 || !e.cfg.IPv6 && want&krpc.WantN4 == 0 {
		return // they want only the family we do not keep
	}
	e.contacts = e.table.Closest(target, e.cfg.K, e.contacts[:0])
	dst := &r.R.Nodes
	if e.cfg.IPv6 {
		dst = &r.R.Nodes6
		r.R.Has |= krpc.HasNodes6
	} else {
		r.R.Has |= krpc.HasNodes
	}
	*dst = (*dst)[:0]
	for _, c := range e.contacts {
		*dst = append(*dst, krpc.NodeInfo{ID: c.ID, Addr: c.Addr})
	}
}

// replyError sends a KRPC error.
func (e *Engine) replyError(now time.Time, to netip.AddrPort, tid []byte, code int, msg string) {
	ErrorMsg(&e.out, tid, code, msg, e.cfg.Version)
	start, ok := e.encode()
	if !ok {
		return
	}
	// An error proves nothing either: it spends the byte budget of a
	// source that may be forged.
	if why := e.box.Charge(now, e.limiter, to, start); why != 0 {
		e.drop(why)
		return
	}
	e.stats.ErrorsOut++
	e.queue(to, start)
}
