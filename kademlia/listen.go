package kademlia

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/krpc"
	"github.com/dhtkit/dhtkit/replica"
	"github.com/dhtkit/dhtkit/store"
)

// Listening, as OpenDHT's listen (the protocol-independent part, its
// registrations, bounds and payloads, is package replica's: see
// replica/listen.go): a listener registers with each of the key's
// replicas (dk_listen), and a replica whose store takes a newer version
// of a record of the key sends it to the key's live listeners
// (dk_notify). The listener looks the replicas up again and renews its
// registrations every Config.ListenRefresh, so that a replica that took
// over from a dead one learns of it too.

// KVListen reports each new version of each value of Key (every record
// whose store.BaseKey is Key: the default value and those with ids) as an
// Event, newest version wins per value and each version once, until it is
// canceled; its Result comes only then (ErrCanceled), or at once for an
// invalid key.
type KVListen struct{ Key string }

func (KVListen) isOp() {}

// ListenTTL is how long a replica keeps a dk_listen registration.
const ListenTTL = replica.ListenTTL

// listenOp is a KVListen in progress.
type listenOp struct {
	s   *opState
	sub *replica.Subscription
	// tokens are the write tokens of the replicas registered with, which
	// prove our address to them for the dk_fetch of what their answer
	// left out.
	tokens    map[netip.AddrPort][]byte
	lookupAt  time.Time // the current refresh began: older answers are stale
	searching bool      // its lookup runs: answers to get go to it
	next      time.Time // the next refresh
	// fetching maps our dk_fetch queries in flight to the record keys
	// they ask for.
	fetching map[uint16][]string
}

func (e *Engine) startListen(now time.Time, s *opState, key string) {
	if err := CheckListenKey(key); err != nil {
		e.finish(now, s, err)
		return
	}
	lo := &listenOp{s: s, sub: replica.NewSubscription(key), tokens: make(map[netip.AddrPort][]byte), fetching: make(map[uint16][]string)}
	s.kv = lo
	e.listenOps = append(e.listenOps, lo)
	lo.refresh(now, e)
}

// CheckListenKey validates a KVListen's key: a key, not a value's record
// key (a listener hears every value of its key). Chord's engine checks
// with it too.
func CheckListenKey(key string) error {
	if key == "" {
		return ErrNoKey
	}
	if len(key) > store.DefaultMaxKeySize {
		return fmt.Errorf("%w: the key is %d bytes, at most %d", store.ErrTooLarge, len(key), store.DefaultMaxKeySize)
	}
	if store.IsValueKey(key) {
		k, v := store.SplitKey(key)
		return fmt.Errorf("%w: it names value %v of key %q: listen to that key", ErrValueKey, v, k)
	}
	return nil
}

// ErrValueKey refuses a key that ends as a value's record key does
// (store.ValueKey): it names a value of another key, placed on that
// key's replicas.
var ErrValueKey = errors.New("kademlia: the key ends like a value's record key (NUL, v and 16 hex digits)")

// refreshListens renews the listeners whose time has come.
func (e *Engine) refreshListens(now time.Time) {
	for _, lo := range slices.Clone(e.listenOps) {
		if !now.Before(lo.next) {
			lo.refresh(now, e)
		}
	}
}

// refresh looks the key's replicas up; register follows when it ends.
func (lo *listenOp) refresh(now time.Time, e *Engine) {
	lo.next = now.Add(e.cfg.ListenRefresh)
	lo.lookupAt = now
	lo.sub.Prune(now)
	for a := range lo.tokens {
		if !lo.sub.Trusted(a, now) {
			delete(lo.tokens, a)
		}
	}
	if e.table.Len() == 0 {
		lo.register(now, e, nil) // alone: we are the replica set
		return
	}
	lo.searching = true
	e.startLookup(now, lo.s, krpc.MethodGet, store.KeyTarget(lo.sub.Key), nil)
}

