package replica

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
	"github.com/dhtkit/dhtkit/store"
)

// Listening, as OpenDHT's listen, the part both engines share: instead
// of polling a key, a listener registers with each of the key's replicas
// (dk_listen), and a replica whose store takes a newer version of a
// record of the key, by whatever path (a put, read repair, anti-entropy,
// a hand-over), sends it to the key's live listeners (dk_notify). A
// registration lasts ListenTTL; the listener looks the replicas up again
// and renews it more often than that, so that a replica that took over
// from a dead one learns of it too. Which nodes are the replicas is the
// engine's affair; the registrations a replica keeps (Listeners), what a
// listener knows (Subscription) and the payloads are here:
//
//	dk_listen a.x: {"k": key}       r.x: the answer to a ValuesQuery for key (AppendValues)
//	dk_notify a.x: {"recs": [rec]}  (empty response; error CodeNotListening
//	                                 if the receiver stopped listening)
//
// The answer to dk_listen carries the key's records that fit one
// datagram and lists the others by version ("e"); the listener reads
// those with dk_fetch {"ks": [...]} from the same replica
// (Subscription.Missing, FetchBatch), so that a new listener learns
// every current value, not only the ones that fit. A dk_notify carries
// one record, which MaxRecordValue keeps within a datagram.
//
// What a listener reports is each record newer than the last it reported
// of that value; whether that is a value added, changed or deleted, and
// when one expires, is decided above the engines (dhtkit.WatchValues),
// the same for both protocols.

// ListenTTL is how long a replica keeps a dk_listen registration.
const ListenTTL = 10 * time.Minute

// Bounds of the registrations a replica keeps for others, besides the
// engine's limit in all (Listeners.Add): one source (an IPv4 address or
// IPv6 /64: a flood, or a node behind one NAT) cannot take them all, and a
// key's write does not fan out to more than ListenersPerKey datagrams.
// See Listeners for who is evicted.
const (
	ListenersPerKey    = 64
	ListenersPerSource = 256
)

// CodeNotListening answers a dk_notify for a key the receiver no longer
// listens to; the replica drops the registration on it.
const CodeNotListening = 253

// ErrListenersFull refuses every dk_listen of a node that keeps no
// listeners (a limit of 0).
var ErrListenersFull = errors.New("this node keeps no listeners")

// AppendListen appends the payload of a dk_listen query for key.
func AppendListen(dst []byte, key string) []byte {
	return encode(dst, map[string]any{"k": key})
}

// ParseListen decodes a dk_listen query's payload: the key, 1 to
// store.DefaultMaxKeySize bytes, a key as a value's record key names it
// refused (a listener listens to a key and hears every value of it).
func ParseListen(x []byte) (string, error) {
	d, err := decodeDict(x)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrBadRecord, err)
	}
	k, _ := d["k"].([]byte)
	if len(k) == 0 || len(k) > store.DefaultMaxKeySize {
		return "", fmt.Errorf("%w: want k, a key of 1 to %d bytes", ErrBadRecord, store.DefaultMaxKeySize)
	}
	if _, v := store.SplitKey(string(k)); v != store.DefaultValue {
		return "", fmt.Errorf("%w: k names a value, not a key", ErrBadRecord)
	}
	return string(k), nil
}

// AppendNotify appends the payload of a dk_notify carrying rec (its
// Source, which is local, left out).
func AppendNotify(dst []byte, rec store.Record) []byte {
	rec.Source = ""
	return AppendRecordsAs(dst, "recs", []store.Record{rec})
}

// maxNotifyRecords bounds the records one dk_notify may carry: a sender
// sends one, and a receiver does no more for a hostile datagram.
const maxNotifyRecords = 4

// ParseNotify decodes a dk_notify query's payload.
func ParseNotify(x []byte) ([]store.Record, error) {
	d, err := decodeDict(x)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadRecord, err)
	}
	if raw, _ := d["recs"].([]any); len(raw) > maxNotifyRecords {
		return nil, fmt.Errorf("%w: %d records in one notification, at most %d", ErrBadRecord, len(raw), maxNotifyRecords)
	}
	return RecordsOf(d, "recs")
}

