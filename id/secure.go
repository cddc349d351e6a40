package id

import (
	"hash/crc32"
	"io"
	"net/netip"
)

// BEP 42 ties a node id to the node's external IP, so that an attacker
// cannot choose ids next to a victim target. The first 21 bits of the id
// come from CRC32-C of the masked IP and a random r (0..7), the last byte
// is r itself.

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

var (
	mask4 = []byte{0x03, 0x0f, 0x3f, 0xff}
	mask6 = []byte{0x01, 0x03, 0x07, 0x0f, 0x1f, 0x3f, 0x7f, 0xff}
)

func secureCRC(ip netip.Addr, r byte) (uint32, bool) {
	ip = ip.Unmap()
	var buf [8]byte
	var n int
	switch {
	case ip.Is4():
		a := ip.As4()
		for i := range 4 {
			buf[i] = a[i] & mask4[i]
		}
		n = 4
	case ip.Is6():
		a := ip.As16()
		for i := range 8 {
			buf[i] = a[i] & mask6[i]
		}
		n = 8
	default:
		return 0, false
	}
	buf[0] |= (r & 7) << 5
	return crc32.Checksum(buf[:n], castagnoli), true
}

// Secure returns a BEP 42 node id for the external address ip, random
// elsewhere (from rnd, or crypto/rand when nil).
func Secure(rnd io.Reader, ip netip.Addr) ID {
	x := Random(rnd)
	r := x[Len-1] & 7
	crc, ok := secureCRC(ip, r)
	if !ok {
		return x
	}
	x[0] = byte(crc >> 24)
	x[1] = byte(crc >> 16)
	x[2] = byte(crc>>8)&0xf8 | x[2]&0x07
	return x
}

// IsSecure reports whether x satisfies BEP 42 for ip. Addresses BEP 42
// exempts (loopback, private and link-local ranges) always pass.
func IsSecure(x ID, ip netip.Addr) bool {
	ip = ip.Unmap()
	if Exempt(ip) {
		return true
	}
	crc, ok := secureCRC(ip, x[Len-1]&7)
	if !ok {
		return false
	}
	return x[0] == byte(crc>>24) && x[1] == byte(crc>>16) && x[2]&0xf8 == byte(crc>>8)&0xf8
}

// Exempt reports whether BEP 42 does not apply to ip: local networks, where
// many nodes legitimately share one address range.
func Exempt(ip netip.Addr) bool {
	ip = ip.Unmap()
	return ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsUnspecified()
}
