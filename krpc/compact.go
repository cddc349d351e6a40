package krpc

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"

	"github.com/dhtkit/dhtkit/id"
)

// Sizes of the compact encodings of BEP 5 and BEP 32.
const (
	CompactAddrLen  = 6           // IPv4 address and port
	CompactAddr6Len = 18          // IPv6 address and port
	CompactNodeLen  = id.Len + 6  // an entry of "nodes"
	CompactNode6Len = id.Len + 18 // an entry of "nodes6"
)

// ParseCompactAddr decodes a compact address: 4 or 16 address bytes followed
// by the port, big-endian. IPv4-mapped IPv6 addresses are unmapped, so that
// an address has one representation whichever family carried it.
func ParseCompactAddr(b []byte) (netip.AddrPort, error) {
	switch len(b) {
	case CompactAddrLen:
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[:4])), binary.BigEndian.Uint16(b[4:])), nil
	case CompactAddr6Len:
		return netip.AddrPortFrom(netip.AddrFrom16([16]byte(b[:16])).Unmap(), binary.BigEndian.Uint16(b[16:])), nil
	}
	return netip.AddrPort{}, fmt.Errorf("krpc: compact address of %d bytes, want 6 or 18: %w", len(b), ErrLength)
}

// AppendCompactAddr appends the compact form of a: 6 bytes for an IPv4
// (or IPv4-mapped) address, 18 for IPv6. It appends nothing when a is not
// valid, so callers that write a length prefix must check a.IsValid first.
func AppendCompactAddr(dst []byte, a netip.AddrPort) []byte {
	ip := a.Addr().Unmap()
	switch {
	case ip.Is4():
		b := ip.As4()
		dst = append(dst, b[:]...)
	case ip.Is6():
		b := ip.As16()
		dst = append(dst, b[:]...)
	default:
		return dst
	}
	return binary.BigEndian.AppendUint16(dst, a.Port())
}

// appendAddr16 appends a as 16 address bytes and the port, mapping IPv4
// addresses into IPv6, for "nodes6". a must be valid.
func appendAddr16(dst []byte, a netip.AddrPort) []byte {
	b := a.Addr().As16()
	dst = append(dst, b[:]...)
	return binary.BigEndian.AppendUint16(dst, a.Port())
}

// ParseCompactNodes appends to dst the contacts of a compact "nodes" string:
// 26 bytes each, a 20-byte id then an IPv4 address and port. It reuses dst's
// capacity, so it allocates nothing when dst is large enough.
func ParseCompactNodes(dst []NodeInfo, b []byte) ([]NodeInfo, error) {
	return parseNodes(dst, b, CompactNodeLen)
}

// ParseCompactNodes6 is ParseCompactNodes for BEP 32's "nodes6": 38 bytes
// each, with an IPv6 address.
func ParseCompactNodes6(dst []NodeInfo, b []byte) ([]NodeInfo, error) {
	return parseNodes(dst, b, CompactNode6Len)
}

func parseNodes(dst []NodeInfo, b []byte, size int) ([]NodeInfo, error) {
	if len(b)%size != 0 {
		return dst, fmt.Errorf("krpc: compact nodes of %d bytes, not a multiple of %d: %w", len(b), size, ErrLength)
	}
	dst = slices.Grow(dst, len(b)/size)
	for ; len(b) > 0; b = b[size:] {
		n := NodeInfo{ID: id.ID(b[:id.Len])}
		n.Addr, _ = ParseCompactAddr(b[id.Len:size]) // the length is right by construction
		dst = append(dst, n)
	}
	return dst, nil
}

// AppendCompactNode appends the compact form of n: 26 bytes when its address
// is IPv4, 38 when IPv6. It appends nothing when n.Addr is not valid.
func AppendCompactNode(dst []byte, n NodeInfo) []byte {
	if !n.Addr.IsValid() {
		return dst
	}
	dst = append(dst, n.ID[:]...)
	return AppendCompactAddr(dst, n.Addr)
}

// AppendCompactNodes appends the "nodes" string body for nodes: the 26-byte
// form of each node with an IPv4 address, in order. Other nodes are left
// out, since "nodes" cannot carry them; they belong in "nodes6".
func AppendCompactNodes(dst []byte, nodes []NodeInfo) []byte {
	for _, n := range nodes {
		if n.Addr.Addr().Unmap().Is4() {
			dst = AppendCompactNode(dst, n)
		}
	}
	return dst
}

// AppendCompactNodes6 appends the "nodes6" string body for nodes: the
// 38-byte form of each valid node, IPv4 addresses mapped into IPv6.
func AppendCompactNodes6(dst []byte, nodes []NodeInfo) []byte {
	for _, n := range nodes {
		if n.Addr.IsValid() {
			dst = append(dst, n.ID[:]...)
			dst = appendAddr16(dst, n.Addr)
		}
	}
	return dst
}

// compactNodesLen returns the length of AppendCompactNodes(nil, nodes).
func compactNodesLen(nodes []NodeInfo) int {
	n := 0
	for _, x := range nodes {
		if x.Addr.Addr().Unmap().Is4() {
			n += CompactNodeLen
		}
	}
	return n
}

// compactNodes6Len returns the length of AppendCompactNodes6(nil, nodes).
func compactNodes6Len(nodes []NodeInfo) int {
	n := 0
	for _, x := range nodes {
		if x.Addr.IsValid() {
			n += CompactNode6Len
		}
	}
	return n
}
