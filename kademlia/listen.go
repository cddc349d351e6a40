package kademlia

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/dhtkit/dhtkit/guard"

	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/krpc"
	"github.com/dhtkit/dhtkit/replica"
	"github.com/dhtkit/dhtkit/store"
)

// Listening, as OpenDHT's listen: instead of polling a key, a listener
// registers with each of the key's replicas (dk_listen), and a replica
// whose store takes a newer version of the key, by whatever path (a put,
// read repair, anti-entropy), sends it to the key's live listeners
// (dk_notify). A registration lasts ListenTTL; the listener looks the
// replicas up again and renews it every Config.ListenRefresh, so that a
// replica that took over from a dead one learns of it too.

// KVListen reports each new version of each value of Key (every record
// whose store.BaseKey is Key: the default value and those with ids) as an
// Event, newest version wins per value and each version once, until it is
// canceled; its Result comes only then (ErrCanceled), or at once for an
// invalid key.
type KVListen struct{ Key string }

func (KVListen) isOp() {}

// ListenTTL is how long a replica keeps a dk_listen registration.
const ListenTTL = 10 * time.Minute

// Bounds of the registrations kept for others, besides Config.MaxListeners:
// one source (an IPv4 address or IPv6 /64: a flood, or a node behind one
// NAT) cannot take them all, and a key's write does not fan out to more
// than listenersPerKey datagrams. See listenerTable for who is evicted.
const (
	listenersPerKey = 64
	listenersPerIP  = 256
)

// codeNotListening answers a dk_notify for a key the receiver no longer
// listens to; the replica drops the registration on it.
const codeNotListening = 253

// Why a dk_listen is refused.
var (
	errListenersFull = errors.New("this node keeps no listeners")
)

// listenOp is a KVListen in progress.
type listenOp struct {
	s    *opState
	key  string
	last map[string]store.Version // newest version reported, by record key
	// trust lists the replicas registered with, until their registration
	// lapses: only they may notify us.
	trust     map[netip.AddrPort]time.Time
	lookupAt  time.Time // the current refresh began: older answers are stale
	searching bool      // its lookup runs: answers to get go to it
	next      time.Time // the next refresh
}

func (e *Engine) startListen(now time.Time, s *opState, key string) {
	if key == "" {
		e.finish(now, s, ErrNoKey)
		return
	}
	if len(key) > store.DefaultMaxKeySize {
		e.finish(now, s, fmt.Errorf("%w: the key is %d bytes, at most %d", store.ErrTooLarge, len(key), store.DefaultMaxKeySize))
		return
	}
	lo := &listenOp{s: s, key: key, trust: make(map[netip.AddrPort]time.Time), last: make(map[string]store.Version)}
	s.kv = lo
	e.listenOps = append(e.listenOps, lo)
	lo.refresh(now, e)
}

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
	for a, until := range lo.trust {
		if !until.After(now) {
			delete(lo.trust, a)
		}
	}
	if e.table.Len() == 0 {
		lo.register(now, e, nil) // alone: we are the replica set
		return
	}
	lo.searching = true
	e.startLookup(now, lo.s, krpc.MethodGet, store.KeyTarget(lo.key), nil)
}

