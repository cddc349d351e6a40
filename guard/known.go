package guard

import (
	"net/netip"

	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/internal/lru"
)

// Known remembers, per address, the node that answered one of our queries
// there (with random transaction ids, proof that it receives at that
// address) and the write token it last gave us. It is bounded: past its
// size the least recently heard of is forgotten, so a flood of answers
// costs no memory beyond it. The zero value holds DefaultKnown entries.
type Known struct {
	Max     int
	entries lru.Map[netip.AddrPort, known]
}

type known struct {
	node  id.ID
	token []byte
}

// DefaultKnown is the size of a Known whose Max is zero.
const DefaultKnown = 4096

func (k *Known) entry(addr netip.AddrPort) *known {
	k.entries.Max = k.Max
	if k.entries.Max <= 0 {
		k.entries.Max = DefaultKnown
	}
	return k.entries.Touch(addr)
}

// Answered notes that node answered a query of ours at addr. Another node
// at the address replaces the one before, and its token.
func (k *Known) Answered(addr netip.AddrPort, node id.ID) {
	e := k.entry(addr)
	if e.node != node {
		e.node, e.token = node, nil
	}
}

// Proven reports whether node has answered a query of ours at addr.
func (k *Known) Proven(addr netip.AddrPort, node id.ID) bool {
	e, ok := k.entries.Peek(addr)
	return ok && !node.IsZero() && e.node == node
}

// SetToken keeps the write token the node at addr gave us.
func (k *Known) SetToken(addr netip.AddrPort, tok []byte) {
	e := k.entry(addr)
	e.token = append(e.token[:0], tok...)
}

// Token is the write token the node at addr gave us, or nil.
func (k *Known) Token(addr netip.AddrPort) []byte {
	if e, ok := k.entries.Peek(addr); ok {
		return e.token
	}
	return nil
}

// Len is the number of addresses remembered.
func (k *Known) Len() int { return k.entries.Len() }
