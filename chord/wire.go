package chord

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/krpc"
	"github.com/dhtkit/dhtkit/replica"
)

// Chord's methods travel as KRPC queries with their own names (krpc
// decodes them as MethodUnknown with QName set) and their arguments and
// results bencoded under "x", as dhtkit's key-value methods do, so that the
// standard codec carries them unchanged:
//
//	ch_find_successor  a.x: {"t": target}        r.x: {"d": 0|1, "n": [node, ...], "a": [node, ...], "l": [node, ...], "u": 0|1}
//	ch_get_predecessor (no x)                    r.x: {"p": node, "s": [node, ...], "b": id, "q": [node, ...]}
//	ch_notify          (no x)                    r.x: {"p": node}
//	ch_leave           a.x: {"p": node, "s": [node, ...], "b": id}   (no x)
//	ch_hint            (no x)                    (no x)
//	dk_sync            the replication layer's tree exchange (package replica)
//
// A node is a byte string: its 20-byte id followed by its compact address
// (6 bytes IPv4, 18 bytes IPv6), or the id alone for the sender itself,
// whose address the receiver knows better than the sender does (NAT).
// In a ch_find_successor reply, "d" says whether "n" is the answer (the
// target's successor and the nodes after it) or the next nodes to ask
// (those of the responder's nodes that most closely precede the target);
// "a", with d 0, is a partial answer: the target's successor and fewer
// than K nodes after it, which the asker falls back on should the next
// nodes not answer. "l", with an answer (full or partial), lists the
// nodes the responder lost (stopped answering it, less than DownFor ago)
// that lie among the target's first K nodes: they are still members of
// the target's replica set, down, by the quorum rule (kv.go,
// replicaSet), which the asker counts too. A responder cut off with part
// of the ring has them in no list, and an asker that never heard of
// them counted its quorum among the nodes on its own side. "u" 1 says
// the partial answer vouches for no member: it names only a node to ask,
// since nodes the responder never heard of may lie before it (blind.go).
//
// With a successor list, "b" is the id of its first entry past a blind
// arc (blind.go), and "q" the predecessor the sender lost last and the
// one before it, while the first counts as down. Peers that know none of
// "l", "u", "b" and "q" ignore them.
//
// ch_hint tells the receiver that the ring changed in front of it: it
// runs its next stabilize at once (hint.go). A peer that does not know
// it answers error 204, and nothing changes.
//
// dk_sync is replica maintenance (see sync.go), the same exchange as
// Kademlia's: its payloads are package replica's.
//
// dk_listen and dk_notify are pushed listening, the payloads package
// replica's (replica/listen.go), as Kademlia's.
//
// The key-value methods are dhtkit's dk_store and dk_fetch with the
// payloads of package kademlia: {"recs": [rec, ...]} / {"ok": [0|1, ...]}
// and {"k": key} / {"recs": [rec, ...]}, rec being {"k", "v", "t", "w",
// "e", "d"}. Plain KRPC ping checks a node's liveness.
const (
	methodFindSuccessor  = "ch_find_successor"
	methodGetPredecessor = "ch_get_predecessor"
	methodNotify         = "ch_notify"
	methodLeave          = "ch_leave"
	methodHint           = "ch_hint"
)

// method is the engine's own enumeration of the methods it speaks.
type method uint8

const (
	mUnknown method = iota
	mPing
	mFindSuccessor
	mGetPredecessor
	mNotify
	mLeave
	mHint
	mStore
	mFetch
	mSync
	mLoad
	mCAS
	mListen   // dk_listen (listen.go)
	mKVNotify // dk_notify, to a listener (ch_notify is the ring's)
	numMethods
)

var methodNames = [numMethods]string{
	mUnknown:        "unknown",
	mPing:           "ping",
	mFindSuccessor:  methodFindSuccessor,
	mGetPredecessor: methodGetPredecessor,
	mNotify:         methodNotify,
	mLeave:          methodLeave,
	mHint:           methodHint,
	mStore:          "dk_store",
	mFetch:          "dk_fetch",
	mSync:           replica.Method,
	mLoad:           "dk_load",
	mCAS:            "dk_cas",
	mListen:         "dk_listen",
	mKVNotify:       "dk_notify",
}

