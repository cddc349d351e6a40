// Package krpc encodes and decodes KRPC, the bencoded query/response
// protocol of the BitTorrent DHT (BEP 5), with the fields of BEP 32 (IPv6),
// BEP 42 (ip), BEP 43 (read-only), BEP 44 (get/put) and BEP 51
// (sample_infohashes).
//
// Decoding is strict and bounded: malformed input is an error, never a
// panic, and a decoded Msg refers to the packet's bytes instead of copying
// them, so that decoding a query allocates nothing once a Msg is reused.
package krpc

import (
	"net/netip"

	"github.com/dhtkit/dhtkit/id"
)

// Kind is the "y" field of a message.
type Kind byte

const (
	Query    Kind = 'q'
	Response Kind = 'r'
	Error    Kind = 'e'
)

// Method is a query method name, interned so that dispatch allocates nothing.
type Method uint8

const (
	MethodUnknown Method = iota
	MethodPing
	MethodFindNode
	MethodGetPeers
	MethodAnnouncePeer
	MethodGet // BEP 44
	MethodPut // BEP 44
	MethodSampleInfohashes
	// dhtkit's key-value methods; a standard peer answers them with 204.
	MethodStore  // dk_store: write records
	MethodFetch  // dk_fetch: read records
	MethodSync   // dk_sync: compare digests (anti-entropy)
	MethodBye    // dk_bye: the sender is leaving the network
	MethodListen // dk_listen: tell the sender of each new version of a key
	MethodNotify // dk_notify: a key the receiver listens to has a new version
	MethodKeys   // dk_keys: list the keys the receiver stores, bucket by bucket
	MethodLoad   // dk_load: how many records and bytes the receiver holds (r.x = {"k","b"})
	MethodCAS    // dk_cas: a conditional write's prepare or accept (replica.CASMsg in x)
	NumMethods
)

var methodNames = [NumMethods]string{
	MethodUnknown:          "",
	MethodPing:             "ping",
	MethodFindNode:         "find_node",
	MethodGetPeers:         "get_peers",
	MethodAnnouncePeer:     "announce_peer",
	MethodGet:              "get",
	MethodPut:              "put",
	MethodSampleInfohashes: "sample_infohashes",
	MethodStore:            "dk_store",
	MethodFetch:            "dk_fetch",
	MethodSync:             "dk_sync",
	MethodBye:              "dk_bye",
	MethodListen:           "dk_listen",
	MethodNotify:           "dk_notify",
	MethodKeys:             "dk_keys",
	MethodLoad:             "dk_load",
	MethodCAS:              "dk_cas",
}

func (m Method) String() string {
	if m < NumMethods && m != MethodUnknown {
		return methodNames[m]
	}
	return "unknown"
}

// Methods lists the known methods, for metrics and tests.
func Methods() []Method {
	ms := make([]Method, 0, NumMethods-1)
	for m := MethodPing; m < NumMethods; m++ {
		ms = append(ms, m)
	}
	return ms
}

// Error codes of BEP 5 and BEP 44.
const (
	CodeGeneric       = 201
	CodeServer        = 202
	CodeProtocol      = 203 // malformed packet, invalid arguments or bad token
	CodeMethodUnknown = 204
	CodeTooBig        = 205 // BEP 44: v is larger than 1000 bytes
	CodeBadSignature  = 206 // BEP 44
	CodeSaltTooBig    = 207 // BEP 44: salt is larger than 64 bytes
	CodeCASMismatch   = 301 // BEP 44
	CodeSeqTooOld     = 302 // BEP 44: seq is less than the stored one
)

// Want is the BEP 32 "want" list as a bit set.
type Want uint8

const (
	WantN4 Want = 1 << iota
	WantN6
)

// NodeInfo is a contact: a node id and its UDP address, as carried in the
// compact "nodes" (26 bytes each) and "nodes6" (38 bytes each) strings.
type NodeInfo struct {
	ID   id.ID
	Addr netip.AddrPort
}

