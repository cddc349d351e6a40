package routing

import (
	"crypto/rand"
	"io"
	"math"
	"net/netip"
	"time"

	"github.com/dhtkit/dhtkit/id"
)

// BadFails is the number of consecutive unanswered queries that make a
// node bad. BEP 5 says "several"; two keeps a single lost datagram from
// costing a good node its place, and lets a dead one go after its second
// silence.
const BadFails = 2

// GoodFor is BEP 5's freshness window: a node that has answered us at least
// once stays good while it has been heard from (answer or query) within it.
const GoodFor = 15 * time.Minute

// PingWait is how long a bucket waits for the engine to report on a ping it
// asked for (an answer through Observe, or a timeout through Failed) before
// it asks again. BEP 5 pings one questionable node of a bucket at a time;
// the wait only matters when an engine drops a requested ping on the floor.
const PingWait = 30 * time.Second

// Probing bad contacts. A contact that turned bad is not forgotten: the
// table asks the engine to ping it again (Probe), first ProbeMin after it
// turned bad, then at doubling intervals up to ProbeMax, each stretched by
// up to a quarter at random so that the nodes of one side of a healed
// partition do not all probe at once. Its answer makes it good again (an
// answer always clears failures). Without this, a partition that healed
// would leave both sides calling each other bad forever: a bad contact is
// left out of Closest, so nothing else would ever query it.
//
// ProbeMax bounds both the cost of a dead contact (one ping per ProbeMax)
// and the time the tables take to see a healed partition: about ProbeMax,
// since one answer on either side is enough for lookups to cross again.
const (
	ProbeMin = 5 * time.Second
	ProbeMax = 30 * time.Second
)

// never marks a time that has not happened yet (a bucket never changed).
const never = math.MinInt64

// Entry flags.
const (
	flagIs4       uint8 = 1 << iota // the address is IPv4 (stored 4-in-6)
	flagSeen                        // lastSeen holds a time: it answered or queried us
	flagResponded                   // it has answered at least one of our queries
	flagPinging                     // the table asked the engine to ping it
	flagRemoved                     // KeepAll: a tombstone, skipped everywhere
	flagProbing                     // bad: a probe was handed out and not yet answered or failed
)

// entry is one contact as a table stores it. It holds no pointers and no
// time.Time, so that a million tables of a hundred-odd entries each stay
// cheap to hold and to scan for the garbage collector: 56 bytes.
type entry struct {
	id       id.ID
	ip       [16]byte // IPv4 as 4-in-6; IPv6 zones are dropped
	port     uint16
	flags    uint8
	fails    uint8 // consecutive unanswered queries, saturating
	lastSeen int64 // clock time of its last answer or query, when flagSeen
	rtt      int32 // smoothed round-trip time in microseconds; 0 when unknown
	probeAt  int32 // when bad: the clock time of its next probe, in probeUnits
}

// probeUnit is the resolution of probe times: a quarter of a second keeps
// entry.probeAt in 32 bits for 17 years of a table's life.
const probeUnit = int64(250 * time.Millisecond)

// next is the clock time of e's next probe.
func (e *entry) next() int64 { return int64(e.probeAt) * probeUnit }

// schedule sets e's next probe to now plus the back-off of fails failures.
func (e *entry) schedule(now int64, fails int, r io.Reader) {
	u := (now + probeDelay(fails, probe16(r)) + probeUnit - 1) / probeUnit
	e.probeAt = int32(min(u, math.MaxInt32))
}

// newEntry returns the entry of a node first heard of now.
func newEntry(x id.ID, addr netip.AddrPort) entry {
	e := entry{id: x}
	e.setAddr(addr)
	return e
}

func (e *entry) setAddr(addr netip.AddrPort) {
	a := addr.Addr()
	e.flags &^= flagIs4
	if a.Is4() || a.Is4In6() {
		e.flags |= flagIs4
	}
	e.ip = a.Unmap().As16()
	e.port = addr.Port()
}

func (e *entry) addr() netip.AddrPort {
	a := netip.AddrFrom16(e.ip)
	if e.flags&flagIs4 != 0 {
		a = a.Unmap()
	}
	return netip.AddrPortFrom(a, e.port)
}