func (m method) String() string { return methodNames[m] }

// own reports whether m is one of dhtkit's key-value methods, whose
// answers to an unproven source stay within guard.MaxAmplification of
// the query (the ring's own methods are routing, like find_node: they
// answer within the byte budgets only).
func (m method) own() bool {
	return m == mStore || m == mFetch || m == mSync || m == mLoad || m == mListen
}

// tokenRotation is how often the secret of our write tokens changes: a
// token lives 5 to 10 minutes, as Kademlia's default.
const tokenRotation = 5 * time.Minute

// methodOf classifies a decoded query.
func methodOf(q *krpc.Msg) method {
	switch q.Q {
	case krpc.MethodPing:
		return mPing
	case krpc.MethodStore:
		return mStore
	case krpc.MethodFetch:
		return mFetch
	case krpc.MethodLoad:
		return mLoad
	case krpc.MethodSync:
		return mSync
	case krpc.MethodCAS:
		return mCAS
	case krpc.MethodListen:
		return mListen
	case krpc.MethodNotify:
		return mKVNotify
	case krpc.MethodUnknown:
		switch string(q.QName) {
		case methodFindSuccessor:
			return mFindSuccessor
		case methodGetPredecessor:
			return mGetPredecessor
		case methodNotify:
			return mNotify
		case methodLeave:
			return mLeave
		case methodHint:
			return mHint
		}
	}
	return mUnknown
}

// setMethod names m in an outgoing query.
func setMethod(q *krpc.Msg, m method) {
	switch m {
	case mPing:
		q.Q = krpc.MethodPing
	case mStore:
		q.Q = krpc.MethodStore
	case mFetch:
		q.Q = krpc.MethodFetch
	case mSync:
		q.Q = krpc.MethodSync
	case mCAS:
		q.Q = krpc.MethodCAS
	case mListen:
		q.Q = krpc.MethodListen
	case mKVNotify:
		q.Q = krpc.MethodNotify
	default:
		q.Q = krpc.MethodUnknown
		q.QName = []byte(methodNames[m])
	}
}

var errBadPayload = errors.New("chord: malformed payload")

// maxNodesIn bounds the nodes accepted from one list: a peer cannot make
// us hold more than a datagram's worth.
const maxNodesIn = 64

// encodeNode is the wire form of n; self (the sender) travels as its id.
func encodeNode(n krpc.NodeInfo, self id.ID) []byte {
	b := make([]byte, 0, id.Len+krpc.CompactAddr6Len)
	b = append(b, n.ID[:]...)
	if n.ID != self {
		b = krpc.AppendCompactAddr(b, n.Addr)
	}
	return b
}

func encodeNodes(ns []krpc.NodeInfo, self id.ID) []any {
	out := make([]any, len(ns))
	for i, n := range ns {
		out[i] = encodeNode(n, self)
	}
	return out
}

// decodeNode reads a node sent by sender (id, address): an id alone is
// the sender itself.
func decodeNode(v any, sender id.ID, from netip.AddrPort) (krpc.NodeInfo, error) {
	b, ok := v.([]byte)
	if !ok || len(b) < id.Len {
		return krpc.NodeInfo{}, fmt.Errorf("%w: node is not a string of at least 20 bytes", errBadPayload)
	}
	n := krpc.NodeInfo{ID: id.ID(b[:id.Len])}
	if len(b) == id.Len {
		if n.ID != sender {
			return n, fmt.Errorf("%w: node %v without an address", errBadPayload, n.ID)
		}
		n.Addr = from
		return n, nil
	}
	a, err := krpc.ParseCompactAddr(b[id.Len:])
	if err != nil {
		return n, fmt.Errorf("%w: %w", errBadPayload, err)
	}
	if !a.Addr().IsValid() || a.Port() == 0 || a.Addr().IsUnspecified() {
		return n, fmt.Errorf("%w: node %v at unusable address %v", errBadPayload, n.ID, a)
	}
	if n.ID == sender {
		a = from // the sender's own view of its address is worth less than ours
	}
	n.Addr = a
	return n, nil
}

