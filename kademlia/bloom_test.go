package kademlia

import (
	"encoding/hex"
	"math"
	"net/netip"
	"strings"
	"testing"
)

// bep33Vector is BEP 33's test vector: the filter of 192.0.2.0-192.0.2.255
// and 2001:DB8::-2001:DB8::3E7, whose estimate is 1224.9308.
const bep33Vector = `F6C3F5EA A07FFD91 BDE89F77 7F26FB2B FF37BDB8 FB2BBAA2 FD3DDDE7 BACFFF75 EE7CCBAE
 FE5EEDB1 FBFAFF67 F6ABFF5E 43DDBCA3 FD9B9FFD F4FFD3E9 DFF12D1B DF59DB53 DBE9FA5B
 7FF3B8FD FCDE1AFB 8BEDD7BE 2F3EE71E BBBFE93B CDEEFE14 8246C2BC 5DBFF7E7 EFDCF24F
 D8DC7ADF FD8FFFDF DDFFF7A4 BBEEDF5C B95CE81F C7FCFF1F F4FFFFDF E5F7FDCB B7FD79B3
 FA1FC77B FE07FFF9 05B7B7FF C7FEFEFF E0B8370B B0CD3F5B 7F2BD93F EB4386CF DD6F7FD5
 BFAF2E9E BFFFFEEC D67ADBF7 C67F17EF D5D75EBA 6FFEBA7F FF47A91E B1BFBB53 E8ABFB57
 62ABE8FF 237279BF EFBFEEF5 FFC5FEBF DFE5ADFF ADFEE1FB 737FFFFB FD9F6AEF FEEE76B6
 FD8F72EF`

// bep33Addrs returns the test vector's 1256 addresses.
func bep33Addrs() []netip.Addr {
	var as []netip.Addr
	for i := range 256 {
		as = append(as, netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}))
	}
	base := netip.MustParseAddr("2001:db8::").As16()
	for i := range 1000 {
		b := base
		b[14], b[15] = byte(i>>8), byte(i)
		as = append(as, netip.AddrFrom16(b))
	}
	return as
}

func TestBloomBEP33Vector(t *testing.T) {
	want, err := hex.DecodeString(strings.Join(strings.Fields(bep33Vector), ""))
	if err != nil || len(want) != len(Bloom{}) {
		t.Fatalf("vector: %d bytes, %v", len(want), err)
	}
	var f Bloom
	as := bep33Addrs()
	for _, a := range as {
		f.Insert(a)
	}
	if string(f[:]) != string(want) {
		t.Fatalf("filter\n got %X\nwant %X", f[:], want)
	}
	if got := f.Estimate(); math.Abs(got-1224.9308) > 0.0001 {
		t.Errorf("estimate %.4f, want 1224.9308", got)
	}
	for _, a := range as {
		if !f.Has(a) {
			t.Fatalf("%v inserted but not in the filter", a)
		}
	}
	// An IPv4-mapped IPv6 address is the IPv4 address.
	var g Bloom
	g.Insert(netip.MustParseAddr("::ffff:192.0.2.7"))
	if !f.Has(netip.MustParseAddr("192.0.2.7")) || g != bloomOf("192.0.2.7") {
		t.Error("an IPv4-mapped address hashes differently from its IPv4 form")
	}
}

func bloomOf(addrs ...string) Bloom {
	var f Bloom
	for _, a := range addrs {
		f.Insert(netip.MustParseAddr(a))
	}
	return f
}

func TestBloomEstimate(t *testing.T) {
	tests := []struct {
		name     string
		n        int
		min, max float64
	}{
		{"empty", 0, 0, 0},
		{"one", 1, 0.99, 1.01},
		{"hundred", 100, 90, 110},
		{"thousand", 1000, 900, 1100},
		{"full", 50000, 7800, 7810}, // one zero bit: the largest finite answer
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var f Bloom
			for i := range tc.n {
				f.Insert(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}))
			}
			if got := f.Estimate(); got < tc.min || got > tc.max {
				t.Errorf("estimate of %d addresses: %.2f, want in [%v, %v]", tc.n, got, tc.min, tc.max)
			}
		})
	}
}

func TestBloomUnion(t *testing.T) {
	a, b := bloomOf("10.0.0.1", "10.0.0.2"), bloomOf("10.0.0.2", "10.0.0.3")
	u := a
	u.Union(&b)
	if want := bloomOf("10.0.0.1", "10.0.0.2", "10.0.0.3"); u != want {
		t.Errorf("union differs from the filter of the union")
	}
	w := a
	if !w.UnionBytes(b[:]) || w != u {
		t.Error("UnionBytes differs from Union")
	}
	if w.UnionBytes(make([]byte, 10)) || w != u {
		t.Error("UnionBytes took a short filter")
	}
}