// Subscription is what a listener knows of the key it listens to: the
// newest version reported of each value, and the replicas it registered
// with, the only nodes whose notifications it takes.
type Subscription struct {
	Key   string
	last  map[string]store.Version // by record key
	trust map[netip.AddrPort]time.Time
	// need is how many replicas must hold the registration before every
	// acknowledged write reaches one of them; got counts those that do
	// (the first registration only), and told that the listener was told.
	need, got int
	told      bool
}

// Expect sets, at the first registration, how many of the members
// registered with must answer before the listener hears every write
// acknowledged from then on: replicas-write+1 of them, since a write
// quorum of write replicas then always shares one with them (fewer when
// the key has fewer members).
func (s *Subscription) Expect(members, replicas, write int) {
	if s.need == 0 {
		s.need = max(1, min(members, replicas-write+1))
	}
}

// Registered counts a member that holds the registration (an answer to
// dk_listen, or this node, a member itself) and reports whether it is
// the one that completes what Expect asked for: true once per
// Subscription.
func (s *Subscription) Registered() bool {
	s.got++
	if s.told || s.need == 0 || s.got < s.need {
		return false
	}
	s.told = true
	return true
}

// NewSubscription starts listening to key.
func NewSubscription(key string) *Subscription {
	return &Subscription{Key: key, last: make(map[string]store.Version), trust: make(map[netip.AddrPort]time.Time)}
}

// Learn reports whether rec should be reported: a record of the key
// (store.BaseKey), not expired, newer than the last reported of its value.
// If so it makes rec the listener's to keep: its value copied (it may be
// a datagram's or the store's) and its Source, which is local, cleared.
func (s *Subscription) Learn(rec *store.Record, now time.Time) bool {
	if store.BaseKey(rec.Key) != s.Key || Expired(rec, now) {
		return false
	}
	if last, ok := s.last[rec.Key]; ok && !rec.Version.Newer(last) {
		return false
	}
	if len(s.last) >= 4*store.MaxValuesPerKey {
		// Bounded: forget the versions reported, keeping the newest
		// reported per value only while a key holds a sane number.
		clear(s.last)
	}
	s.last[rec.Key] = rec.Version
	rec.Value = bytes.Clone(rec.Value)
	rec.Source = ""
	return true
}

// Deliver hands the records of a dk_notify from the replica at from to
// the node's own listeners, subs (sub gives each one's Subscription):
// each record goes to learn for every listener of its key that
// registered with from, once clock took its version; a listener that did
// not register there takes nothing (a forged notification, or a stale
// one). It reports whether any listener registered with from: if none,
// the node answers CodeNotListening, so that the replica stops sending.
func Deliver[L any](now time.Time, from netip.AddrPort, recs []store.Record, clock *store.Clock, subs []L, sub func(L) *Subscription, learn func(L, store.Record)) bool {
	listening := false
	for _, rec := range recs {
		for _, l := range subs {
			if s := sub(l); s.Key != store.BaseKey(rec.Key) || !s.Trusted(from, now) {
				continue
			}
			listening = true
			if clock.Observe(now, rec.Version) == nil {
				learn(l, rec)
			}
		}
	}
	return listening
}

// Trust lets the replica at addr notify until `until` (its registration's
// end).
func (s *Subscription) Trust(addr netip.AddrPort, until time.Time) { s.trust[addr] = until }

// Trusted reports whether addr holds a live registration of ours.
func (s *Subscription) Trusted(addr netip.AddrPort, now time.Time) bool {
	until, ok := s.trust[addr]
	return ok && until.After(now)
}

// Prune forgets the registrations that lapsed (at each refresh).
func (s *Subscription) Prune(now time.Time) {
	for a, until := range s.trust {
		if !until.After(now) {
			delete(s.trust, a)
		}
	}
}

// Missing returns the record keys of the entries (a dk_listen answer's
// records left out) newer than what was reported: the ones to read with
// dk_fetch, at most store.MaxValuesPerKey.
func (s *Subscription) Missing(ents []store.Entry) []string {
	var out []string
	for _, e := range ents {
		if store.BaseKey(e.Key) != s.Key || e.Deleted {
			continue
		}
		if last, ok := s.last[e.Key]; ok && !e.Version.Newer(last) {
			continue
		}
		out = append(out, e.Key)
		if len(out) == store.MaxValuesPerKey {
			break
		}
	}
	return out
}

// FetchBatch splits keys into the first dk_fetch's worth, whose query
// fits MaxPayload, and the rest.
func FetchBatch(keys []string) (batch, rest []string) {
	size := 16
	for i, k := range keys {
		size += len(k) + 8
		if i > 0 && size > MaxPayload {
			return keys[:i], keys[i:]
		}
	}
	return keys, nil
}

