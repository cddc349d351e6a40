package dhtkit

import (
	"crypto/rand"
	"crypto/sha1"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

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
//	0x04 owned      uvarint len(owner) | owner | 0x02 or 0x03 and its payload:
//	                a chunk of one upload of the value under key owner
//	'D'  signed     the whole record is an owner's envelope ("DKS\x02...",
//	                package owner): a value that fits one record, or a
//	                signed delete, which readers see as no value
//
// A value of any size becomes a tree of chunks whose root fits in the
// manifest record. Each chunk is named by the SHA-1 of its payload, so it
// lands on the replicas closest to its own name, spread over the whole
// network, and every chunk read is verified against the hash that named
// it.
//
// Chunks belong to one upload: the manifest's "u" is the upload's id (the
// Unix milliseconds it started, then 4 random bytes), and its chunks are
// stored under ownedChunkKey(owner, u, hash), owned records that name the
// owner key. That is what lets every node release the chunks of a value
// deleted or overwritten, and of a put that failed or was interrupted
// (chunkgc.go). Manifests without "u", written by earlier versions, name
// content-addressed chunks under chunkKey(hash), left to their TTL.
const (
	kindInline   byte = 0x00
	kindManifest byte = 0x01
	kindChunk    byte = 0x02
	kindIndex    byte = 0x03
	kindOwned    byte = 0x04
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

// uploadIDLen is the length of an upload id: 8 bytes of Unix milliseconds,
// big-endian, then 4 random bytes.
const uploadIDLen = 12

type uploadID [uploadIDLen]byte

func newUploadID(start time.Time) uploadID {
	var u uploadID
	binary.BigEndian.PutUint64(u[:], uint64(start.UnixMilli()))
	rand.Read(u[8:])
	return u
}

// started is when the upload began, by its writer's clock.
func (u uploadID) started() time.Time {
	return time.UnixMilli(int64(binary.BigEndian.Uint64(u[:])))
}

// ownedChunkKey names a chunk of upload u of the value under owner:
// chunkKeyPrefix, then hex SHA-1(owner), u and h, separated by slashes.
// The collector groups a node's chunks by the part before h.
func ownedChunkKey(owner string, u uploadID, h [sha1.Size]byte) string {
	t := sha1.Sum([]byte(owner))
	return chunkKeyPrefix + hex.EncodeToString(t[:]) + "/" + hex.EncodeToString(u[:]) + "/" + hex.EncodeToString(h[:])
}

// parseOwnedChunkKey splits an owned chunk's key; ok is false for any
// other key, content-addressed chunks included.
func parseOwnedChunkKey(key string) (group string, u uploadID, ok bool) {
	rest, found := strings.CutPrefix(key, chunkKeyPrefix)
	if !found || len(rest) != 2*sha1.Size+1+2*uploadIDLen+1+2*sha1.Size {
		return "", u, false
	}
	tHex, uHex := rest[:2*sha1.Size], rest[2*sha1.Size+1:2*sha1.Size+1+2*uploadIDLen]
	if rest[2*sha1.Size] != '/' || rest[2*sha1.Size+1+2*uploadIDLen] != '/' {
		return "", u, false
	}
	if _, err := hex.Decode(u[:], []byte(uHex)); err != nil {
		return "", u, false
	}
	var t [sha1.Size]byte
	if _, err := hex.Decode(t[:], []byte(tHex)); err != nil {
		return "", u, false
	}
	return key[:len(chunkKeyPrefix)+2*sha1.Size+1+2*uploadIDLen], u, true
}

// ownedHeader is what an owned chunk record holds before its payload:
// kindOwned, the owner key, the inner kind.
func ownedHeader(owner string, kind byte) []byte {
	b := []byte{kindOwned}
	b = binary.AppendUvarint(b, uint64(len(owner)))
	return append(append(b, owner...), kind)
}

// chunkPayload is how many payload bytes fit one owned chunk of owner.
func chunkPayload(owner string) int {
	return kademlia.MaxRecordValue - len(ownedHeader(owner, kindChunk))
}

// splitOwned parses an owned chunk record (after its kind byte): the owner
// key, the inner kind and the payload.
func splitOwned(b []byte) (owner string, kind byte, payload []byte, err error) {
	l, n := binary.Uvarint(b)
	if n <= 0 || (n > 1 && b[n-1] == 0) || l > uint64(len(b)-n) || uint64(len(b)-n)-l < 1 {
		return "", 0, nil, fmt.Errorf("dhtkit: corrupt chunk record")
	}
	b = b[n:]
	return string(b[:l]), b[l], b[l+1:], nil
}

type manifest struct {
	size   int64
	depth  int
	hashes []byte
	upload *uploadID // nil: content-addressed chunks (before uploads had ids)
}

// chunkKey names the chunk of hash h of the value under key.
func (m *manifest) chunkKey(key string, h [sha1.Size]byte) string {
	if m.upload == nil {
		return chunkKey(h)
	}
	return ownedChunkKey(key, *m.upload, h)
}

func encodeManifest(m manifest) []byte {
	d := map[string]any{"size": m.size, "depth": m.depth, "h": m.hashes}
	if m.upload != nil {
		d["u"] = m.upload[:]
	}
	b, err := krpc.AppendValue([]byte{kindManifest}, d)
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
	m := manifest{size: size, depth: int(depth), hashes: h}
	if u, ok := d["u"]; ok {
		b, ok := u.([]byte)
		if !ok || len(b) != uploadIDLen {
			return manifest{}, fmt.Errorf("dhtkit: corrupt manifest: bad upload id")
		}
		m.upload = (*uploadID)(b)
	}
	return m, nil
}