// decodeNodes reads a list of nodes; absent means empty.
func decodeNodes(v any, sender id.ID, from netip.AddrPort) ([]krpc.NodeInfo, error) {
	if v == nil {
		return nil, nil
	}
	list, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("%w: node list is not a list", errBadPayload)
	}
	if len(list) > maxNodesIn {
		list = list[:maxNodesIn]
	}
	out := make([]krpc.NodeInfo, 0, len(list))
	for _, x := range list {
		n, err := decodeNode(x, sender, from)
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, nil
}

// decodeX decodes the "x" payload of a message into a dictionary
// (replica.DecodeX, shared with Kademlia).
func decodeX(x []byte) (map[string]any, error) {
	d, err := replica.DecodeX(x)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errBadPayload, err)
	}
	return d, nil
}

func encodeX(dst []byte, v map[string]any) []byte { return replica.EncodeX(dst, v) }

// stepReply is a decoded ch_find_successor reply.
type stepReply struct {
	done    bool
	nodes   []krpc.NodeInfo
	partial []krpc.NodeInfo
	gone    []krpc.NodeInfo // "l": members of the target's replica set the responder lost
	blind   bool            // "u": partial names only a node to ask (blind.go)
}

func decodeStep(x []byte, sender id.ID, from netip.AddrPort) (stepReply, error) {
	d, err := decodeX(x)
	if err != nil {
		return stepReply{}, err
	}
	var r stepReply
	for _, f := range []struct {
		key string
		to  *bool
	}{{"d", &r.done}, {"u", &r.blind}} {
		switch v := d[f.key].(type) {
		case nil:
		case int64:
			*f.to = v == 1
		default:
			return r, fmt.Errorf("%w: %s is not an integer", errBadPayload, f.key)
		}
	}
	if r.nodes, err = decodeNodes(d["n"], sender, from); err != nil {
		return r, err
	}
	if r.partial, err = decodeNodes(d["a"], sender, from); err != nil {
		return r, err
	}
	if r.gone, err = decodeNodes(d["l"], sender, from); err != nil {
		return r, err
	}
	if r.done && len(r.nodes) == 0 {
		return r, fmt.Errorf("%w: an answer without nodes", errBadPayload)
	}
	return r, nil
}

// neighbors is a decoded ch_get_predecessor reply or ch_leave argument.
type neighbors struct {
	pred  krpc.NodeInfo // zero ID: none
	succs []krpc.NodeInfo
	blind id.ID // "b": the first of succs past a blind arc (blind.go); zero: none
	// lostPreds ("q"): the predecessor the sender lost last, and the one
	// before it, while it still counts as down (blind.go)
	lostPreds []krpc.NodeInfo
}

func decodeNeighbors(x []byte, sender id.ID, from netip.AddrPort) (neighbors, error) {
	var nb neighbors
	d, err := decodeX(x)
	if err != nil {
		return nb, err
	}
	if p, ok := d["p"]; ok {
		if nb.pred, err = decodeNode(p, sender, from); err != nil {
			return nb, err
		}
	}
	for _, f := range []struct {
		key string
		to  *id.ID
	}{{"b", &nb.blind}} {
		if v, ok := d[f.key]; ok {
			b, _ := v.([]byte)
			if len(b) != id.Len {
				return nb, fmt.Errorf("x.%s: want a 20-byte node id", f.key)
			}
			*f.to = id.ID(b)
		}
	}
	if q, ok := d["q"]; ok {
		if nb.lostPreds, err = decodeNodes(q, sender, from); err != nil {
			return nb, err
		}
		if len(nb.lostPreds) > 2 {
			return nb, errors.New("x.q: want at most 2 nodes")
		}
	}
	nb.succs, err = decodeNodes(d["s"], sender, from)
	return nb, err
}

// encodeNeighbors encodes nb; its zero ids are left out.
func encodeNeighbors(dst []byte, nb neighbors, self id.ID) []byte {
	m := map[string]any{"s": encodeNodes(nb.succs, self)}
	if !nb.pred.ID.IsZero() {
		m["p"] = encodeNode(nb.pred, self)
	}
	if !nb.blind.IsZero() {
		m["b"] = nb.blind[:]
	}
	if len(nb.lostPreds) > 0 {
		m["q"] = encodeNodes(nb.lostPreds, self)
	}
	return encodeX(dst, m)
}
