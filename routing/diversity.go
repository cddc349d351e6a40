package routing

import (
	"net/netip"

	"github.com/dhtkit/dhtkit/id"
)

// Diversity bounds how many nodes of one host, and of one network, a
// bucket keeps: libtorrent's restrict_routing_ips. Without it one host
// with many ports, or one /24 with many hosts, can pick ids next to a key
// and fill the buckets that every lookup of the key goes through: an
// eclipse. The zero value bounds nothing.
type Diversity struct {
	// PerIP is the most nodes of one IP address in a bucket (<= 0: any).
	PerIP int
	// PerPrefix is the most nodes of one /24 (IPv4) or /64 (IPv6) in a
	// bucket (<= 0: any).
	PerPrefix int
	// Local applies the bounds to loopback and private addresses too,
	// which are exempt by default, as BEP 42 exempts them: a local
	// cluster or a LAN shares one address or one prefix.
	Local bool
}

// Exempt reports whether the bounds skip a.
func (d Diversity) Exempt(a netip.Addr) bool {
	a = a.Unmap()
	return d.PerIP <= 0 && d.PerPrefix <= 0 || !d.Local && (a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast())
}

// SamePrefix reports whether a and b share the prefix Diversity bounds:
// /24 for IPv4, /64 for IPv6.
func SamePrefix(a, b netip.Addr) bool {
	a, b = a.Unmap(), b.Unmap()
	if a.Is4() != b.Is4() {
		return false
	}
	bits := 64
	if a.Is4() {
		bits = 24
	}
	pa, _ := a.Prefix(bits)
	pb, _ := b.Prefix(bits)
	return pa == pb
}

// SetDiversity sets the table's bounds; they apply to nodes that enter
// from now on.
func (t *BEP5) SetDiversity(d Diversity) { t.div = d }

// DiversityRejects counts the nodes kept out by the bounds.
func (t *BEP5) DiversityRejects() uint64 { return t.divRejects }

// admits reports whether bucket b may take a node at addr: its contacts
// and replacements together stay within the bounds, so that promoting a
// replacement never breaks them either. x's own replacement entry, if
// any, does not count against it.
func (t *BEP5) admits(b *bucket, x id.ID, addr netip.AddrPort) bool {
	a := addr.Addr().Unmap()
	if t.div.Exempt(a) {
		return true
	}
	var probe entry
	probe.setAddr(addr)
	sameIP, samePrefix := 0, 0
	count := func(es []entry) {
		for i := range es {
			e := &es[i]
			if e.id == x || e.flags&flagIs4 != probe.flags&flagIs4 {
				continue
			}
			if e.ip == probe.ip {
				sameIP++
			}
			if SamePrefix(netip.AddrFrom16(e.ip), netip.AddrFrom16(probe.ip)) {
				samePrefix++
			}
		}
	}
	count(b.contacts)
	count(b.repl)
	if t.div.PerIP > 0 && sameIP >= t.div.PerIP || t.div.PerPrefix > 0 && samePrefix >= t.div.PerPrefix {
		t.divRejects++
		return false
	}
	return true
}
