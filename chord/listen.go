package chord

import (
	"bytes"
	"net/netip"
	"slices"
	"time"

	"github.com/dhtkit/dhtkit/guard"
	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/kademlia"
	"github.com/dhtkit/dhtkit/krpc"
	"github.com/dhtkit/dhtkit/replica"
	"github.com/dhtkit/dhtkit/store"
)

// Listening, pushed as Kademlia's is (kademlia.KVListen; the
// registrations, bounds and payloads are package replica's, see
// replica/listen.go): a listener looks its key's successor up, registers
// with the key's replica set (replicaSet) with dk_listen, and reads what
// the first answer had no room for with dk_fetch; a replica whose store
// takes a newer version of a record of the key, by whatever path (a put,
// read repair, anti-entropy, a hand-over, a conditional write), sends it
// to the key's live listeners with dk_notify. The listener looks the
// replicas up again every Config.ListenRefresh, so that a node that
// joined or took over a dead replica's range learns of it too.

// listening is the engine's share of it: its own KVListen operations,
// and the registrations it keeps for others.
type listening struct {
	ops       []*listenOp
	listeners replica.Listeners
	events    []kademlia.Event // handed out by Ready
	// notify holds the records taken since the last Ready, whose
	// dk_notify go out there: a record may be taken while e.out holds
	// an answer being built (a conditional write's accept).
	notify     []store.Record
	notifyAt   time.Time // when the last of them was taken
	nextExpire time.Time
}

// listenOp is a KVListen in progress.
type listenOp struct {
	s    *opState
	sub  *replica.Subscription
	next time.Time // the next refresh
	// fetching maps our dk_fetch queries in flight to the record keys
	// they ask for.
	fetching map[uint16][]string
}

func (e *Engine) startListen(now time.Time, s *opState, key string) {
	if err := kademlia.CheckListenKey(key); err != nil {
		e.finish(now, s, err)
		return
	}
	lo := &listenOp{s: s, sub: replica.NewSubscription(key), fetching: make(map[uint16][]string)}
	s.lo = lo
	e.listen.ops = append(e.listen.ops, lo)
	lo.refresh(now, e)
}

// refresh looks the key's successor up; register follows.
func (lo *listenOp) refresh(now time.Time, e *Engine) {
	lo.next = now.Add(e.cfg.ListenRefresh)
	lo.sub.Prune(now)
	e.startLookup(now, lo.s, store.KeyTarget(lo.sub.Key), nil)
}

// register sends dk_listen to the key's replica set, as a put would pick
// it from the lookup's answer (empty: it failed, and the node picks from
// what it knows), and reads our own copy if we are a member.
func (lo *listenOp) register(now time.Time, e *Engine, a answer) {
	lo.s.lk = nil // late answers of this lookup are no longer wanted
	members, down := e.replicaSet(now, store.KeyTarget(lo.sub.Key), a)
	lo.sub.Expect(len(members), e.cfg.Replicas, e.cfg.WriteQuorum)
	for i, r := range members {
		if down[i] {
			continue
		}
		if r.Self {
			lo.registered(e)
			_ = store.Values(e.kvStore(), lo.sub.Key, func(rec store.Record) bool {
				lo.learn(now, e, rec)
				return true
			})
			continue
		}
		q := e.newQuery(mListen)
		q.A.Has |= krpc.HasX
		e.xbuf = replica.AppendListen(e.xbuf[:0], lo.sub.Key)
		q.A.X = e.xbuf
		if e.sendQuery(now, mListen, r.Node.Addr, r.Node.ID, lo.s.id, forOp) {
			lo.sub.Trust(r.Node.Addr, now.Add(replica.ListenTTL))
		}
	}
}

// registered counts a replica that holds the registration, and tells
// the listener once enough do.
func (lo *listenOp) registered(e *Engine) {
	if lo.sub.Registered() {
		e.listen.events = append(e.listen.events, kademlia.Event{Op: lo.s.id, Listening: true})
	}
}

