package kademlia

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/krpc"
	"github.com/dhtkit/dhtkit/replica"
	"github.com/dhtkit/dhtkit/store"
)

// OpID names an operation started with Engine.Start.
type OpID uint64

// Op is an operation a user asks of the engine. The concrete types are
// Ping, FindNode, GetPeers, Announce, SampleInfohashes and Bootstrap, the
// BEP 44 PutItem and GetItem, and the key-value KVPut, KVGet, KVListen and
// Handover.
type Op interface{ isOp() }

// Ping sends one ping to Addr; the Result carries the responder's id.
type Ping struct{ Addr netip.AddrPort }

// FindNode is an iterative lookup of the K nodes closest to Target. With
// Trace, the Result lists every query of the lookup (Result.Trace).
type FindNode struct {
	Target id.ID
	Trace  bool
}

// GetPeers is an iterative get_peers lookup: the peers stored for InfoHash
// and the K closest nodes (with their tokens, kept for a later announce).
// With Scrape, every node is asked for BEP 33 filters and Result.Scrape
// estimates the swarm; with NoSeed, for peers that do not seed first.
type GetPeers struct {
	InfoHash id.ID
	Scrape   bool
	NoSeed   bool
}

// Announce runs a get_peers lookup and then announce_peer on the K closest
// nodes that returned a token.
type Announce struct {
	InfoHash    id.ID
	Port        int
	ImpliedPort bool // ask peers to use the UDP source port instead (BEP 5 implied_port)
	Seed        bool // the peer has the whole torrent (BEP 33 seed=1)
}

// SampleInfohashes sends one BEP 51 sample_infohashes query to Addr.
type SampleInfohashes struct {
	Addr   netip.AddrPort
	Target id.ID
}

// PutItem stores a BEP 44 item on the K nodes closest to its target: a
// get lookup collects write tokens, then put goes to each of those nodes.
// With UseCAS, nodes refuse the put unless their stored seq equals CAS.
type PutItem struct {
	Item   Item
	CAS    int64
	UseCAS bool
}

// GetItem looks up a BEP 44 item. For a mutable item, Salt must be the
// salt its target was made with (the response does not carry it) and the
// result is the verified item with the highest seq found.
type GetItem struct {
	Target id.ID
	Salt   []byte
}

// Bootstrap adds Addrs to the bootstrap list and joins through them: every
// address is retried with back-off until one answers, then the engine looks
// up its own id to fill its table. The Result comes when that lookup ends.
type Bootstrap struct{ Addrs []netip.AddrPort }

func (Ping) isOp()             {}
func (FindNode) isOp()         {}
func (GetPeers) isOp()         {}
func (Announce) isOp()         {}
func (SampleInfohashes) isOp() {}

// Load asks the node at Addr how many records and bytes it holds for
// the network (dk_load); the Result carries them in Load.
type Load struct{ Addr netip.AddrPort }

func (Load) isOp()      {}
func (Bootstrap) isOp() {}
func (PutItem) isOp()   {}
func (GetItem) isOp()   {}

// Result is the outcome of an operation.
type Result struct {
	Op  OpID
	Err error // nil, ErrTimeout, ErrNoContacts, ErrClosed or a *RemoteError

	ID       id.ID            // Ping, SampleInfohashes: the responder's id
	Nodes    []krpc.NodeInfo  // lookups: the closest nodes that answered, nearest first
	Peers    []netip.AddrPort // GetPeers, Announce: peers found, without duplicates
	Stored   int              // Announce, PutItem: nodes that acknowledged the store
	Item     *Item            // GetItem: the item found
	Record   *store.Record    // KVGet: the newest version found
	Version  store.Version    // KVPut: the version written; KVGet: the newest seen
	Holders  []Holder         // KVGet: what each replica answered
	Records  []store.Record   // KVGet with All: each value's newest record, newest first
	Fetch    []string         // KVGet with All: record keys of values to read one by one
	Acks     int              // KVPut: replicas holding the write; Handover: values handed over
	Partial  bool             // KVGet: fewer than ReadQuorum replicas answered
	Samples  []id.ID          // SampleInfohashes
	Entries  []KeyEntry       // KVKeys: the keys the node stores in the buckets it answered for
	Next     int              // KVKeys: the first bucket to ask for next (KeyBuckets: none)
	Num      int              // SampleInfohashes: infohashes the responder holds
	Interval time.Duration    // SampleInfohashes: how long before asking it again
	Load     krpc.Load        // Load: what the responder holds
	Scrape   *Scrape          // GetPeers with Scrape: the swarm's filters, merged

	Stats LookupStats
	// Trace is a traced FindNode's queries, in the order their answers
	// (or failures) came: what a student reads as the lookup's path.
	Trace []Hop
}