// Unfetched returns the keys asked for that an answer did not carry,
// for the next dk_fetch; none when the answer carried none of them (the
// replica no longer holds them, refuses, or lies): each dk_fetch takes
// one key at least off the list, so a listener sends at most
// store.MaxValuesPerKey of them per answer to dk_listen.
func Unfetched(asked []string, got []store.Record) []string {
	rest := slices.DeleteFunc(slices.Clone(asked), func(k string) bool {
		return slices.ContainsFunc(got, func(r store.Record) bool { return r.Key == k })
	})
	if len(rest) == len(asked) {
		return nil
	}
	return rest
}

// Listeners holds the dk_listen registrations a replica keeps for other
// nodes. It is fair rather than first come, first served: a registration
// past a bound evicts an older one instead of being refused, and the one
// evicted belongs to whoever holds the most. Past ListenersPerKey, the
// key's source (IPv4 address or IPv6 /64) with the most registrations on
// it loses its oldest; past ListenersPerSource, the newcomer's source
// loses its own oldest; past the engine's limit, the source with the most
// registrations of all loses its oldest. A flood from a few addresses
// thus only displaces itself, and an honest listener always gets in. The
// zero value is ready to use.
type Listeners struct {
	byKey map[string][]Listener
	// bySource lists each source's registrations, oldest (least recently
	// registered or renewed) first; levels[c] holds the sources with c.
	bySource map[netip.Addr][]listenerRef
	levels   [ListenersPerSource + 1]map[netip.Addr]struct{}
	n        int
	evicted  uint64
	// notifying maps the transaction ids of dk_notify queries in flight to
	// what they carry, to drop the registration if the listener refuses
	// and to send the notification again if it goes unanswered.
	notifying map[uint16]Notify
}

// Listener is one registration.
type Listener struct {
	Node    id.ID
	Addr    netip.AddrPort
	Expires time.Time
}

type listenerRef struct {
	key  string
	addr netip.AddrPort
}

// Len is the number of registrations kept.
func (t *Listeners) Len() int { return t.n }

// Evicted counts the registrations evicted for a newer one.
func (t *Listeners) Evicted() uint64 { return t.evicted }

// Add registers (or renews) addr as a listener of key, evicting as the
// type's doc says, limit being the most kept in all; the error is for a
// limit of 0 only.
func (t *Listeners) Add(now time.Time, key string, node id.ID, addr netip.AddrPort, limit int) error {
	if limit <= 0 {
		return ErrListenersFull
	}
	if t.byKey == nil {
		t.byKey = make(map[string][]Listener)
		t.bySource = make(map[netip.Addr][]listenerRef)
	}
	src := guard.SourceKey(addr.Addr())
	ls := t.byKey[key]
	for i := range ls {
		if ls[i].Addr == addr {
			ls[i].Node, ls[i].Expires = node, now.Add(ListenTTL)
			refs := t.bySource[src]
			j := slices.Index(refs, listenerRef{key, addr})
			refs = append(slices.Delete(refs, j, j+1), listenerRef{key, addr})
			t.bySource[src] = refs
			return nil
		}
	}
	// Expired registrations go at maintenance (Expire); until then they
	// count, and walking the whole table here would make each dk_listen
	// of a flood cost O(limit).
	if refs := t.bySource[src]; len(refs) >= ListenersPerSource {
		t.evict(refs[0])
	}
	if len(t.Live(now, key)) >= ListenersPerKey {
		t.evict(t.heaviestOfKey(key))
	}
	if t.n >= limit {
		t.evict(t.bySource[t.heaviest()][0])
	}
	t.byKey[key] = append(t.byKey[key], Listener{Node: node, Addr: addr, Expires: now.Add(ListenTTL)})
	c := len(t.bySource[src])
	t.bySource[src] = append(t.bySource[src], listenerRef{key, addr})
	t.level(src, c, c+1)
	t.n++
	return nil
}

