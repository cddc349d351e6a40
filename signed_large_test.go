package dhtkit

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/owner"
)

// TestSignedLargeValue: a value too large for one record is signed by its
// manifest. The node stores it only when the bytes are the ones signed;
// readers get the envelope with the value and check one against the
// other, so an altered byte anywhere is caught.
func TestSignedLargeValue(t *testing.T) {
	cfg := testConfig()
	cfg.Kademlia.Alone = true // a network of one, as asked: its own quorum
	n := newNode(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	alice, _ := NewIdentity(bytes.Repeat([]byte{1}, 32))
	value := make([]byte, 200<<10)
	rand.Read(value)

	inline, env, err := SignValue("big", value, alice.Sign, SignOptions{})
	if err != nil || inline != nil || env == nil {
		t.Fatalf("SignValue of %d bytes: inline %d bytes, env %d bytes, %v", len(value), len(inline), len(env), err)
	}
	other := bytes.Clone(value)
	other[100_000] ^= 1
	if _, err := n.PutSigned(ctx, "big", bytes.NewReader(other), env, PutOptions{}); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("PutSigned of other bytes: %v", err)
	}
	if _, err := n.Get(ctx, "big"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a refused PutSigned left a value: %v", err)
	}
	if _, err := n.PutSigned(ctx, "big", bytes.NewReader(value), env, PutOptions{}); err != nil {
		t.Fatal(err)
	}
	v, err := n.GetSignedBy(ctx, "big", alice.SignPublic())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(v.Data, value) || !bytes.Equal(v.Envelope, env) || !v.Chunked {
		t.Fatalf("read %d bytes, envelope %d bytes, chunked %v", len(v.Data), len(v.Envelope), v.Chunked)
	}
	o, err := OpenChunked("big", v.Data, v.Envelope, nil)
	if err != nil || !bytes.Equal(o.Payload, value) || !o.Signer.Equal(alice.SignPublic()) {
		t.Fatalf("OpenChunked: %v", err)
	}
	if _, err := OpenChunked("big", other, v.Envelope, nil); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("OpenChunked of altered bytes: %v", err)
	}
	if _, err := OpenChunked("moved", v.Data, v.Envelope, nil); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("OpenChunked under another key: %v", err)
	}
	// The key is alice's: an unsigned large value does not replace it.
	if _, err := n.PutReader(ctx, "big", bytes.NewReader(other), PutOptions{}); err == nil {
		t.Fatal("an unsigned large put replaced alice's value")
	}
	// A small value is signed whole, and PutSigned refuses that signature.
	inline, env, _ = SignValue("small", []byte("hi"), alice.Sign, SignOptions{})
	if inline == nil || env != nil {
		t.Fatal("SignValue of a small value did not sign it whole")
	}
	if _, err := n.PutSigned(ctx, "small", bytes.NewReader([]byte("hi")), inline, PutOptions{}); err == nil {
		t.Fatal("PutSigned took a whole-value signature")
	}
	// Around the edge of one record: whole or chunked, every size stores
	// and reads back.
	for _, size := range []int{8000, 8059, 8060, 8100, 8191, 8192, 8193} {
		key := "edge"
		payload := bytes.Repeat([]byte{byte(size)}, size)
		cur, _ := n.Stat(ctx, key)
		inline, env, err := SignValue(key, payload, alice.Sign, SignOptions{Version: owner.NextVersion(alice.SignPublic(), time.Now(), cur.Version)})
		if err != nil {
			t.Fatal(err)
		}
		if env != nil {
			_, err = n.PutSigned(ctx, key, bytes.NewReader(payload), env, PutOptions{})
		} else {
			_, err = n.Put(ctx, key, inline, PutOptions{})
		}
		if err != nil {
			t.Fatalf("%d bytes (chunked %v): %v", size, env != nil, err)
		}
		v, err := n.GetSignedBy(ctx, key, alice.SignPublic())
		if err != nil {
			t.Fatalf("%d bytes: %v", size, err)
		}
		var o Opened
		if v.Envelope != nil {
			o, err = OpenChunked(key, v.Data, v.Envelope, nil)
		} else {
			o, err = Open(key, v.Data, nil)
		}
		if err != nil || !bytes.Equal(o.Payload, payload) {
			t.Fatalf("%d bytes read back: %d bytes, %v", size, len(o.Payload), err)
		}
	}
}