// Hop is one query of a traced lookup.
type Hop struct {
	Node  krpc.NodeInfo   // the node asked (its ID is zero when only its address was known)
	Depth int             // answers in the chain that led to it: 0 for a node the asker knew
	RTT   time.Duration   // from the query to its answer; zero when none came
	Nodes []krpc.NodeInfo // the nodes it answered with (at most K)
	Done  bool            // Chord: its answer was the target's successor list
	Err   string          // why no answer counts: "timeout" or the error it sent; "" when it answered
}

// TraceHop appends h to a traced lookup's trace, with a copy of the first
// k nodes it answered with (the message they came in is reused).
func TraceHop(trace []Hop, h Hop, nodes []krpc.NodeInfo, k int) []Hop {
	h.Nodes = append([]krpc.NodeInfo(nil), nodes[:min(len(nodes), k)]...)
	return append(trace, h)
}

// LookupStats describes how an operation went.
type LookupStats struct {
	Queries   int           // queries sent
	Responses int           // responses received
	Timeouts  int           // queries that timed out
	Hops      int           // longest chain of responses that led to the result
	Duration  time.Duration // from Start to the Result
}

// Packet is a datagram to send. Data is valid until the next call on the
// engine that produced it.
type Packet struct {
	To   netip.AddrPort
	Data []byte
}

// Ready is what the engine asks its driver to do now.
type Ready struct {
	Packets []Packet
	Results []Result
	// Events are what running operations observed (KVListen: each new
	// version of its key), for observers; a driver with none ignores them.
	Events []Event
	// Commit, handed out only to a driver that asked for AsyncCommits, is
	// a group commit to Run off the engine's lock and hand back through
	// Committed; the writes in it are acknowledged only then.
	Commit *replica.Batch
}

// Event is something an operation that keeps running reports before its
// one final Result.
type Event struct {
	Op OpID
	// Record is a new version of a KVListen's key: newer than every one
	// reported before for that op. A delete is a tombstone (Deleted set).
	// Record.Value is the event's own copy.
	Record store.Record
	// Listening, with no Record, tells once that enough of the key's
	// replicas hold the registration for every write acknowledged from
	// now on to be reported (replica.Subscription.Expect).
	Listening bool
}

// Errors an operation can end with.
var (
	ErrTimeout    = errors.New("kademlia: no response")
	ErrNoContacts = errors.New("kademlia: no nodes to query: the routing table has no usable contact (bootstrap first, or wait: bad contacts are probed until they answer)")
	ErrClosed     = errors.New("kademlia: engine closed")
	ErrReadOnly   = errors.New("kademlia: read-only node")
	ErrCanceled   = errors.New("kademlia: operation canceled")
	ErrNotStored  = errors.New("kademlia: no node accepted the store")
	ErrNotFound   = errors.New("kademlia: not found")

	errBadPort   = errors.New("kademlia: announce: port must be 1-65535 (or implied)")
	errBadAddr   = errors.New("kademlia: invalid address")
	errBusy      = errors.New("kademlia: too many queries in flight")
	errUnknownOp = errors.New("kademlia: unknown operation")
)

// RemoteError is a KRPC error returned by the node queried.
type RemoteError struct {
	Code int
	Msg  string
}

func (e *RemoteError) Error() string {
	return fmt.Sprintf("kademlia: remote error %d: %s", e.Code, e.Msg)
}

// Is lets errors.Is see, through a remote error, the store error that the
// remote node reported: a replica's full disk is store.ErrFull here too.
func (e *RemoteError) Is(target error) bool {
	switch e.Code {
	case krpc.CodeTooBig:
		return target == store.ErrTooLarge || target == ErrItemTooBig
	case codeCapacity:
		return target == store.ErrCapacity
	case codeQuota:
		return target == store.ErrQuota
	case codeDiskFull:
		return target == store.ErrFull
	case codeRefused:
		return target == store.ErrRefused
	case krpc.CodeBadSignature:
		return target == ErrBadSignature
	}
	return false
}

// Direction says whether a tapped message came in or went out.
type Direction uint8

const (
	In Direction = iota
	Out
)
