package dhtkit

import (
	"bytes"
	"crypto/sha1"
	"testing"
	"time"
)

// FuzzDecodeManifest feeds manifest records as replicas send them: decoding
// never panics, and what decodes encodes back to a manifest that decodes
// the same.
func FuzzDecodeManifest(f *testing.F) {
	u := newUploadID(time.UnixMilli(1700000000000))
	f.Add(encodeManifest(manifest{size: 10, depth: 0, hashes: make([]byte, 40), upload: &u})[1:])
	f.Add(encodeManifest(manifest{size: 10, depth: 1, hashes: make([]byte, 20)})[1:])
	f.Add([]byte("d4:sizei-1ee"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeManifest(b)
		if err != nil {
			return
		}
		back, err := decodeManifest(encodeManifest(m)[1:])
		if err != nil || back.size != m.size || back.depth != m.depth || !bytes.Equal(back.hashes, m.hashes) ||
			(back.upload == nil) != (m.upload == nil) || (m.upload != nil && *back.upload != *m.upload) {
			t.Fatalf("manifest %+v re-decodes to %+v, %v", m, back, err)
		}
	})
}

// FuzzSplitOwned feeds owned chunk records as replicas send them.
func FuzzSplitOwned(f *testing.F) {
	f.Add(append(ownedHeader("photos/cat.jpg", kindChunk)[1:], "data"...))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		owner, kind, payload, err := splitOwned(b)
		if err != nil {
			return
		}
		if again := append(ownedHeader(owner, kind)[1:], payload...); !bytes.Equal(again, b) {
			t.Fatalf("split(%x) = %q, %d, %x re-encodes to %x", b, owner, kind, payload, again)
		}
	})
}

func TestOwnedChunkKey(t *testing.T) {
	u := newUploadID(time.UnixMilli(1700000000123))
	if got := u.started(); !got.Equal(time.UnixMilli(1700000000123)) {
		t.Errorf("started = %v", got)
	}
	h := sha1.Sum([]byte("chunk"))
	key := ownedChunkKey("photos/cat.jpg", u, h)
	group, got, ok := parseOwnedChunkKey(key)
	if !ok || got != u || group+"/"+key[len(group)+1:] != key || len(key)-len(group) != 41 {
		t.Fatalf("parse(%q) = %q, %x, %v", key, group, got, ok)
	}
	for _, bad := range []string{
		chunkKey(h), // content-addressed: not owned
		key[:len(key)-1],
		key + "0",
		"x" + key[1:],
		key[:len(chunkKeyPrefix)+40] + "_" + key[len(chunkKeyPrefix)+41:],
		key[:len(chunkKeyPrefix)] + "zz" + key[len(chunkKeyPrefix)+2:],
	} {
		if _, _, ok := parseOwnedChunkKey(bad); ok {
			t.Errorf("parsed %q as an owned chunk key", bad)
		}
	}
	// A payload always fits a record, whatever the owner key.
	for _, owner := range []string{"", "k", string(make([]byte, 1024))} {
		if n := len(ownedHeader(owner, kindChunk)) + chunkPayload(owner); n != chunkSize+1 {
			t.Errorf("owner of %d bytes: record of %d bytes, want %d", len(owner), n, chunkSize+1)
		}
	}
}
