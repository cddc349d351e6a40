package dhtkit

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/owner"
	"github.com/dhtkit/dhtkit/store"
)

// TestSignedChunksReleased: the chunks of a large signed value are one
// upload as an unsigned value's are, so the collectors keep them while
// the owner's signed manifest is the key's record and release them once
// the owner overwrites or deletes it, on every node.
func TestSignedChunksReleased(t *testing.T) {
	const grace = 20 * time.Second
	nodes := network(t, 5, 31, chunkGC(grace))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	before := make([]int64, len(nodes))
	for i, n := range nodes {
		before[i], _ = held(n)
	}
	alice, _ := NewIdentity(bytes.Repeat([]byte{7}, 32))
	put := func(payload []byte) string {
		t.Helper()
		cur, _ := nodes[0].Stat(ctx, "signed.bin")
		_, env, err := SignValue("signed.bin", payload, alice.Sign, SignOptions{Version: owner.NextVersion(alice.SignPublic(), time.Now(), cur.Version)})
		if err != nil || env == nil {
			t.Fatalf("SignValue: env %d bytes, %v", len(env), err)
		}
		if _, err := nodes[1].PutSigned(ctx, "signed.bin", bytes.NewReader(payload), env, PutOptions{}); err != nil {
			t.Fatal(err)
		}
		m, ok := signedManifest(env)
		if !ok || m.upload == nil {
			t.Fatalf("the signed manifest names no upload")
		}
		g, _, _ := parseOwnedChunkKey(ownedChunkKey("signed.bin", *m.upload, [20]byte{}))
		return g
	}
	first, second := randomBytes(11, 1<<20+5), randomBytes(12, 600<<10)
	firstUpload := put(first)
	secondUpload := put(second)
	if firstUpload == secondUpload {
		t.Fatal("two signatures share an upload")
	}
	// Past the grace, the overwritten upload goes and the live one stays.
	waitChunks(t, nodes, func(g string) bool { return g == secondUpload }, "the overwritten signed upload")
	v, err := nodes[4].GetSignedBy(ctx, "signed.bin", alice.SignPublic())
	if err != nil || !bytes.Equal(v.Data, second) {
		t.Fatalf("the live signed value after the collector ran: %d bytes, %v", len(v.Data), err)
	}
	if _, err := OpenChunked("signed.bin", v.Data, v.Envelope, nil); err != nil {
		t.Fatalf("OpenChunked: %v", err)
	}
	// The owner's signed delete releases the rest.
	cur, _ := nodes[0].Stat(ctx, "signed.bin")
	tomb, err := SignDelete("signed.bin", alice.Sign, SignOptions{Version: owner.NextVersion(alice.SignPublic(), time.Now(), cur.Version)})
	if err != nil {
		t.Fatal(err)
	}
	if err := nodes[2].DeleteSigned(ctx, "signed.bin", tomb); err != nil {
		t.Fatal(err)
	}
	waitChunks(t, nodes, nil, "the deleted signed value")
	for i, n := range nodes {
		// The signed delete is a record of its own on the key's replicas.
		if after, _ := held(n); after > before[i]+int64(len("signed.bin")+len(tomb))+store.RecordOverhead {
			t.Errorf("node %d stores %d bytes, %d before", i, after, before[i])
		}
	}
}

// TestSignedUploadTooOld: a large value must be stored within the upload
// limit of its signature, else collectors could have released its chunks.
func TestSignedUploadTooOld(t *testing.T) {
	cfg := testConfig()
	cfg.Kademlia.Alone = true
	n := newNode(t, cfg)
	alice, _ := NewIdentity(bytes.Repeat([]byte{8}, 32))
	payload := randomBytes(13, 100<<10)
	m, err := signLayout("old.bin", payload, time.Now().Add(-2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	e := SignOptions{}.envelope(alice.SignPublic(), time.Now())
	e.Payload, e.Chunked = encodeManifest(m)[1:], true
	env, err := owner.Sign("old.bin", alice.Sign, e)
	if err != nil {
		t.Fatal(err)
	}
	_, err = n.PutSigned(context.Background(), "old.bin", bytes.NewReader(payload), env, PutOptions{})
	if !errors.Is(err, ErrBadSignature) {
		t.Fatalf("PutSigned of a two-hour-old signature: %v", err)
	}
	t.Log(err)
}