// register sends dk_listen to the replicas a lookup found, and reads our
// own copy if we are one of them.
func (lo *listenOp) register(now time.Time, e *Engine, l *lookup) {
	lo.searching = false
	members, sent := e.replicasFound(now, store.KeyTarget(lo.sub.Key), l, false)
	lo.sub.Expect(len(members), e.cfg.replicas(), e.cfg.WriteQuorum)
	for i, r := range members {
		if r.Self {
			lo.registered(e)
			_ = store.Values(e.kvStore(), lo.sub.Key, func(rec store.Record) bool {
				lo.learn(now, e, rec)
				return true
			})
			continue
		}
		m := e.newQuery(krpc.MethodListen)
		m.A.Has |= krpc.HasX
		if token := sent[i].token; token != nil {
			m.A.Has |= krpc.HasToken
			m.A.Token = token
			lo.tokens[r.Node.Addr] = bytes.Clone(token)
		}
		e.xbuf = replica.AppendListen(e.xbuf[:0], lo.sub.Key)
		m.A.X = e.xbuf
		if e.sendQuery(now, r.Node.Addr, r.Node.ID, lo.s.id, forOp) {
			lo.sub.Trust(r.Node.Addr, now.Add(ListenTTL))
		}
	}
}

// registered counts a replica that holds the registration, and tells
// the listener once enough do.
func (lo *listenOp) registered(e *Engine) {
	if lo.sub.Registered() {
		e.events = append(e.events, Event{Op: lo.s.id, Listening: true})
	}
}

// subscription is lo's Subscription, for replica.Deliver.
func (lo *listenOp) subscription() *replica.Subscription { return lo.sub }

// learn reports rec if it is newer than what was reported.
func (lo *listenOp) learn(now time.Time, e *Engine, rec store.Record) {
	if lo.sub.Learn(&rec, now) {
		e.events = append(e.events, Event{Op: lo.s.id, Record: rec})
	}
}

// own reports whether p is the listener's own query (dk_listen, or the
// dk_fetch of what an answer left out) rather than its lookup's.
func (lo *listenOp) own(p *pending) bool {
	return p.method == krpc.MethodListen || p.method == krpc.MethodFetch
}

// lookupReply reports whether an answer to p belongs to the lookup now
// running, rather than to the listener's own queries or to an earlier
// refresh's lookup.
func (lo *listenOp) lookupReply(p *pending) bool {
	return lo.searching && !lo.own(p) && !p.sent.Before(lo.lookupAt)
}

// response takes a replica's answer to dk_listen, the records of the key
// it holds that fit one datagram and the others by version, and reads
// those the listener has not reported with dk_fetch; or an answer to
// that dk_fetch, followed by the next one while it brings records.
func (lo *listenOp) response(now time.Time, e *Engine, p *pending, m *krpc.Msg) {
	var recs []store.Record
	var missing []string
	if p.method == krpc.MethodFetch {
		asked := lo.fetching[p.tid]
		delete(lo.fetching, p.tid)
		var err error
		if recs, err = replica.ParseRecords(m.R.X); err != nil {
			return
		}
		missing = replica.Unfetched(asked, recs)
	} else {
		var ents []store.Entry
		var err error
		if recs, ents, err = replica.ParseValues(m.R.X, lo.sub.Key); err != nil {
			return
		}
		missing = lo.sub.Missing(ents)
		defer lo.registered(e) // after the records it brought
	}
	for _, rec := range recs {
		if e.clock.Observe(now, rec.Version) == nil {
			lo.learn(now, e, rec)
		}
	}
	if len(missing) > 0 && lo.sub.Trusted(p.to, now) {
		lo.fetch(now, e, p.to, p.nodeID, missing)
	}
}

