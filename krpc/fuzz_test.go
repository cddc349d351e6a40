package krpc_test

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/dhtkit/dhtkit/krpc"
)

// FuzzDecode checks that Decode never panics, that every error is a
// *DecodeError, and that a decoded message survives Append and Decode
// unchanged, with Append's output a fixed point.
func FuzzDecode(f *testing.F) {
	for _, tc := range decodeCases() {
		f.Add([]byte(tc.in))
	}
	for _, tc := range malformedCases() {
		if len(tc.in) <= 4096 {
			f.Add([]byte(tc.in))
		}
	}
	var m, m2 krpc.Msg
	f.Fuzz(func(t *testing.T, b []byte) {
		err := m.Decode(b)
		if err != nil {
			var de *krpc.DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error %T %v is not a *DecodeError", err, err)
			}
			return
		}
		out := m.Append(nil)
		if err := m2.Decode(out); err != nil {
			t.Fatalf("Decode(Append(Decode(%q))) = %v\nencoded %q", b, err, out)
		}
		if !equalMsg(&m, &m2) {
			t.Fatalf("round trip changed the message:\n in  %q\n out %q\n got %+v\nwant %+v", b, out, m2, m)
		}
		if out2 := m2.Append(nil); !bytes.Equal(out, out2) {
			t.Fatalf("Append is not canonical:\n%q\n%q", out, out2)
		}
		if m.Y == krpc.Query && m.Q != krpc.ParseMethod(m.QName) {
			t.Fatalf("Q %v does not match QName %q", m.Q, m.QName)
		}
	})
}

// FuzzValidBencode checks that ValidBencode never panics, that the length it
// reports is a complete value, and that no shorter prefix is one.
func FuzzValidBencode(f *testing.F) {
	for _, s := range []string{"i1e", "4:spam", "le", "d1:ai1e1:bl1:xee", "i-0e", "d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := krpc.ValidBencode(b)
		if err != nil {
			if n != 0 {
				t.Fatalf("n = %d with error %v", n, err)
			}
			return
		}
		if n <= 0 || n > len(b) {
			t.Fatalf("n = %d for %d bytes", n, len(b))
		}
		if n2, err := krpc.ValidBencode(b[:n]); err != nil || n2 != n {
			t.Fatalf("ValidBencode of the value alone = %d, %v; want %d", n2, err, n)
		}
		if _, err := krpc.ValidBencode(b[:n-1]); err == nil {
			t.Fatalf("prefix %q of value %q is valid too", b[:n-1], b[:n])
		}
	})
}

// FuzzParseCompactNodes checks both node parsers: no panic, and what they
// parse encodes back to the same bytes.
func FuzzParseCompactNodes(f *testing.F) {
	f.Add([]byte(node26))
	f.Add([]byte(node38))
	f.Add([]byte(node26 + node26))
	f.Add([]byte(idA + "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\xff\xff\x7f\x00\x00\x01\x1a\xe1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if nodes, err := krpc.ParseCompactNodes(nil, b); err == nil {
			if out := krpc.AppendCompactNodes(nil, nodes); !bytes.Equal(out, b) {
				t.Fatalf("nodes %q encode back as %q", b, out)
			}
		} else if len(b)%krpc.CompactNodeLen == 0 {
			t.Fatalf("ParseCompactNodes of %d bytes: %v", len(b), err)
		}
		if nodes, err := krpc.ParseCompactNodes6(nil, b); err == nil {
			if out := krpc.AppendCompactNodes6(nil, nodes); !bytes.Equal(out, b) {
				t.Fatalf("nodes6 %q encode back as %q", b, out)
			}
		} else if len(b)%krpc.CompactNode6Len == 0 {
			t.Fatalf("ParseCompactNodes6 of %d bytes: %v", len(b), err)
		}
	})
}

// FuzzParseCompactAddr checks that a parsed address encodes to a form that
// parses to the same address.
func FuzzParseCompactAddr(f *testing.F) {
	f.Add([]byte("\x7f\x00\x00\x01\x1a\xe1"))
	f.Add([]byte("\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x1a\xe1"))
	f.Add([]byte("\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\xff\xff\x7f\x00\x00\x01\x1a\xe1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := krpc.ParseCompactAddr(b)
		if err != nil {
			if len(b) == krpc.CompactAddrLen || len(b) == krpc.CompactAddr6Len {
				t.Fatalf("ParseCompactAddr of %d bytes: %v", len(b), err)
			}
			return
		}
		out := krpc.AppendCompactAddr(nil, a)
		a2, err := krpc.ParseCompactAddr(out)
		if err != nil || a2 != a {
			t.Fatalf("%q parsed as %v, encoded as %q, parsed back as %v, %v", b, a, out, a2, err)
		}
	})
}

// FuzzUnmarshal checks the generic decoder the way FuzzDecode checks
// Decode: no panic, errors are *DecodeError, and a decoded value encodes to
// canonical bencode that decodes to the same value.
func FuzzUnmarshal(f *testing.F) {
	for _, s := range []string{"i1e", "4:spam", "le", "de", "d1:bi1e1:al1:xee", "d1:ai1e1:ai2ee", "lli1eee"} {
		f.Add([]byte(s))
	}
	for _, tc := range decodeCases() {
		f.Add([]byte(tc.in))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := krpc.Unmarshal(b)
		if err != nil {
			var de *krpc.DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error %T %v is not a *DecodeError", err, err)
			}
			return
		}
		out, err := krpc.AppendValue(nil, v)
		if err != nil {
			t.Fatalf("AppendValue(Unmarshal(%q)): %v", b, err)
		}
		v2, err := krpc.Unmarshal(out)
		if err != nil {
			t.Fatalf("Unmarshal(%q) after a round trip: %v", out, err)
		}
		if !reflect.DeepEqual(v, v2) {
			t.Fatalf("round trip changed %q:\n got %#v\nwant %#v", b, v2, v)
		}
		if n, err := krpc.ValidBencode(b); err != nil || n != len(b) {
			t.Fatalf("Unmarshal accepted %q but ValidBencode says %d, %v", b, n, err)
		}
	})
}
