package kademlia

import (
	"net/netip"
	"slices"
	"time"

	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/routing"
)

// Failure detection. A contact that leaves a query unanswered is
// questionable (suspect) and still used; after routing.BadFails misses in
// a row it is bad, left out of lookups and answers, but kept: the table
// schedules probes of it with jittered exponential back-off
// (routing.ProbeMin doubling to routing.ProbeMax) and the engine pings it
// when one is due. Any answer refutes: a probe's, a lookup's, or one that
// comes after its query timed out (below); and a query from a bad or
// questionable contact that has answered us before makes it good at once
// (routing's entry.seen: BEP 5's rule and SWIM's refutation). So a partition that heals,
// or a load spike that ends, leaves no contact bad for much longer than
// ProbeMax, with no action from anyone.

// probeSpacing is the least time between two rounds of probes, and
// probesPerRound the most pings one round sends: a table full of dead
// contacts (a crawler's) costs at most probesPerRound pings a second.
const (
	probeSpacing   = time.Second
	probesPerRound = 8
)

// probeDue is when the next round of probes may run; false when no
// contact is bad.
func (e *Engine) probeDue() (time.Time, bool) {
	t, ok := e.table.NextProbe()
	if !ok {
		return t, false
	}
	if floor := e.probedAt.Add(probeSpacing); !e.probedAt.IsZero() && t.Before(floor) {
		t = floor
	}
	return t, true
}

// probe pings the bad contacts whose probe is due.
func (e *Engine) probe(now time.Time) {
	if t, ok := e.probeDue(); !ok || now.Before(t) {
		return
	}
	e.probedAt = now
	for _, c := range e.table.Probe(now, probesPerRound, nil) {
		e.stats.Probes++
		e.tablePing(now, c.ID, c.Addr)
	}
}

// late is a query of ours that timed out lately. An answer to it that
// arrives after all still shows that the node is alive at that address:
// under load (ours, the link's or the peer's) answers come late, and
// counting them as failures made two live nodes call each other bad for
// minutes. A reply from a contact must always refute.
type late struct {
	tid    uint16
	to     netip.AddrPort
	nodeID id.ID
	at     time.Time // when it timed out
}

// lateFor is how long a timed-out query may still be answered, and
// maxLate how many such queries are remembered: a few kilobytes at most
// per engine, and nothing once they expire (maintain drops them), since a
// simulator holds a million engines. An answer that comes later still, or
// one crowded out, is not lost for good: the contact's probe asks again.
const (
	lateFor = 15 * time.Second
	maxLate = 32
)

// expireLate forgets the timed-out queries too old to be answered.
func (e *Engine) expireLate(now time.Time) {
	e.late = slices.DeleteFunc(e.late, func(l late) bool { return now.Sub(l.at) >= lateFor })
	if len(e.late) == 0 {
		e.late = nil
	}
}

// timedOut remembers p, which just timed out, for a late answer.
func (e *Engine) timedOut(now time.Time, p *pending) {
	if p.nodeID.IsZero() {
		return
	}
	e.expireLate(now)
	if len(e.late) >= maxLate {
		e.late = slices.Delete(e.late, 0, 1)
	}
	e.late = append(e.late, late{tid: p.tid, to: p.to, nodeID: p.nodeID, at: now})
}

// lateReply handles a response that matched no pending query: if it
// answers a query that timed out lately, from the address we asked and
// with the id we expected, the node is alive.
func (e *Engine) lateReply(now time.Time, tid uint16, from netip.AddrPort, sender id.ID, ro bool) bool {
	i := slices.IndexFunc(e.late, func(l late) bool {
		return l.tid == tid && l.to == from && l.nodeID == sender && now.Sub(l.at) < lateFor
	})
	if i < 0 {
		return false
	}
	e.late = slices.Delete(e.late, i, i+1)
	e.stats.LateReplies++
	if !ro {
		e.observe(now, sender, from, routing.Responded, 0)
	}
	e.silent.forget(sender)
	return true
}