// Args are the arguments of a query ("a"). Byte slices refer to the decoded
// packet. Has records which optional fields were present.
type Args struct {
	Has         Field
	ID          id.ID
	Target      id.ID // find_node, get, sample_infohashes
	InfoHash    id.ID // get_peers, announce_peer
	Port        int
	ImpliedPort bool
	Token       []byte
	Want        Want
	// BEP 44
	V    []byte // the raw bencoded value
	K    []byte // ed25519 public key, 32 bytes
	Sig  []byte // 64 bytes
	Salt []byte
	Seq  int64
	CAS  int64
	// X is the raw bencoded payload of dhtkit's own methods.
	X []byte
	// BEP 33: get_peers asks for Bloom filters of the swarm (Scrape) or
	// for leechers first (NoSeed); announce_peer says the peer seeds.
	Scrape bool
	NoSeed bool
	Seed   bool
}

// Return is the body of a response ("r").
type Return struct {
	Has    Field
	ID     id.ID
	Nodes  []NodeInfo // IPv4 contacts
	Nodes6 []NodeInfo // IPv6 contacts
	Token  []byte
	Values []netip.AddrPort
	// BEP 44
	V   []byte
	K   []byte
	Sig []byte
	Seq int64
	// BEP 51
	Samples  []id.ID
	Interval int
	Num      int
	// X is the raw bencoded payload of dhtkit's own methods.
	X []byte
	// BEP 33: Bloom filters (BloomBytes each) of the seeds and of the
	// peers the responder stores for the infohash.
	BFsd []byte
	BFpe []byte
}

// Field is a bit set of the optional fields present in Args or Return.
type Field uint32

const (
	HasID Field = 1 << iota
	HasTarget
	HasInfoHash
	HasPort
	HasImpliedPort
	HasToken
	HasWant
	HasV
	HasK
	HasSig
	HasSalt
	HasSeq
	HasCAS
	HasNodes
	HasNodes6
	HasValues
	HasSamples
	HasInterval
	HasNum
	HasX
	HasScrape // BEP 33
	HasNoSeed
	HasSeed
	HasBFsd
	HasBFpe
)

// BloomBytes is the size of a BEP 33 Bloom filter: m = 2048 bits.
const BloomBytes = 256

// KRPCError is the body of an error message ("e"): a code and a message.
type KRPCError struct {
	Code int
	Msg  []byte
}

// Msg is one KRPC message. The zero value is an empty message; Decode fills
// it in place, reusing its slices' capacity.
type Msg struct {
	T     []byte // transaction id
	Y     Kind
	Q     Method // for queries; MethodUnknown with QName set for others
	QName []byte // the method name as sent
	A     Args
	R     Return
	E     KRPCError
	V     []byte         // client version ("v"), optional
	IP    netip.AddrPort // BEP 42 "ip": the receiver's address as the sender sees it
	RO    bool           // BEP 43: the sender is read-only
	// Net is dhtkit's private network name ("nw"). Standard BEP 5 peers
	// never send it; a private node drops messages whose Net differs from
	// its own, so a private network never mixes with the public DHT.
	Net []byte
}

// Reset clears m for reuse, keeping the capacity of its slices.
func (m *Msg) Reset() {
	nodes, nodes6, values, samples := m.R.Nodes[:0], m.R.Nodes6[:0], m.R.Values[:0], m.R.Samples[:0]
	*m = Msg{}
	m.R.Nodes, m.R.Nodes6, m.R.Values, m.R.Samples = nodes, nodes6, values, samples
}

// SenderID returns the id of the node that sent m, from "a" or "r".
func (m *Msg) SenderID() (id.ID, bool) {
	switch m.Y {
	case Query:
		return m.A.ID, m.A.Has&HasID != 0
	case Response:
		return m.R.ID, m.R.Has&HasID != 0
	}
	return id.ID{}, false
}
