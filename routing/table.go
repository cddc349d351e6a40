// Package routing holds the routing tables a Kademlia engine chooses from:
// the BEP 5 k-bucket table, and a research table that keeps every node it
// has ever seen (LightDHT's choice). Tables do no I/O: when a full bucket
// needs a questionable node pinged before it can be evicted, the table says
// so and the engine sends the ping.
package routing

import (
	"net/netip"
	"time"

	"github.com/dhtkit/dhtkit/id"
)

// Source says how we came to hear of a node.
type Source uint8

const (
	// Learned: another node listed it in a reply; it has not answered us yet.
	Learned Source = iota
	// Queried: it sent us a query.
	Queried
	// Responded: it answered a query of ours. Only this makes a node good.
	Responded
)

func (s Source) String() string {
	switch s {
	case Learned:
		return "learned"
	case Queried:
		return "queried"
	case Responded:
		return "responded"
	}
	return "unknown"
}

// State is the BEP 5 classification of a contact.
type State uint8

const (
	Good         State = iota // responded within the last 15 minutes (or queried us, having responded once)
	Questionable              // silent for 15 minutes, or never responded
	Bad                       // failed to respond to several queries in a row
)

func (s State) String() string {
	switch s {
	case Good:
		return "good"
	case Questionable:
		return "questionable"
	case Bad:
		return "bad"
	}
	return "unknown"
}

// Contact is the view of one routing-table entry.
type Contact struct {
	ID        id.ID
	Addr      netip.AddrPort
	State     State
	LastSeen  time.Time     // last reply or query from it
	Responded bool          // it has answered at least one of our queries
	Fails     int           // consecutive unanswered queries
	RTT       time.Duration // smoothed round-trip time; 0 when unknown
}

// Bucket is the view of one k-bucket.
type Bucket struct {
	Prefix       id.ID // the bucket's range: ids sharing PrefixLen bits with Prefix
	PrefixLen    int
	LastChanged  time.Time
	Contacts     []Contact
	Replacements []Contact
}

// Table is a routing table. Implementations are not safe for concurrent
// use: one engine owns one table.
//
// A table reads no clock. Methods that take no time (Closest, Get, Buckets)
// report states as of the latest time the table was handed, which in an
// engine is the latest event.
type Table interface {
	// Self is the id of the node that owns the table.
	Self() id.ID
	// Len is the number of contacts, replacements excluded.
	Len() int
	// Observe records that a node exists (how says why we think so) and
	// returns a node to ping when a full bucket holds a questionable node
	// that must answer or make way (BEP 5's ping-before-evict), or the
	// node itself when its query just refuted its being bad (the ping
	// confirms that it answers too); ping is false otherwise. The engine reports the outcome of the ping through
	// Observe (Responded) or Failed. A known id heard from another address
	// keeps its old address unless that one has gone bad. rtt is a
	// round-trip sample for a response, 0 when there is none.
	Observe(now time.Time, id id.ID, addr netip.AddrPort, how Source, rtt time.Duration) (toPing Contact, ping bool)
	// Failed records that a query to the node timed out. A node that fails
	// repeatedly turns bad and is replaced from the replacement cache.
	Failed(now time.Time, id id.ID)
	// Remove drops a node, e.g. one that changed its id or address.
	Remove(id id.ID)
	// Closest appends to dst up to n contacts closest to target by XOR
	// distance, nearest first, leaving out bad nodes.
	Closest(target id.ID, n int, dst []Contact) []Contact
	// Get returns the contact with the given id.
	Get(id id.ID) (Contact, bool)
	// Probe appends to dst up to n bad contacts whose next probe is due
	// at now. The engine pings each and reports the outcome through
	// Observe (an answer makes the contact good again) or Failed (which
	// doubles the wait before the next probe, up to ProbeMax). A contact
	// handed out is not handed out again before its next probe time even
	// if the engine reports nothing. Bad contacts are kept for this: a
	// table whose contacts all went bad in a partition or a load spike
	// still knows whom to ask once the network is back.
	Probe(now time.Time, n int, dst []Contact) []Contact
	// NextProbe is the earliest time a probe may be due; false when no
	// contact is bad.
	NextProbe() (time.Time, bool)
	// Refresh returns random targets inside buckets that have not changed
	// for interval, and marks those buckets refreshed as of now.
	Refresh(now time.Time, interval time.Duration, dst []id.ID) []id.ID
	// Buckets returns a snapshot of the table, for inspection.
	Buckets() []Bucket
}

// AllCloser is a Table that also lists the bad contacts it has not
// evicted yet: the nodes it knows to exist, reachable or not. A key's
// replica set is counted among them (kademlia's quorum rule), so that a
// node cut off from part of the network does not take the nodes it can
// reach for the whole set.
type AllCloser interface {
	// ClosestAll is Closest, bad contacts included.
	ClosestAll(target id.ID, n int, dst []Contact) []Contact
}
