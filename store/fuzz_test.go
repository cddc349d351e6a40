package store

import (
	"bytes"
	"testing"
)

// FuzzDecodeMeta feeds record headers as read from disk: decoding never
// panics, and what decodes encodes back to the same bytes.
func FuzzDecodeMeta(f *testing.F) {
	f.Add(appendMeta(nil, &item{version: ver(1, 2), size: 5, source: "10.0.0.1", expires: 1}))
	f.Add(appendMeta(nil, &item{version: ver(3, 4), deleted: true}))
	f.Add([]byte{metaFormat})
	f.Fuzz(func(t *testing.T, b []byte) {
		var it item
		if err := decodeMeta(b, &it); err != nil {
			return
		}
		if again := appendMeta(nil, &it); !bytes.Equal(again, b) {
			t.Fatalf("decode(%x) = %+v encodes to %x", b, it, again)
		}
	})
}

// FuzzParseVersion feeds version strings as they come from HTTP (ETag,
// If-Match): parsing never panics and round-trips.
func FuzzParseVersion(f *testing.F) {
	f.Add(ver(1, 2).String())
	f.Add("")
	f.Add("0123456789abcdef0123456789ABCDEF")
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseVersion(s)
		if err != nil {
			return
		}
		back, err := ParseVersion(v.String())
		if err != nil || back != v {
			t.Fatalf("ParseVersion(%q) = %v does not round-trip: %v, %v", s, v, back, err)
		}
	})
}