// subscription is lo's Subscription, for replica.Deliver.
func (lo *listenOp) subscription() *replica.Subscription { return lo.sub }

// learn reports rec if it is newer than what was reported.
func (lo *listenOp) learn(now time.Time, e *Engine, rec store.Record) {
	if lo.sub.Learn(&rec, now) {
		e.listen.events = append(e.listen.events, kademlia.Event{Op: lo.s.id, Record: rec})
	}
}

// response routes an answer to the listener: its lookup's, or one to
// its dk_listen or dk_fetch (answered).
func (lo *listenOp) response(now time.Time, e *Engine, p *pending, sender id.ID, m *krpc.Msg) {
	if p.method != mListen && p.method != mFetch {
		if lo.s.lk != nil {
			lo.s.lk.response(now, e, lo.s, p, sender, m)
		}
		return
	}
	lo.answered(now, e, p, m)
}

// answered takes a replica's answer to dk_listen, the records of the key
// it holds that fit one datagram and the others by version, and reads
// those not reported yet with dk_fetch; or an answer to that dk_fetch,
// followed by the next one while it brings records.
func (lo *listenOp) answered(now time.Time, e *Engine, p *pending, m *krpc.Msg) {
	var recs []store.Record
	var missing []string
	var err error
	if p.method == mFetch {
		asked := lo.fetching[p.tid]
		delete(lo.fetching, p.tid)
		if recs, err = replica.ParseRecords(m.R.X); err == nil {
			missing = replica.Unfetched(asked, recs)
		}
	} else {
		var ents []store.Entry
		if recs, ents, err = replica.ParseValues(m.R.X, lo.sub.Key); err == nil {
			missing = lo.sub.Missing(ents)
			defer lo.registered(e) // after the records it brought
		}
	}
	if err != nil {
		e.stats.Malformed++
		return
	}
	for _, rec := range recs {
		if e.clock.Observe(now, rec.Version) == nil {
			lo.learn(now, e, rec)
		}
	}
	if len(missing) > 0 && lo.sub.Trusted(p.to, now) {
		batch, _ := replica.FetchBatch(missing)
		q := e.newQuery(mFetch)
		q.A.Has |= krpc.HasX
		e.xbuf = replica.AppendFetch(e.xbuf[:0], batch...)
		q.A.X = e.xbuf
		if tid, ok := e.sendQueryTID(now, mFetch, p.to, p.nodeID, lo.s.id, forOp); ok {
			lo.fetching[tid] = missing // the rest is asked for once this answer shows what it left out
		}
	}
}

// failure routes a failed query: its lookup's, or a dk_listen or
// dk_fetch (the next refresh tries again, perhaps elsewhere).
func (lo *listenOp) failure(now time.Time, e *Engine, p *pending, err error) {
	if p.method != mListen && p.method != mFetch {
		if lo.s.lk != nil {
			lo.s.lk.failed(now, e, lo.s, p, err)
		}
		return
	}
	delete(lo.fetching, p.tid)
}

// changed is called whenever our store takes a newer version of a
// record: the tree is out of date, our own listeners learn it, and the
// key's registered listeners will be sent it at the next Ready.
func (e *Engine) changed(now time.Time, rec store.Record) {
	e.stored()
	key := store.BaseKey(rec.Key)
	for _, lo := range e.listen.ops {
		if lo.sub.Key == key {
			lo.learn(now, e, rec)
		}
	}
	if len(e.listen.listeners.Live(now, key)) > 0 {
		rec.Value = bytes.Clone(rec.Value)
		e.listen.notify = append(e.listen.notify, rec)
		e.listen.notifyAt = now
	}
}

// notifyListeners sends the records taken since the last Ready to their
// keys' listeners.
func (e *Engine) notifyListeners() {
	now := e.listen.notifyAt
	for _, rec := range e.listen.notify {
		key := store.BaseKey(rec.Key)
		x := replica.AppendNotify(nil, rec)
		for _, l := range e.listen.listeners.Live(now, key) {
			e.notify(now, replica.Notify{Key: key, Addr: l.Addr, Node: l.Node, X: x})
		}
	}
	clear(e.listen.notify)
	e.listen.notify = e.listen.notify[:0]
}