// register sends dk_listen to the replicas a lookup found, and reads our
// own copy if we are one of them.
func (lo *listenOp) register(now time.Time, e *Engine, l *lookup) {
	lo.searching = false
	members, sent := e.replicasFound(now, store.KeyTarget(lo.key), l, false)
	for i, r := range members {
		if r.Self {
			_ = store.Values(e.kvStore(), lo.key, func(rec store.Record) bool {
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
		}
		e.xbuf = encodeX(e.xbuf[:0], map[string]any{"k": lo.key})
		m.A.X = e.xbuf
		if e.sendQuery(now, r.Node.Addr, r.Node.ID, lo.s.id, forOp) {
			lo.trust[r.Node.Addr] = now.Add(ListenTTL)
		}
	}
}

// learn reports rec if it is newer than what was reported.
func (lo *listenOp) learn(now time.Time, e *Engine, rec store.Record) {
	if store.BaseKey(rec.Key) != lo.key || expired(&rec, now) {
		return
	}
	if last, ok := lo.last[rec.Key]; ok && !rec.Version.Newer(last) {
		return
	}
	if len(lo.last) >= 4*store.MaxValuesPerKey {
		// Bounded: forget the versions reported, keeping the newest
		// reported per value only while a key holds a sane number.
		clear(lo.last)
	}
	lo.last[rec.Key] = rec.Version
	rec.Value = bytes.Clone(rec.Value)
	rec.Source = ""
	e.events = append(e.events, Event{Op: lo.s.id, Record: rec})
}

// lookupReply reports whether an answer to p belongs to the lookup now
// running, rather than to dk_listen or to an earlier refresh's lookup.
func (lo *listenOp) lookupReply(p *pending) bool {
	return lo.searching && p.method != krpc.MethodListen && !p.sent.Before(lo.lookupAt)
}

// response takes a replica's answer to dk_listen: the records it holds
// of the key, those that fit (replica.AppendValues); the others arrive
// at their next change.
func (lo *listenOp) response(now time.Time, e *Engine, _ *pending, m *krpc.Msg) {
	recs, _, err := replica.ParseValues(m.R.X, lo.key)
	if err != nil {
		return
	}
	for _, rec := range recs {
		if e.clock.Observe(now, rec.Version) == nil {
			lo.learn(now, e, rec)
		}
	}
}

// failure of a dk_listen: the next refresh tries again, perhaps elsewhere.
func (lo *listenOp) failure(time.Time, *Engine, *pending, error) {}

// changed is called whenever our store takes a newer version of a record:
// our own listeners learn it, and the key's registered listeners are sent it.
func (e *Engine) changed(now time.Time, rec store.Record) {
	if e.tree != nil {
		e.tree.Invalidate()
	}
	key := store.BaseKey(rec.Key)
	for _, lo := range e.listenOps {
		if lo.key == key {
			lo.learn(now, e, rec)
		}
	}
	ls := e.listeners.live(now, key)
	if len(ls) == 0 {
		return
	}
	rec.Source = ""
	x := encodeRecords(nil, "recs", []store.Record{rec})
	for _, l := range ls {
		m := e.newQuery(krpc.MethodNotify)
		m.A.Has |= krpc.HasX
		m.A.X = x
		if tid, ok := e.sendQueryTID(now, l.addr, l.node, 0, forNotify); ok {
			e.listeners.sent(tid, key, l.addr)
		}
	}
}

// handleListen answers dk_listen: it registers the sender as a listener
// of the key and answers with the record we hold, as dk_fetch would.
// Since we will send to the sender's address later, it must prove that
// address as a writer does (trusted): otherwise a forged source could
// point a stream of notifications at a victim.
func (e *Engine) handleListen(now time.Time, from netip.AddrPort, q, r *krpc.Msg) bool {
	if !e.trusted(from, q) {
		e.replyError(now, from, q.T, krpc.CodeProtocol, "dk_listen: bad token")
		return false
	}
	d, err := decodeX(q.A.X)
	if err != nil {
		e.replyError(now, from, q.T, krpc.CodeProtocol, "dk_listen: "+err.Error())
		return false
	}
	k, _ := d["k"].([]byte)
	if len(k) == 0 || len(k) > store.DefaultMaxKeySize {
		e.replyError(now, from, q.T, krpc.CodeProtocol, "dk_listen: want k, a key of 1 to 1024 bytes")
		return false
	}
	key := string(k)
	if err := e.listeners.add(now, key, q.A.ID, from, e.cfg.MaxListeners); err != nil {
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
// codeNotListening, so that the replica stops sending them.
func (e *Engine) handleNotify(now time.Time, from netip.AddrPort, q, r *krpc.Msg) bool {
	d, err := decodeX(q.A.X)
	var recs []store.Record
	if err == nil {
		recs, err = decodeRecords(d, "recs")
	}
	if err != nil {
		e.replyError(now, from, q.T, krpc.CodeProtocol, "dk_notify: "+err.Error())
		return false
	}
	listening := false
	for _, rec := range recs {
		for _, lo := range e.listenOps {
			if lo.key != store.BaseKey(rec.Key) {
				continue
			}
			if until, ok := lo.trust[from]; !ok || !until.After(now) {
				continue // not a replica we registered with: forged, or stale
			}
			listening = true
			if e.clock.Observe(now, rec.Version) == nil {
				lo.learn(now, e, rec)
			}
		}
	}
	if !listening {
		e.replyError(now, from, q.T, codeNotListening, "dk_notify: not listening")
		return false
	}
	return true
}

// listenerTable holds the dk_listen registrations of other nodes. It is
// fair rather than first come, first served: a registration past a bound
// evicts an older one instead of being refused, and the one evicted
// belongs to whoever holds the most. Past listenersPerKey, the key's
// source (IPv4 address or IPv6 /64) with the most registrations on it
// loses its oldest; past listenersPerIP, the newcomer's source loses its
// own oldest; past MaxListeners, the source with the most registrations
// of all loses its oldest. A flood from a few addresses thus only
// displaces itself, and an honest listener always gets in.
type listenerTable struct {
	byKey map[string][]listener
	// bySource lists each source's registrations, oldest (least recently
	// registered or renewed) first; levels[c] holds the sources with c.
	bySource map[netip.Addr][]listenerRef
	levels   [listenersPerIP + 1]map[netip.Addr]struct{}
	n        int
	evicted  uint64
	// notifying maps the transaction ids of dk_notify queries in flight to
	// their registration, to drop it if the listener refuses.
	notifying map[uint16]listenerRef
}

type listener struct {
	node    id.ID
	addr    netip.AddrPort
	expires time.Time
}

type listenerRef struct {
	key  string
	addr netip.AddrPort
}

// add registers (or renews) addr as a listener of key, evicting as the
// table's doc says; the error is for a limit of 0 only.
func (t *listenerTable) add(now time.Time, key string, node id.ID, addr netip.AddrPort, limit int) error {
	if limit <= 0 {
		return errListenersFull
	}
	if t.byKey == nil {
		t.byKey = make(map[string][]listener)
		t.bySource = make(map[netip.Addr][]listenerRef)
	}
	src := guard.SourceKey(addr.Addr())
	ls := t.byKey[key]
	for i := range ls {
		if ls[i].addr == addr {
			ls[i].node, ls[i].expires = node, now.Add(ListenTTL)
			refs := t.bySource[src]
			j := slices.Index(refs, listenerRef{key, addr})
			refs = append(slices.Delete(refs, j, j+1), listenerRef{key, addr})
			t.bySource[src] = refs
			return nil
		}
	}
	// Expired registrations go at maintenance (Engine.maintain); until
	// then they count, and walking the whole table here would make each
	// dk_listen of a flood cost O(MaxListeners).
	if refs := t.bySource[src]; len(refs) >= listenersPerIP {
		t.evict(refs[0])
	}
	if len(t.live(now, key)) >= listenersPerKey {
		t.evict(t.heaviestOfKey(key))
	}
	if t.n >= limit {
		t.evict(t.bySource[t.heaviest()][0])
	}
	t.byKey[key] = append(t.byKey[key], listener{node: node, addr: addr, expires: now.Add(ListenTTL)})
	c := len(t.bySource[src])
	t.bySource[src] = append(t.bySource[src], listenerRef{key, addr})
	t.level(src, c, c+1)
	t.n++
	return nil
}

// heaviestOfKey is key's oldest registration among those of the source
// that holds the most registrations on key.
func (t *listenerTable) heaviestOfKey(key string) listenerRef {
	ls := t.byKey[key]
	count := make(map[netip.Addr]int, len(ls)) // at most listenersPerKey
	for i := range ls {
		count[guard.SourceKey(ls[i].addr.Addr())]++
	}
	best, bestN := 0, 0
	for i := range ls {
		n := count[guard.SourceKey(ls[i].addr.Addr())]
		if n > bestN || n == bestN && ls[i].expires.Before(ls[best].expires) {
			best, bestN = i, n
		}
	}
	return listenerRef{key, ls[best].addr}
}

// heaviest is the source with the most registrations.
func (t *listenerTable) heaviest() netip.Addr {
	for c := listenersPerIP; c > 0; c-- {
		for src := range t.levels[c] {
			return src
		}
	}
	return netip.Addr{}
}

// level moves src from the set of sources with from registrations to the
// set of those with to.
func (t *listenerTable) level(src netip.Addr, from, to int) {
	if from > 0 {
		delete(t.levels[from], src)
	}
	if to > 0 {
		if t.levels[to] == nil {
			t.levels[to] = make(map[netip.Addr]struct{})
		}
		t.levels[to][src] = struct{}{}
	}
}

func (t *listenerTable) evict(ref listenerRef) {
	t.remove(ref.key, ref.addr)
	t.evicted++
}

// live drops key's expired registrations and returns the others.
func (t *listenerTable) live(now time.Time, key string) []listener {
	ls, ok := t.byKey[key]
	if !ok {
		return nil
	}
	ls = slices.DeleteFunc(ls, func(l listener) bool {
		if l.expires.After(now) {
			return false
		}
		t.forget(key, l.addr)
		return true
	})
	if len(ls) == 0 {
		delete(t.byKey, key)
		return nil
	}
	t.byKey[key] = ls
	return ls
}

// expire drops every expired registration.
func (t *listenerTable) expire(now time.Time) {
	for key := range t.byKey {
		t.live(now, key)
	}
}

func (t *listenerTable) remove(key string, addr netip.AddrPort) {
	ls := t.byKey[key]
	ls = slices.DeleteFunc(ls, func(l listener) bool {
		if l.addr != addr {
			return false
		}
		t.forget(key, l.addr)
		return true
	})
	if len(ls) == 0 {
		delete(t.byKey, key)
		return
	}
	t.byKey[key] = ls
}

// forget takes a registration that left byKey off its source's list.
func (t *listenerTable) forget(key string, addr netip.AddrPort) {
	t.n--
	src := guard.SourceKey(addr.Addr())
	refs := t.bySource[src]
	c := len(refs)
	if j := slices.Index(refs, listenerRef{key, addr}); j >= 0 {
		refs = slices.Delete(refs, j, j+1)
	}
	t.level(src, c, len(refs))
	if len(refs) == 0 {
		delete(t.bySource, src)
		return
	}
	t.bySource[src] = refs
}

func (t *listenerTable) sent(tid uint16, key string, addr netip.AddrPort) {
	if t.notifying == nil {
		t.notifying = make(map[uint16]listenerRef)
	}
	t.notifying[tid] = listenerRef{key: key, addr: addr}
}

// refused handles an error reply to a dk_notify: a listener that no
// longer listens, or a peer that does not know the method, is dropped.
func (t *listenerTable) refused(tid uint16, code int) {
	ref, ok := t.notifying[tid]
	if !ok {
		return
	}
	delete(t.notifying, tid)
	if code == codeNotListening || code == krpc.CodeMethodUnknown {
		t.remove(ref.key, ref.addr)
	}
}

// Listeners is the number of dk_listen registrations this node keeps for
// others.
func (e *Engine) Listeners() int { return e.listeners.n }
