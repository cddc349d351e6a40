// Package id implements the 160-bit identifiers of the BitTorrent DHT: node
// ids, infohashes and storage targets share one space, ordered by XOR
// distance (Kademlia) or by clockwise distance on the ring (Chord).
package id

import (
	"crypto/rand"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"io"
	"math/bits"
)

// Len is the length of an ID in bytes.
const Len = 20

// Bits is the length of an ID in bits.
const Bits = Len * 8

// ID is a 160-bit identifier. The zero value is the all-zero id.
type ID [Len]byte

// Random returns an ID read from r, or from crypto/rand when r is nil.
func Random(r io.Reader) ID {
	if r == nil {
		r = rand.Reader
	}
	var x ID
	if _, err := io.ReadFull(r, x[:]); err != nil {
		panic(fmt.Sprintf("id: reading random bytes: %v", err))
	}
	return x
}

// Sum returns the SHA-1 of b: how strings, files and bencoded values map
// into the id space.
func Sum(b []byte) ID { return sha1.Sum(b) }

// FromString returns the SHA-1 of s.
func FromString(s string) ID { return sha1.Sum([]byte(s)) }

// Parse decodes 40 hexadecimal digits.
func Parse(s string) (ID, error) {
	var x ID
	if len(s) != 2*Len {
		return x, fmt.Errorf("id: %q is not 40 hex digits", s)
	}
	if _, err := hex.Decode(x[:], []byte(s)); err != nil {
		return x, fmt.Errorf("id: %q is not hex: %w", s, err)
	}
	return x, nil
}

// ParseOrHash decodes 40 hex digits, and otherwise returns the SHA-1 of s:
// what `dhtkit lookup TARGET` accepts.
func ParseOrHash(s string) ID {
	if x, err := Parse(s); err == nil {
		return x
	}
	return FromString(s)
}

// FromBytes copies a 20-byte slice into an ID; ok is false for any other length.
func FromBytes(b []byte) (x ID, ok bool) {
	if len(b) != Len {
		return x, false
	}
	copy(x[:], b)
	return x, true
}

func (x ID) String() string { return hex.EncodeToString(x[:]) }

// IsZero reports whether x is the all-zero id.
func (x ID) IsZero() bool { return x == ID{} }

// MarshalText encodes x as 40 hex digits, so ids read well in JSON.
func (x ID) MarshalText() ([]byte, error) {
	b := make([]byte, 2*Len)
	hex.Encode(b, x[:])
	return b, nil
}

// UnmarshalText decodes 40 hex digits.
func (x *ID) UnmarshalText(b []byte) error {
	v, err := Parse(string(b))
	if err != nil {
		return err
	}
	*x = v
	return nil
}

// Xor returns the XOR distance between a and b.
func Xor(a, b ID) ID {
	var d ID
	for i := range d {
		d[i] = a[i] ^ b[i]
	}
	return d
}

// Compare orders ids as unsigned big-endian integers.
func Compare(a, b ID) int {
	for i := range a {
		if a[i] != b[i] {
			if a[i] < b[i] {
				return -1
			}
			return 1
		}
	}
	return 0
}

// CompareDistance reports whether a is closer to target than b (-1), as
// close (0, only when a == b), or farther (+1), by XOR distance.
func CompareDistance(target, a, b ID) int {
	for i := range target {
		da, db := a[i]^target[i], b[i]^target[i]
		if da != db {
			if da < db {
				return -1
			}
			return 1
		}
	}
	return 0
}

// CommonPrefixLen returns the number of leading bits a and b share
// (Bits when they are equal). In a Kademlia table it is the bucket index.
func CommonPrefixLen(a, b ID) int {
	for i := range a {
		if x := a[i] ^ b[i]; x != 0 {
			return i*8 + bits.LeadingZeros8(x)
		}
	}
	return Bits
}

// Bit returns bit i of x, counting from the most significant bit.
func (x ID) Bit(i int) int { return int(x[i/8]>>(7-uint(i%8))) & 1 }

// RandomWithPrefix returns a random id that shares its first n bits with
// prefix and has bit n flipped: a random member of bucket n of a table owned
// by prefix. With n == Bits it returns prefix. r may be nil for crypto/rand.
func RandomWithPrefix(r io.Reader, prefix ID, n int) ID {
	if n >= Bits {
		return prefix
	}
	x := Random(r)
	full := n / 8
	copy(x[:full], prefix[:full])
	rem := uint(n % 8)
	mask := byte(0xff) << (8 - rem) // the rem leading bits of the partial byte
	x[full] = prefix[full]&mask | x[full]&^mask
	flip := byte(0x80) >> rem
	x[full] = x[full]&^flip | (^prefix[full] & flip)
	return x
}

// RingDistance returns the clockwise distance from a to b on the 2^160 ring,
// (b - a) mod 2^160, the distance Chord uses.
func RingDistance(a, b ID) ID {
	var d ID
	borrow := 0
	for i := Len - 1; i >= 0; i-- {
		v := int(b[i]) - int(a[i]) - borrow
		borrow = 0
		if v < 0 {
			v += 256
			borrow = 1
		}
		d[i] = byte(v)
	}
	return d
}

// Between reports whether x lies on the ring interval (a, b], clockwise.
// When a == b the interval is the whole ring.
func Between(x, a, b ID) bool {
	if a == b {
		return true
	}
	return Compare(RingDistance(a, x), RingDistance(a, b)) <= 0 && x != a
}

// AddPow2 returns x + 2^k mod 2^160: the start of Chord's k-th finger.
func AddPow2(x ID, k int) ID {
	byteIdx := Len - 1 - k/8
	carry := 1 << uint(k%8)
	for i := byteIdx; i >= 0 && carry != 0; i-- {
		v := int(x[i]) + carry
		x[i] = byte(v)
		carry = v >> 8
	}
	return x
}
