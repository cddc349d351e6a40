package store

import (
	"bytes"
	"reflect"
	"testing"
)

// FuzzDecodeMeta feeds record headers as read from disk: decoding never
// panics, and what decodes encodes back to the same bytes.
func FuzzDecodeMeta(f *testing.F) {
	f.Add(appendMeta(nil, &item{version: ver(1, 2), size: 5, source: "10.0.0.1", expires: 1}))
	f.Add(appendMeta(nil, &item{version: ver(3, 4), deleted: true}))
	f.Add([]byte{metaFormat})
	// A header with its value inline.
	f.Add(append(appendMeta(nil, &item{version: ver(5, 6), size: 3, inline: true, source: "s"}), "val"...))
	// A format-1 header, as files written before checksums hold.
	f.Add([]byte{metaFormat1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 'v', 'a', 'l'})
	f.Fuzz(func(t *testing.T, b []byte) {
		var it item
		if err := decodeMeta(b, &it); err != nil {
			return
		}
		again := appendMeta(nil, &it)
		if b[0] == metaFormat1 {
			// Re-encoded in the current format, with the value's
			// checksum unknown; what it says must survive.
			var back item
			if err := decodeMeta(again, &back); err != nil {
				t.Fatalf("format 1 %x re-encoded to %x, which does not decode: %v", b, again, err)
			}
			back.summed, back.sum = it.summed, it.sum
			if !reflect.DeepEqual(back, it) {
				t.Fatalf("format 1 %x decodes to %+v, re-encoded to %+v", b, it, back)
			}
			return
		}
		if it.inline {
			again = append(again, inlineValue(b, &it)...)
		}
		if !bytes.Equal(again, b) {
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