// sameAddr reports whether addr is the address e holds.
func (e *entry) sameAddr(addr netip.AddrPort) bool {
	var o entry
	o.setAddr(addr)
	return o.ip == e.ip && o.port == e.port && o.flags&flagIs4 == e.flags&flagIs4
}

func (e *entry) bad() bool { return e.fails >= BadFails }

// state classifies e by BEP 5's rule as of now. Good needs an answer to one
// of our queries at some time, and an answer or a query from it within
// GoodFor: since lastSeen is the later of the two, one comparison covers
// both of BEP 5's cases. A contact that left our last query unanswered is
// questionable until it answers again or fails once more (SWIM's
// suspicion: still used, no longer trusted).
func (e *entry) state(now int64) State {
	switch {
	case e.bad():
		return Bad
	case e.fails == 0 && e.flags&flagResponded != 0 && e.flags&flagSeen != 0 && now-e.lastSeen < int64(GoodFor):
		return Good
	}
	return Questionable
}

// seen records an answer or a query from the node at now.
func (e *entry) seen(now int64, how Source, rtt time.Duration) {
	if how == Learned {
		return // a third party's word proves nothing about liveness
	}
	if e.flags&flagSeen == 0 || now > e.lastSeen {
		e.lastSeen = now
	}
	e.flags |= flagSeen
	switch how {
	case Responded:
		e.flags |= flagResponded
		e.fails = 0
		e.flags &^= flagPinging | flagProbing
	case Queried:
		// A query from the node at the address we hold refutes at once,
		// whether it was bad or only questionable (SWIM's refutation: any
		// message from a member proves it alive; BEP 5: a node that ever
		// answered us and queried us within GoodFor is good): its failures
		// are cleared and its probes end. Leaving a questionable node
		// questionable until it answered a query of ours kept a node that
		// lost one datagram in a load spike, and queried us right after,
		// out of the good count and first in line for eviction; counting
		// on our next probe instead cost a restarted node up to ProbeMax
		// and a quarter (~37 s) of being bad. A node that never answered
		// stays questionable: only an answer makes it good. The table
		// only calls seen for the address it holds.
		e.fails = 0
		e.flags &^= flagProbing
	}
	if rtt > 0 {
		us := int32(min(max(rtt.Microseconds(), 1), math.MaxInt32))
		if e.rtt == 0 {
			e.rtt = us
		} else {
			// EWMA with gain 1/8, as TCP's SRTT (RFC 6298).
			e.rtt += (us - e.rtt) / 8
		}
	}
}

// fail records an unanswered query at now. A contact that is bad after it
// gets its next probe time: ProbeMin after its BadFails-th failure,
// doubling with each failed probe since (other queries it misses while
// bad do not count), at most ProbeMax, plus a jitter of up
// to a quarter of that drawn from r (the table's generator, so that a
// seeded engine stays deterministic).
func (e *entry) fail(now int64, r io.Reader) {
	if e.bad() && e.flags&flagProbing == 0 {
		// A bad contact missed some other query (a lookup that met it
		// through a third party's answer, say): that says nothing its
		// probes do not, so its back-off stays where it is. Counting
		// every such query pushed the next probe of a contact that a busy
		// node kept meeting out to ProbeMax, and left a restarted node or
		// a healed partition bad for up to ~37 s.
		e.flags &^= flagPinging
		return
	}
	e.flags &^= flagProbing
	if e.fails < math.MaxUint8 {
		e.fails++
	}
	e.flags &^= flagPinging
	if e.bad() {
		e.schedule(now, int(e.fails), r)
	}
}

// ProbeDelay is the wait before the next probe of a contact that has
// failed fails queries in a row (BadFails or more): ProbeMin doubled per
// failure beyond BadFails, at most ProbeMax, plus rnd/2^16 of a quarter of
// it (rnd in [0, 1<<16), drawn from the engine's generator). Chord's
// successor list uses it too, so that both protocols back off alike.
func ProbeDelay(fails int, rnd uint32) time.Duration {
	return time.Duration(probeDelay(fails, rnd))
}

func probeDelay(fails int, rnd uint32) int64 {
	d := int64(ProbeMin) << min(max(fails-BadFails, 0), 16)
	d = min(d, int64(ProbeMax))
	return d + d/4*int64(rnd&0xffff)/(1<<16)
}

