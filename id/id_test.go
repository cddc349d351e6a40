package id

import (
	"crypto/sha1"
	"encoding/json"
	"math/big"
	"math/rand/v2"
	"strings"
	"testing"
)

// mustParse is Parse for literals in tests.
func mustParse(t testing.TB, s string) ID {
	t.Helper()
	x, err := Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// toBig returns x as an integer, the reference the arithmetic is checked
// against.
func toBig(x ID) *big.Int { return new(big.Int).SetBytes(x[:]) }

func fromBig(t testing.TB, v *big.Int) ID {
	t.Helper()
	var x ID
	b := v.Bytes()
	if len(b) > Len {
		t.Fatalf("%v does not fit in 160 bits", v)
	}
	copy(x[Len-len(b):], b)
	return x
}

var ring = new(big.Int).Lsh(big.NewInt(1), Bits)

func seeded(seed uint64) *rand.ChaCha8 {
	var s [32]byte
	s[0] = byte(seed)
	s[1] = byte(seed >> 8)
	return rand.NewChaCha8(s)
}

func TestXor(t *testing.T) {
	ones := mustParse(t, strings.Repeat("f", 40))
	tests := []struct {
		a, b, want string
	}{
		{strings.Repeat("0", 40), strings.Repeat("0", 40), strings.Repeat("0", 40)},
		{strings.Repeat("f", 40), strings.Repeat("0", 40), strings.Repeat("f", 40)},
		{"0123456789abcdef0123456789abcdef01234567", "0123456789abcdef0123456789abcdef01234567", strings.Repeat("0", 40)},
		{"8000000000000000000000000000000000000001", "0000000000000000000000000000000000000001", "8000000000000000000000000000000000000000"},
	}
	for _, tt := range tests {
		a, b := mustParse(t, tt.a), mustParse(t, tt.b)
		if got := Xor(a, b); got != mustParse(t, tt.want) {
			t.Errorf("Xor(%s, %s) = %s, want %s", tt.a, tt.b, got, tt.want)
		}
		if Xor(a, b) != Xor(b, a) {
			t.Errorf("Xor(%s, %s) is not symmetric", tt.a, tt.b)
		}
		if Xor(Xor(a, b), b) != a {
			t.Errorf("Xor(Xor(%s, %s), b) != a", tt.a, tt.b)
		}
		if Xor(a, ones) == a {
			t.Errorf("Xor(%s, ones) left it unchanged", tt.a)
		}
	}
}

func TestCompareDistance(t *testing.T) {
	zero := ID{}
	tests := []struct {
		name         string
		target, a, b string // first byte, in hex
		want         int
	}{
		{"equal", "00", "12", "12", 0},
		{"a nearer in first byte", "00", "01", "80", -1},
		{"b nearer in first byte", "00", "80", "01", 1},
		{"xor, not numeric order", "ff", "f0", "0f", -1}, // f0^ff=0f < 0f^ff=f0
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target, a, b := zero, zero, zero
			target[0] = unhex(t, tt.target)
			a[0] = unhex(t, tt.a)
			b[0] = unhex(t, tt.b)
			if got := CompareDistance(target, a, b); got != tt.want {
				t.Errorf("CompareDistance = %d, want %d", got, tt.want)
			}
			if got := CompareDistance(target, b, a); got != -tt.want {
				t.Errorf("CompareDistance swapped = %d, want %d", got, -tt.want)
			}
		})
	}
	// Against the integer definition, for random ids.
	r := rand.New(seeded(1))
	for range 2000 {
		target, a, b := Random(seeded(r.Uint64())), Random(seeded(r.Uint64())), Random(seeded(r.Uint64()))
		if r.IntN(4) == 0 {
			copy(b[:r.IntN(Len)], a[:]) // share a prefix, so later bytes decide
		}
		want := toBig(Xor(target, a)).Cmp(toBig(Xor(target, b)))
		if got := CompareDistance(target, a, b); got != want {
			t.Fatalf("CompareDistance(%s, %s, %s) = %d, want %d", target, a, b, got, want)
		}
	}
}

func unhex(t *testing.T, s string) byte {
	t.Helper()
	x := mustParse(t, s+strings.Repeat("0", 38))
	return x[0]
}

func TestCompare(t *testing.T) {
	r := rand.New(seeded(2))
	for range 1000 {
		a, b := Random(seeded(r.Uint64())), Random(seeded(r.Uint64()))
		if r.IntN(3) == 0 {
			b = a
		}
		if got, want := Compare(a, b), toBig(a).Cmp(toBig(b)); got != want {
			t.Fatalf("Compare(%s, %s) = %d, want %d", a, b, got, want)
		}
	}
}