// heaviestOfKey is key's oldest registration among those of the source
// that holds the most registrations on key.
func (t *Listeners) heaviestOfKey(key string) listenerRef {
	ls := t.byKey[key]
	count := make(map[netip.Addr]int, len(ls)) // at most ListenersPerKey
	for i := range ls {
		count[guard.SourceKey(ls[i].Addr.Addr())]++
	}
	best, bestN := 0, 0
	for i := range ls {
		n := count[guard.SourceKey(ls[i].Addr.Addr())]
		if n > bestN || n == bestN && ls[i].Expires.Before(ls[best].Expires) {
			best, bestN = i, n
		}
	}
	return listenerRef{key, ls[best].Addr}
}

// heaviest is the source with the most registrations.
func (t *Listeners) heaviest() netip.Addr {
	for c := ListenersPerSource; c > 0; c-- {
		for src := range t.levels[c] {
			return src
		}
	}
	return netip.Addr{}
}

// level moves src from the set of sources with from registrations to the
// set of those with to.
func (t *Listeners) level(src netip.Addr, from, to int) {
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

func (t *Listeners) evict(ref listenerRef) {
	t.Remove(ref.key, ref.addr)
	t.evicted++
}

// Live drops key's expired registrations and returns the others.
func (t *Listeners) Live(now time.Time, key string) []Listener {
	ls, ok := t.byKey[key]
	if !ok {
		return nil
	}
	ls = slices.DeleteFunc(ls, func(l Listener) bool {
		if l.Expires.After(now) {
			return false
		}
		t.forget(key, l.Addr)
		return true
	})
	if len(ls) == 0 {
		delete(t.byKey, key)
		return nil
	}
	t.byKey[key] = ls
	return ls
}

// Expire drops every expired registration (the engine's maintenance).
func (t *Listeners) Expire(now time.Time) {
	for key := range t.byKey {
		t.Live(now, key)
	}
}

// Remove drops addr's registration for key.
func (t *Listeners) Remove(key string, addr netip.AddrPort) {
	ls := t.byKey[key]
	ls = slices.DeleteFunc(ls, func(l Listener) bool {
		if l.Addr != addr {
			return false
		}
		t.forget(key, l.Addr)
		return true
	})
	if len(ls) == 0 {
		delete(t.byKey, key)
		return
	}
	t.byKey[key] = ls
}

// forget takes a registration that left byKey off its source's list.
func (t *Listeners) forget(key string, addr netip.AddrPort) {
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

// NotifyTries is how many times a replica sends one dk_notify before it
// leaves the change to the listener's next refresh (a minute by default):
// a datagram lost on a busy machine, whose socket buffers overflow, would
// otherwise hide a change from the listener until then.
const NotifyTries = 3

// Notify is one dk_notify: the record it carries (X, AppendNotify) and
// the registration it goes to.
type Notify struct {
	Key  string
	Addr netip.AddrPort
	Node id.ID
	X    []byte
	sent int
}

// Sent notes n, sent under transaction tid.
func (t *Listeners) Sent(tid uint16, n Notify) {
	if t.notifying == nil {
		t.notifying = make(map[uint16]Notify)
	}
	n.sent++
	t.notifying[tid] = n
}

// Answered forgets dk_notify tid, answered.
func (t *Listeners) Answered(tid uint16) { delete(t.notifying, tid) }

// TimedOut forgets dk_notify tid, which went unanswered, and returns it
// to be sent again unless it was sent NotifyTries times already: a lost
// datagram is no reason to stop, and a dead listener's registration
// expires on its own.
func (t *Listeners) TimedOut(tid uint16) (Notify, bool) {
	n, ok := t.notifying[tid]
	delete(t.notifying, tid)
	return n, ok && n.sent < NotifyTries
}

// Refused handles an error reply to dk_notify tid: a listener that no
// longer listens, or a peer that does not know the method, is dropped.
func (t *Listeners) Refused(tid uint16, code int) {
	n, ok := t.notifying[tid]
	if !ok {
		return
	}
	delete(t.notifying, tid)
	if code == CodeNotListening || code == krpc.CodeMethodUnknown {
		t.Remove(n.Key, n.Addr)
	}
}

// Registered reports whether addr holds a live registration for key.
func (t *Listeners) Registered(now time.Time, key string, addr netip.AddrPort) bool {
	return slices.ContainsFunc(t.Live(now, key), func(l Listener) bool { return l.Addr == addr })
}

// Count is the number of registrations listed by key (Len, counted the
// long way: for tests of the table's bookkeeping).
func (t *Listeners) Count() int {
	n := 0
	for _, ls := range t.byKey {
		n += len(ls)
	}
	return n
}