// notify sends n, a dk_notify, to its listener: at a change, and again
// when it goes unanswered (replica.Listeners.TimedOut).
func (e *Engine) notify(now time.Time, n replica.Notify) {
	q := e.newQuery(mKVNotify)
	q.A.Has |= krpc.HasX
	q.A.X = n.X
	if tid, ok := e.sendQueryTID(now, mKVNotify, n.Addr, n.Node, 0, forListener); ok {
		e.listen.listeners.Sent(tid, n)
	}
}

// tickListen renews the listeners whose time has come and drops the
// registrations that expired.
func (e *Engine) tickListen(now time.Time) {
	for _, lo := range slices.Clone(e.listen.ops) {
		if !now.Before(lo.next) {
			lo.refresh(now, e)
		}
	}
	if !now.Before(e.listen.nextExpire) {
		e.listen.nextExpire = now.Add(time.Minute)
		e.listen.listeners.Expire(now)
	}
}

// listenDeadline is the next refresh of a listener, if any.
func (e *Engine) listenDeadline() (time.Time, bool) {
	var d time.Time
	for _, lo := range e.listen.ops {
		if d.IsZero() || lo.next.Before(d) {
			d = lo.next
		}
	}
	return d, !d.IsZero()
}

// listenDone takes a finished KVListen off the engine's list.
func (e *Engine) listenDone(lo *listenOp) {
	e.listen.ops = slices.DeleteFunc(e.listen.ops, func(x *listenOp) bool { return x == lo })
}

// handleListen answers dk_listen: it registers the sender as a listener
// of the key and answers with the records we hold, as a dk_fetch of
// every value would. Since we will send to the sender's address later,
// it must prove that address first (a token, as a writer does):
// otherwise a forged source could point a stream of notifications at a
// victim. It leaves the reply in e.out.
func (e *Engine) handleListen(now time.Time, from netip.AddrPort, q *krpc.Msg) bool {
	if !e.proven(from, q) && !e.limiter.Exempt(from.Addr()) {
		e.drop(guard.DropUnproven)
		e.askToken(now, from, q)
		return false
	}
	key, err := replica.ParseListen(q.A.X)
	if err != nil {
		e.stats.Malformed++
		e.replyError(now, from, q.T, krpc.CodeProtocol, "dk_listen: "+err.Error())
		return false
	}
	if err := e.listen.listeners.Add(now, key, q.A.ID, from, e.cfg.MaxListeners); err != nil {
		e.replyError(now, from, q.T, krpc.CodeServer, "dk_listen: "+err.Error())
		return false
	}
	e.xbuf = replica.AppendValues(e.xbuf[:0], e.kvStore(), key, now)
	r := e.newResponse(q.T)
	r.R.Has |= krpc.HasX
	r.R.X = e.xbuf
	return true
}

// handleNotify takes a dk_notify from a replica we registered with. A
// notification for a key we no longer listen to is refused with
// replica.CodeNotListening, so that the replica stops sending them.
func (e *Engine) handleNotify(now time.Time, from netip.AddrPort, q *krpc.Msg) bool {
	recs, err := replica.ParseNotify(q.A.X)
	if err != nil {
		e.stats.Malformed++
		e.replyError(now, from, q.T, krpc.CodeProtocol, "dk_notify: "+err.Error())
		return false
	}
	learn := func(lo *listenOp, rec store.Record) { lo.learn(now, e, rec) }
	if !replica.Deliver(now, from, recs, &e.clock, e.listen.ops, (*listenOp).subscription, learn) {
		e.replyError(now, from, q.T, replica.CodeNotListening, "dk_notify: not listening")
		return false
	}
	e.newResponse(q.T)
	return true
}

// Listeners is the number of dk_listen registrations this node keeps for
// others.
func (e *Engine) Listeners() int { return e.listen.listeners.Len() }