func TestCommonPrefixLen(t *testing.T) {
	var zero ID
	tests := []struct {
		name string
		flip int // bit of b to flip, -1 for none
		want int
	}{
		{"equal", -1, Bits},
		{"first bit", 0, 0},
		{"second bit", 1, 1},
		{"byte boundary", 8, 8},
		{"middle", 77, 77},
		{"last bit", Bits - 1, Bits - 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := zero
			if tt.flip >= 0 {
				b[tt.flip/8] ^= 0x80 >> (tt.flip % 8)
			}
			if got := CommonPrefixLen(zero, b); got != tt.want {
				t.Errorf("CommonPrefixLen = %d, want %d", got, tt.want)
			}
			// Bits after the first difference do not matter.
			if tt.flip >= 0 && tt.flip < Bits-1 {
				c := b
				c[Len-1] ^= 0x01
				if got := CommonPrefixLen(zero, c); got != tt.want {
					t.Errorf("CommonPrefixLen with later bits set = %d, want %d", got, tt.want)
				}
			}
		})
	}
}

func TestBit(t *testing.T) {
	x := mustParse(t, "8000000000000000000000000000000000000001")
	for i := range Bits {
		want := 0
		if i == 0 || i == Bits-1 {
			want = 1
		}
		if got := x.Bit(i); got != want {
			t.Errorf("Bit(%d) = %d, want %d", i, got, want)
		}
	}
}

// TestRandomWithPrefix checks, for every prefix length and many random
// prefixes, that the result shares exactly n bits with the prefix, and that
// the bits past n really are random: each of them takes both values.
func TestRandomWithPrefix(t *testing.T) {
	r := seeded(3)
	for n := 0; n <= Bits; n++ {
		var ones, zeros ID // bits seen set, and seen clear, past n+1
		for range 40 {
			prefix := Random(r)
			x := RandomWithPrefix(r, prefix, n)
			if got := CommonPrefixLen(prefix, x); got != n {
				t.Fatalf("n=%d: CommonPrefixLen(prefix, x) = %d (prefix %s, x %s)", n, got, prefix, x)
			}
			for i := range Len {
				ones[i] |= x[i]
				zeros[i] |= ^x[i]
			}
		}
		for i := n + 1; i < Bits; i++ {
			if ones.Bit(i) == 0 || zeros.Bit(i) == 0 {
				t.Fatalf("n=%d: bit %d never varied", n, i)
			}
		}
	}
	if got := RandomWithPrefix(nil, ID{1}, 12); CommonPrefixLen(got, ID{1}) != 12 {
		t.Errorf("nil reader: CommonPrefixLen = %d, want 12", CommonPrefixLen(got, ID{1}))
	}
}

func FuzzRandomWithPrefix(f *testing.F) {
	f.Add(make([]byte, Len), 0, uint64(0))
	f.Add([]byte(strings.Repeat("\xff", Len)), 159, uint64(1))
	f.Add([]byte("abcdefghijklmnopqrst"), 7, uint64(2))
	f.Fuzz(func(t *testing.T, p []byte, n int, seed uint64) {
		prefix, ok := FromBytes(p)
		if !ok || n < 0 || n > Bits {
			return
		}
		x := RandomWithPrefix(seeded(seed), prefix, n)
		if got := CommonPrefixLen(prefix, x); got != n {
			t.Fatalf("CommonPrefixLen(%s, %s) = %d, want %d", prefix, x, got, n)
		}
	})
}

func TestRandomDeterministic(t *testing.T) {
	a, b := Random(seeded(9)), Random(seeded(9))
	if a != b {
		t.Error("the same seed gave different ids")
	}
	c, d := Random(nil), Random(nil)
	if c == d {
		t.Error("crypto/rand gave the same id twice")
	}
}

func TestRingDistance(t *testing.T) {
	max := mustParse(t, strings.Repeat("f", 40))
	one := ID{Len - 1: 1}
	tests := []struct {
		name string
		a, b ID
		want ID
	}{
		{"zero", one, one, ID{}},
		{"forward", ID{}, one, one},
		{"wraps", one, ID{}, max},
		{"borrow across bytes", ID{Len - 1: 0xff}, ID{Len - 2: 1}, one},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := RingDistance(tt.a, tt.b); got != tt.want {
				t.Errorf("RingDistance = %s, want %s", got, tt.want)
			}
		})
	}
	r := seeded(4)
	for range 1000 {
		a, b := Random(r), Random(r)
		want := new(big.Int).Sub(toBig(b), toBig(a))
		want.Mod(want, ring)
		if got := RingDistance(a, b); got != fromBig(t, want) {
			t.Fatalf("RingDistance(%s, %s) = %s, want %x", a, b, got, want)
		}
	}
}