// fetch asks the replica at `to` for the first batch of keys that fits
// a dk_fetch.
func (lo *listenOp) fetch(now time.Time, e *Engine, to netip.AddrPort, node id.ID, keys []string) {
	batch, _ := replica.FetchBatch(keys)
	m := e.newQuery(krpc.MethodFetch)
	m.A.Has |= krpc.HasX
	if token := lo.tokens[to]; token != nil {
		m.A.Has |= krpc.HasToken
		m.A.Token = token
	}
	e.xbuf = replica.AppendFetch(e.xbuf[:0], batch...)
	m.A.X = e.xbuf
	if tid, ok := e.sendQueryTID(now, to, node, lo.s.id, forOp); ok {
		// The rest of keys is asked for again once this answer shows
		// what it left out (replica.Unfetched).
		lo.fetching[tid] = keys
	}
}

// failure of a dk_listen or its dk_fetch: the next refresh tries again,
// perhaps elsewhere.
func (lo *listenOp) failure(_ time.Time, _ *Engine, p *pending, _ error) {
	delete(lo.fetching, p.tid)
}

// changed is called whenever our store takes a newer version of a record:
// our own listeners learn it, and the key's registered listeners are sent it.
func (e *Engine) changed(now time.Time, rec store.Record) {
	if e.tree != nil {
		e.tree.Invalidate()
	}
	key := store.BaseKey(rec.Key)
	for _, lo := range e.listenOps {
		if lo.sub.Key == key {
			lo.learn(now, e, rec)
		}
	}
	ls := e.listeners.Live(now, key)
	if len(ls) == 0 {
		return
	}
	x := replica.AppendNotify(nil, rec)
	for _, l := range ls {
		e.notify(now, replica.Notify{Key: key, Addr: l.Addr, Node: l.Node, X: x})
	}
}

// notify sends n, a dk_notify, to its listener: at a change, and again
// when it goes unanswered (replica.Listeners.TimedOut).
func (e *Engine) notify(now time.Time, n replica.Notify) {
	m := e.newQuery(krpc.MethodNotify)
	m.A.Has |= krpc.HasX
	m.A.X = n.X
	if tid, ok := e.sendQueryTID(now, n.Addr, n.Node, 0, forNotify); ok {
		e.listeners.Sent(tid, n)
	}
}

// handleListen answers dk_listen: it registers the sender as a listener
// of the key and answers with the records we hold, as dk_fetch would.
// Since we will send to the sender's address later, it must prove that
// address as a writer does (trusted): otherwise a forged source could
// point a stream of notifications at a victim.
func (e *Engine) handleListen(now time.Time, from netip.AddrPort, q, r *krpc.Msg) bool {
	if !e.trusted(from, q) {
		e.replyError(now, from, q.T, krpc.CodeProtocol, "dk_listen: bad token")
		return false
	}
	key, err := replica.ParseListen(q.A.X)
	if err != nil {
		e.replyError(now, from, q.T, krpc.CodeProtocol, "dk_listen: "+err.Error())
		return false
	}
	if err := e.listeners.Add(now, key, q.A.ID, from, e.cfg.MaxListeners); err != nil {
		e.replyError(now, from, q.T, krpc.CodeServer, "dk_listen: "+err.Error())
		return false
	}
	r.R.Has |= krpc.HasX
	e.xbuf = replica.AppendValues(e.xbuf[:0], e.kvStore(), key, now)
	r.R.X = e.xbuf
	return true
}

// handleNotify takes a dk_notify from a replica we registered with. A
// notification for a key we no longer listen to is refused with
// replica.CodeNotListening, so that the replica stops sending them.
func (e *Engine) handleNotify(now time.Time, from netip.AddrPort, q, _ *krpc.Msg) bool {
	recs, err := replica.ParseNotify(q.A.X)
	if err != nil {
		e.replyError(now, from, q.T, krpc.CodeProtocol, "dk_notify: "+err.Error())
		return false
	}
	learn := func(lo *listenOp, rec store.Record) { lo.learn(now, e, rec) }
	if !replica.Deliver(now, from, recs, &e.clock, e.listenOps, (*listenOp).subscription, learn) {
		e.replyError(now, from, q.T, replica.CodeNotListening, "dk_notify: not listening")
		return false
	}
	return true
}

// Listeners is the number of dk_listen registrations this node keeps for
// others.
func (e *Engine) Listeners() int { return e.listeners.Len() }