// probe16 draws the jitter of a probe from r: 16 bits, 0 when r fails.
func probe16(r io.Reader) uint32 {
	var b [2]byte
	if r == nil {
		r = rand.Reader
	}
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return 0
	}
	return uint32(b[0])<<8 | uint32(b[1])
}

// probes tracks when a table's next probe is due: a lower bound on the
// probe times of its bad contacts, so that Probe scans the table only when
// a probe may be due and NextProbe costs nothing.
type probes struct {
	next int64 // math.MaxInt64: no bad contact
	init bool
}

func (p *probes) lower() int64 {
	if !p.init {
		return math.MaxInt64
	}
	return p.next
}

// at is lower as a time of c, false when no contact is bad.
func (p *probes) at(c *clock) (time.Time, bool) {
	v := p.lower()
	if v == math.MaxInt64 {
		return time.Time{}, false
	}
	return c.time(v), true
}

// due records a bad contact's probe time.
func (p *probes) due(at int64) {
	if !p.init || at < p.next {
		p.next, p.init = at, true
	}
}

// scan hands out, through take, the bad entries whose probe is due at now,
// at most n of them, schedules the next probe of each as if this one
// will fail (the engine reports the outcome; until then the contact is
// not handed out again), and recomputes the lower bound. each walks the
// table's entries.
func (p *probes) scan(now int64, n int, r io.Reader, each func(func(e *entry))) (taken []*entry) {
	if now < p.lower() {
		return nil
	}
	p.init = false
	each(func(e *entry) {
		if !e.bad() || e.flags&flagRemoved != 0 {
			return
		}
		if e.next() <= now && len(taken) < n {
			taken = append(taken, e)
			e.flags |= flagProbing
			e.schedule(now, int(e.fails)+1, r)
		}
		p.due(e.next())
	})
	return taken
}

// fresher reports whether a was heard from more recently than b; entries
// never heard from (learned ones) are the least fresh.
func fresher(a, b *entry) bool {
	if a.flags&flagSeen == 0 {
		return false
	}
	return b.flags&flagSeen == 0 || a.lastSeen > b.lastSeen
}

// clock turns the times a table is handed into int64 nanoseconds since the
// first of them. Relative times survive any clock a driver uses (the
// simulator may start at the zero time.Time, whose UnixNano overflows), and
// the table keeps the latest time it was given as "now" for the methods
// that take none (Closest, Get, Buckets).
type clock struct {
	epoch time.Time
	now   int64
	set   bool
}

func (c *clock) at(t time.Time) int64 {
	if !c.set {
		c.epoch, c.set = t, true
	}
	v := int64(t.Sub(c.epoch))
	if v > c.now {
		c.now = v
	}
	return v
}

func (c *clock) time(v int64) time.Time { return c.epoch.Add(time.Duration(v)) }

func (c *clock) contact(e *entry) Contact {
	ct := Contact{
		ID:        e.id,
		Addr:      e.addr(),
		State:     e.state(c.now),
		Responded: e.flags&flagResponded != 0,
		Fails:     int(e.fails),
		RTT:       time.Duration(e.rtt) * time.Microsecond,
	}
	if e.flags&flagSeen != 0 {
		ct.LastSeen = c.time(e.lastSeen)
	}
	return ct
}

func (c *clock) changed(v int64) time.Time {
	if v == never {
		return time.Time{}
	}
	return c.time(v)
}

// prefixID returns the first n bits of x, the rest zero.
func prefixID(x id.ID, n int) id.ID {
	var p id.ID
	full := n / 8
	copy(p[:full], x[:full])
	if rem := n % 8; rem != 0 {
		p[full] = x[full] & (0xff << (8 - rem))
	}
	return p
}

// flipBit returns x with bit i (from the most significant) inverted.
func flipBit(x id.ID, i int) id.ID {
	x[i/8] ^= 0x80 >> (i % 8)
	return x
}

// byDistance orders contacts by XOR distance to target.
func byDistance(target id.ID) func(a, b Contact) int {
	return func(a, b Contact) int { return id.CompareDistance(target, a.ID, b.ID) }
}