func TestBetween(t *testing.T) {
	n := func(v byte) ID { return ID{0: v} }
	tests := []struct {
		name    string
		x, a, b ID
		want    bool
	}{
		{"inside", n(5), n(1), n(9), true},
		{"at end", n(9), n(1), n(9), true},
		{"at start", n(1), n(1), n(9), false},
		{"before", n(0), n(1), n(9), false},
		{"after", n(10), n(1), n(9), false},
		{"wrapped, high side", n(250), n(200), n(10), true},
		{"wrapped, low side", n(5), n(200), n(10), true},
		{"wrapped, outside", n(100), n(200), n(10), false},
		{"whole ring", n(100), n(7), n(7), true},
		{"whole ring, at a", n(7), n(7), n(7), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Between(tt.x, tt.a, tt.b); got != tt.want {
				t.Errorf("Between(%d, %d, %d) = %v, want %v", tt.x[0], tt.a[0], tt.b[0], got, tt.want)
			}
		})
	}
}

func TestAddPow2(t *testing.T) {
	max := mustParse(t, strings.Repeat("f", 40))
	tests := []struct {
		name string
		x    ID
		k    int
		want ID
	}{
		{"zero plus one", ID{}, 0, ID{Len - 1: 1}},
		{"carry across bytes", ID{Len - 1: 0xff}, 0, ID{Len - 2: 1}},
		{"byte boundary", ID{}, 8, ID{Len - 2: 1}},
		{"top bit", ID{}, Bits - 1, ID{0: 0x80}},
		{"wraps", max, 0, ID{}},
		{"top bit wraps", ID{0: 0x80}, Bits - 1, ID{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := AddPow2(tt.x, tt.k); got != tt.want {
				t.Errorf("AddPow2(%s, %d) = %s, want %s", tt.x, tt.k, got, tt.want)
			}
		})
	}
	r := seeded(5)
	for k := range Bits {
		x := Random(r)
		want := new(big.Int).Add(toBig(x), new(big.Int).Lsh(big.NewInt(1), uint(k)))
		want.Mod(want, ring)
		if got := AddPow2(x, k); got != fromBig(t, want) {
			t.Fatalf("AddPow2(%s, %d) = %s, want %x", x, k, got, want)
		}
		if d := RingDistance(x, AddPow2(x, k)); toBig(d).Cmp(new(big.Int).Lsh(big.NewInt(1), uint(k))) != 0 {
			t.Fatalf("RingDistance(x, AddPow2(x, %d)) = %s", k, d)
		}
	}
}

func TestParse(t *testing.T) {
	const hex = "0123456789abcdef0123456789abcdef01234567"
	tests := []struct {
		name    string
		in      string
		want    string
		wantErr bool
	}{
		{"lower", hex, hex, false},
		{"upper", strings.ToUpper(hex), hex, false},
		{"short", hex[:39], "", true},
		{"long", hex + "0", "", true},
		{"not hex", "g" + hex[1:], "", true},
		{"empty", "", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Parse(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			}
			if err == nil && got.String() != tt.want {
				t.Errorf("Parse(%q) = %s, want %s", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseOrHash(t *testing.T) {
	const hex = "0123456789abcdef0123456789abcdef01234567"
	tests := []struct {
		in   string
		want ID
	}{
		{hex, mustParse(t, hex)},
		{strings.ToUpper(hex), mustParse(t, hex)},
		{"abc", mustParse(t, "a9993e364706816aba3e25717850c26c9cd0d89d")}, // FIPS 180 example
		{"", sha1.Sum(nil)},
		{hex[:39], sha1.Sum([]byte(hex[:39]))},
		{"my key", sha1.Sum([]byte("my key"))},
	}
	for _, tt := range tests {
		if got := ParseOrHash(tt.in); got != tt.want {
			t.Errorf("ParseOrHash(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
	if FromString("abc") != Sum([]byte("abc")) {
		t.Error("FromString and Sum disagree")
	}
}

func TestFromBytes(t *testing.T) {
	for _, n := range []int{0, 19, 20, 21} {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i + 1)
		}
		x, ok := FromBytes(b)
		if ok != (n == Len) {
			t.Errorf("FromBytes(%d bytes) ok = %v", n, ok)
		}
		if ok && string(x[:]) != string(b) {
			t.Errorf("FromBytes = %s", x)
		}
	}
}

func TestTextRoundTrip(t *testing.T) {
	x := Random(seeded(6))
	b, err := json.Marshal(map[string]ID{"id": x})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"id":"` + x.String() + `"}`; string(b) != want {
		t.Errorf("json = %s, want %s", b, want)
	}
	var back map[string]ID
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back["id"] != x {
		t.Errorf("round trip gave %s, want %s", back["id"], x)
	}
	var y ID
	if err := y.UnmarshalText([]byte("zz")); err == nil {
		t.Error("UnmarshalText accepted zz")
	}
	if !(ID{}).IsZero() || x.IsZero() {
		t.Error("IsZero is wrong")
	}
}
