package id

import (
	"bytes"
	"net/netip"
	"testing"
)

// bep42Vectors are the examples of BEP 42. Only the first 21 bits and the
// last byte are defined by the IP and rand; the rest of each example id is
// random, so only the first three bytes (of which 21 bits count) are kept.
var bep42Vectors = []struct {
	ip     string
	rand   byte
	prefix [3]byte
}{
	{"124.31.75.21", 1, [3]byte{0x5f, 0xbf, 0xbf}},
	{"21.75.31.124", 86, [3]byte{0x5a, 0x3c, 0xe9}},
	{"65.23.51.170", 22, [3]byte{0xa5, 0xd4, 0x32}},
	{"84.124.73.14", 65, [3]byte{0x1b, 0x03, 0x21}},
	{"43.213.53.83", 90, [3]byte{0xe5, 0x6f, 0x6c}},
}

// prefix21 reports whether x and the vector's prefix agree on 21 bits.
func prefix21(x ID, p [3]byte) bool {
	return x[0] == p[0] && x[1] == p[1] && x[2]&0xf8 == p[2]&0xf8
}

func TestSecureBEP42Vectors(t *testing.T) {
	for _, v := range bep42Vectors {
		t.Run(v.ip, func(t *testing.T) {
			ip := netip.MustParseAddr(v.ip)
			// A reader whose 20 bytes end in rand: Secure takes r from the
			// last byte, as BEP 42 does.
			src := bytes.Repeat([]byte{0xa7}, Len)
			src[Len-1] = v.rand
			x := Secure(bytes.NewReader(src), ip)
			if !prefix21(x, v.prefix) {
				t.Errorf("Secure = %s, want the first 21 bits of %x", x, v.prefix)
			}
			if x[Len-1] != v.rand {
				t.Errorf("last byte = %#x, want %#x", x[Len-1], v.rand)
			}
			if x[2]&0x07 != 0xa7&0x07 {
				t.Errorf("the 3 random bits of byte 2 = %#x, want them from the reader", x[2]&7)
			}
			if !bytes.Equal(x[3:Len-1], src[3:Len-1]) {
				t.Errorf("middle bytes = %x, want them from the reader", x[3:Len-1])
			}
			if !IsSecure(x, ip) {
				t.Errorf("IsSecure(Secure(%s)) = false", ip)
			}

			// The example id itself, with any middle bytes.
			var ex ID
			copy(ex[:], v.prefix[:])
			for i := 3; i < Len-1; i++ {
				ex[i] = byte(i * 37)
			}
			ex[Len-1] = v.rand
			if !IsSecure(ex, ip) {
				t.Errorf("IsSecure(%s, %s) = false", ex, ip)
			}
			// Bits 21..23 and the high bits of the last byte are free.
			free := ex
			free[2] ^= 0x07
			free[Len-1] ^= 0xf8
			if !IsSecure(free, ip) {
				t.Errorf("IsSecure rejects a change in bits BEP 42 leaves free: %s", free)
			}
			// Every one of the 21 bits counts, and so does r.
			for bit := range 21 {
				bad := ex
				bad[bit/8] ^= 0x80 >> (bit % 8)
				if IsSecure(bad, ip) {
					t.Errorf("IsSecure accepts %s, bit %d flipped", bad, bit)
				}
			}
			bad := ex
			bad[Len-1] ^= 0x01
			if IsSecure(bad, ip) {
				t.Errorf("IsSecure accepts %s, rand changed", bad)
			}
			// The id is tied to the address.
			other := netip.AddrFrom4([4]byte{ip.As4()[0] ^ 0x01, 1, 2, 3})
			if IsSecure(ex, other) {
				t.Errorf("IsSecure(%s, %s) = true for another address", ex, other)
			}
		})
	}
}

func TestSecureIgnoresLowBitsOfAddress(t *testing.T) {
	// BEP 42 masks IPv4 with 03.0f.3f.ff: addresses that differ only in the
	// masked-out bits share their valid ids, so one host cannot mint ids
	// for many targets by changing them.
	a := netip.MustParseAddr("124.31.75.21")
	b := netip.AddrFrom4([4]byte{124 ^ 0xfc, 31 ^ 0xf0, 75 ^ 0xc0, 21})
	x := Secure(seeded(7), a)
	if !IsSecure(x, b) {
		t.Errorf("IsSecure(%s, %s) = false; the masked-out bits should not count", x, b)
	}
}

func TestSecureIPv6(t *testing.T) {
	r := seeded(8)
	for _, s := range []string{"2001:db8::1", "2a00:1450:4001:81c::200e", "::ffff:124.31.75.21"} {
		ip := netip.MustParseAddr(s)
		for range 16 {
			x := Secure(r, ip)
			if !IsSecure(x, ip) {
				t.Fatalf("IsSecure(Secure(%s)) = false: %s", ip, x)
			}
			y := x
			y[0] ^= 0x80
			if IsSecure(y, ip) {
				t.Fatalf("IsSecure(%s, %s) = true with the first bit flipped", y, ip)
			}
		}
	}
	// The IPv4-mapped form is the IPv4 address.
	v4 := netip.MustParseAddr("124.31.75.21")
	if x := Secure(seeded(9), netip.MustParseAddr("::ffff:124.31.75.21")); !IsSecure(x, v4) {
		t.Errorf("a secure id for ::ffff:124.31.75.21 is not secure for 124.31.75.21")
	}
}

func TestExempt(t *testing.T) {
	tests := []struct {
		ip   string
		want bool
	}{
		{"127.0.0.1", true},
		{"10.1.2.3", true},
		{"172.16.0.9", true},
		{"192.168.1.1", true},
		{"169.254.3.4", true},
		{"::1", true},
		{"fe80::1", true},
		{"fd00::1", true},
		{"::ffff:192.168.1.1", true},
		{"0.0.0.0", true},
		{"124.31.75.21", false},
		{"172.32.0.1", false},
		{"2001:db8::1", false},
	}
	for _, tt := range tests {
		ip := netip.MustParseAddr(tt.ip)
		if got := Exempt(ip); got != tt.want {
			t.Errorf("Exempt(%s) = %v, want %v", ip, got, tt.want)
		}
		// An exempt address accepts any id.
		if tt.want && !IsSecure(ID{}, ip) {
			t.Errorf("IsSecure(zero, %s) = false for an exempt address", ip)
		}
	}
	if IsSecure(ID{}, netip.Addr{}) {
		t.Error("IsSecure accepts the invalid address")
	}
}

func TestSecureInvalidAddress(t *testing.T) {
	// Without an address there is nothing to tie the id to: Secure gives
	// a random id rather than failing.
	if x, y := Secure(seeded(10), netip.Addr{}), Random(seeded(10)); x != y {
		t.Errorf("Secure(invalid) = %s, want the random id %s", x, y)
	}
}
