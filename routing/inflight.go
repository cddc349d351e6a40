package routing

import (
	"net/netip"
	"time"

	"github.com/dhtkit/dhtkit/internal/heapq"
)

// InFlight tracks an engine's queries awaiting an answer, by transaction
// id, and the timers that wake the engine for them: the plumbing the
// Kademlia and Chord engines share. P is the engine's own record of a
// query.
//
// Transaction ids are drawn at random among those not in use, never in
// sequence: an off-path attacker who forges a reply must guess one id of
// the 65,536 besides the address and port of the node asked. A slot is
// reused once released (a flood of queries allocates nothing) under a new
// generation, so that the timers of its earlier use find it gone.
type InFlight[P any] struct {
	byTID  map[uint16]*Slot[P]
	free   []*Slot[P]
	timers heapq.Queue[timer]
}

// Slot is one query in flight, to address To.
type Slot[P any] struct {
	Q   P
	TID uint16
	To  netip.AddrPort
	gen uint32
}

// MaxInFlight is how many queries can be in flight at once: one per
// 16-bit transaction id, less one.
const MaxInFlight = 1<<16 - 1

// Len is the number of queries in flight.
func (f *InFlight[P]) Len() int { return len(f.byTID) }

// Start takes a slot for a query to `to` under a random id not in use,
// its Q zeroed; false when every id is in use. rnd draws the randomness
// (the engine's seeded generator, so that a simulation repeats).
func (f *InFlight[P]) Start(rnd func() uint32, to netip.AddrPort) (*Slot[P], bool) {
	if len(f.byTID) >= MaxInFlight {
		return nil, false
	}
	if f.byTID == nil {
		f.byTID = make(map[uint16]*Slot[P])
		f.timers.Before = func(a, b timer) bool { return a.at.Before(b.at) }
	}
	tid := uint16(rnd())
	for f.byTID[tid] != nil {
		tid = uint16(rnd())
	}
	var s *Slot[P]
	if n := len(f.free); n > 0 {
		s = f.free[n-1]
		f.free = f.free[:n-1]
	} else {
		s = new(Slot[P])
	}
	var zero P
	s.Q, s.TID, s.To = zero, tid, to
	s.gen++
	f.byTID[tid] = s
	return s, true
}

// Match returns the query in flight that a reply from `from` with
// transaction id t answers, and the id; false when t is not one of ours,
// or names a query that is not in flight or went to another address: a
// reply must come from the address asked, since anyone else could be
// guessing transaction ids to poison the engine's routing.
func (f *InFlight[P]) Match(t []byte, from netip.AddrPort) (*Slot[P], uint16, bool) {
	tid, ok := ParseTID(t)
	if !ok {
		return nil, 0, false
	}
	s := f.byTID[tid]
	return s, tid, s != nil && s.To == from
}

// Get returns the query in flight under tid, or nil.
func (f *InFlight[P]) Get(tid uint16) *Slot[P] { return f.byTID[tid] }

// Release ends the query under tid, if any; its timers find it gone.
func (f *InFlight[P]) Release(tid uint16) {
	s := f.byTID[tid]
	if s == nil {
		return
	}
	delete(f.byTID, tid)
	s.gen++
	f.free = append(f.free, s)
}

// Wake sets a timer for the query under tid at `at`.
func (f *InFlight[P]) Wake(tid uint16, at time.Time) {
	if s := f.byTID[tid]; s != nil {
		f.timers.Push(timer{at: at, tid: tid, gen: s.gen})
	}
}

// Next is the time of the earliest timer; false when none is set.
func (f *InFlight[P]) Next() (time.Time, bool) {
	t, ok := f.timers.Peek()
	return t.at, ok
}

// Due pops the timers due at now until one belongs to a query still in
// flight, and returns that query; false when none is left.
func (f *InFlight[P]) Due(now time.Time) (*Slot[P], bool) {
	for t, ok := f.timers.Peek(); ok && !t.at.After(now); t, ok = f.timers.Peek() {
		f.timers.Pop()
		if s := f.byTID[t.tid]; s != nil && s.gen == t.gen {
			return s, true
		}
	}
	return nil, false
}

// AppendTID appends the wire form of a transaction id (KRPC's "t").
func AppendTID(dst []byte, tid uint16) []byte { return append(dst, byte(tid>>8), byte(tid)) }

// ParseTID reads the transaction id of a reply; false when it is not one
// of ours.
func ParseTID(t []byte) (uint16, bool) {
	if len(t) != 2 {
		return 0, false
	}
	return uint16(t[0])<<8 | uint16(t[1]), true
}

type timer struct {
	at  time.Time
	tid uint16
	gen uint32
}
