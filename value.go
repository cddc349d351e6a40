package dhtkit

import (
	"crypto/sha1"
	"encoding/hex"
	"fmt"

	"github.com/dhtkit/dhtkit/kademlia"
	"github.com/dhtkit/dhtkit/krpc"
)

// How a Node lays values out in records. The first byte of every record
// value says what the rest is:
//
//	0x00 data       a value that fits one record
//	0x01 manifest   a large value: bencoded {"size", "depth", "h"}, where h
//	                is the concatenated SHA-1s of its top-level chunks
//	0x02 data       a chunk of a large value, stored under chunkKey(SHA-1(data))
//	0x03 hashes     an index chunk: the SHA-1s of the chunks one level down
//
//	'D'  signed     the whole record is an owner's envelope ("DKS\x02...",
//	                package owner): a value that fits one record, or a
//	                signed delete, which readers see as no value
//
// Chunks are content-addressed, so each lands on the replicas closest to
// its own hash, spread over the whole network, and every chunk read is
// verified against the hash that named it. A value of any size becomes a
// tree of chunks whose root fits in the manifest record.
const (
	kindInline   byte = 0x00
	kindManifest byte = 0x01
	kindChunk    byte = 0x02
	kindIndex    byte = 0x03
	kindSigned   byte = 'D'
)

// chunkSize is the data carried by one chunk record.
const chunkSize = kademlia.MaxRecordValue - 1

// fanout is the number of hashes in one index chunk or manifest.
const fanout = (kademlia.MaxRecordValue - 64) / sha1.Size

// chunkKeyPrefix names chunk records; it cannot collide with a user key
// that a person would choose by accident, and the web UI hides it.
const chunkKeyPrefix = "dhtkit/chunk/"

func chunkKey(h [sha1.Size]byte) string { return chunkKeyPrefix + hex.EncodeToString(h[:]) }

type manifest struct {
	size   int64
	depth  int
	hashes []byte
}

func encodeManifest(m manifest) []byte {
	b, err := krpc.AppendValue([]byte{kindManifest}, map[string]any{
		"size": m.size, "depth": m.depth, "h": m.hashes,
	})
	if err != nil {
		panic(err)
	}
	return b
}

func decodeManifest(b []byte) (manifest, error) {
	v, err := krpc.Unmarshal(b)
	if err != nil {
		return manifest{}, fmt.Errorf("dhtkit: corrupt manifest: %w", err)
	}
	d, _ := v.(map[string]any)
	size, ok1 := d["size"].(int64)
	depth, ok2 := d["depth"].(int64)
	h, ok3 := d["h"].([]byte)
	if !ok1 || !ok2 || !ok3 || size < 0 || depth < 0 || depth > 8 || len(h)%sha1.Size != 0 {
		return manifest{}, fmt.Errorf("dhtkit: corrupt manifest")
	}
	return manifest{size: size, depth: int(depth), hashes: h}, nil
}
