package dhtkit

import (
	"bytes"
	"context"
	"crypto/sha1"
	"fmt"
	"io"
	"time"

	"github.com/dhtkit/dhtkit/owner"
)

// Signed chunked values in the upload layout. A large value its owner
// signs (SignValue) is laid out as an unsigned one is: owned chunks of
// one upload whose id the signed manifest holds ("u"), so that every
// node's collector (chunkgc.go) releases them once the key no longer
// holds that manifest, as it does for unsigned values. The upload begins
// when its owner signs it, so the put must end within the upload limit
// (Config.ChunkGrace less its margin) of the signature; a put of an older
// signature is refused (sign again). Values signed by earlier versions,
// whose manifests have no "u", keep their content-addressed chunks, left
// to their TTL.

// signLayout is the manifest of payload as SignValue lays it out for key:
// the chunks of a new upload.
func signLayout(key string, payload []byte, now time.Time) (manifest, error) {
	m, err := ownedLayout(key, bytes.NewReader(payload))
	if err != nil {
		return m, err
	}
	u := newUploadID(now)
	m.upload = &u
	return m, nil
}

// ownedLayout computes (storing nothing) the manifest of what r yields in
// the upload layout of key.
func ownedLayout(key string, r io.Reader) (manifest, error) {
	payload := chunkPayload(key)
	return buildChunks(context.Background(), r, payload, payload/sha1.Size*sha1.Size, nil, nil)
}

// signedLayoutMatches reports whether value is the value whose manifest
// an owner signed as payload, in whichever layout it was signed.
func signedLayoutMatches(key string, value, payload []byte) bool {
	sm, err := decodeManifest(payload)
	if err != nil {
		return false
	}
	var m manifest
	if sm.upload == nil {
		m, err = buildTree(context.Background(), bytes.NewReader(value), nil, nil)
	} else {
		m, err = ownedLayout(key, bytes.NewReader(value))
		m.upload = sm.upload
	}
	return err == nil && bytes.Equal(encodeManifest(m)[1:], payload)
}

// signedUpload checks that the upload u an owner signed for key can still
// be put, and returns it with the options its chunks are put with: they
// live as long as the signed value.
func (n *Node) signedUpload(key string, u uploadID, e owner.Envelope, opt PutOptions) (uploadID, PutOptions, error) {
	limit := n.chunks.uploadLimit()
	if age := time.Since(u.started()); age >= limit {
		return u, opt, fmt.Errorf("dhtkit: put %q: %w: signed %v ago, and a chunked value must be stored within %v of its signature (Config.ChunkGrace less %v): sign it again",
			shortKey(key), ErrBadSignature, age.Round(time.Second), limit, chunkMargin(n.chunks.grace))
	}
	if ttl := time.Until(e.Expires); ttl > 0 {
		opt.TTL = ttl
	}
	return u, opt, nil
}

// signedManifest returns the manifest a signed record's envelope holds:
// ok is false for a signed value that fits one record or a signed delete.
func signedManifest(v []byte) (manifest, bool) {
	e, err := owner.Parse(v)
	if err != nil || e.Deleted || !e.Chunked {
		return manifest{}, false
	}
	m, err := decodeManifest(e.Payload)
	return m, err == nil
}
