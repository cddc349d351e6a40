package interop

import (
	"bytes"
	"crypto/ed25519"
	"testing"
	"time"

	"github.com/anacrolix/dht/v2/bep44"
	"github.com/anacrolix/dht/v2/exts/getput"
	akrpc "github.com/anacrolix/dht/v2/krpc"

	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/kademlia"
)

// BEP 44 items across implementations, both ways: anacrolix/dht puts, we
// get; we put, anacrolix gets; immutable and mutable (signed, salted).
func TestBEP44Anacrolix(t *testing.T) {
	ours, theirs := mixedAnacrolix(t, 6)
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32))
	var pub [32]byte
	copy(pub[:], key.Public().(ed25519.PublicKey))

	t.Run("anacrolix puts immutable, we get", func(t *testing.T) {
		ctx := timeout(t, 20*time.Second)
		put := bep44.Put{V: "from anacrolix"}
		target := put.Target()
		if _, err := getput.Put(ctx, akrpc.ID(target), theirs[1], nil, func(int64) bep44.Put { return put }); err != nil {
			t.Fatalf("anacrolix put: %v", err)
		}
		res, err := ours[4].Do(ctx, kademlia.GetItem{Target: id.ID(target)})
		if err != nil {
			t.Fatalf("our get: %v", err)
		}
		if string(res.Item.V) != "14:from anacrolix" {
			t.Fatalf("our get found %q", res.Item.V)
		}
	})
	t.Run("we put immutable, anacrolix gets", func(t *testing.T) {
		ctx := timeout(t, 20*time.Second)
		it := kademlia.Item{V: []byte("11:from dhtkit")}
		if res, err := ours[2].Do(ctx, kademlia.PutItem{Item: it}); err != nil || res.Stored == 0 {
			t.Fatalf("our put: stored %d, %v", res.Stored, err)
		}
		got, _, err := getput.Get(ctx, bep44.Target(it.Target()), theirs[3], nil, nil)
		if err != nil {
			t.Fatalf("anacrolix get: %v", err)
		}
		if string(got.V) != "11:from dhtkit" {
			t.Fatalf("anacrolix got %q", got.V)
		}
	})
	t.Run("anacrolix puts mutable, we get", func(t *testing.T) {
		ctx := timeout(t, 20*time.Second)
		salt := []byte("anacrolix-salt")
		put := bep44.Put{V: "signed by anacrolix", K: &pub, Salt: salt, Seq: 5}
		put.Sign(key)
		if _, err := getput.Put(ctx, put.Target(), theirs[0], salt, func(int64) bep44.Put { return put }); err != nil {
			t.Fatalf("anacrolix put: %v", err)
		}
		res, err := ours[1].Do(ctx, kademlia.GetItem{Target: id.ID(put.Target()), Salt: salt})
		if err != nil {
			t.Fatalf("our get: %v", err)
		}
		if res.Item.Seq != 5 || string(res.Item.V) != "19:signed by anacrolix" || !bytes.Equal(res.Item.K, pub[:]) {
			t.Fatalf("our get found seq %d %q", res.Item.Seq, res.Item.V)
		}
	})
	t.Run("we put mutable, anacrolix gets", func(t *testing.T) {
		ctx := timeout(t, 20*time.Second)
		salt := []byte("dhtkit-salt")
		it := kademlia.SignItem(key, salt, 9, []byte("16:signed by dhtkit"))
		if res, err := ours[3].Do(ctx, kademlia.PutItem{Item: it}); err != nil || res.Stored == 0 {
			t.Fatalf("our put: stored %d, %v", res.Stored, err)
		}
		got, _, err := getput.Get(ctx, bep44.Target(it.Target()), theirs[5], nil, salt)
		if err != nil {
			t.Fatalf("anacrolix get: %v", err)
		}
		if !got.Mutable || got.Seq != 9 || string(got.V) != "16:signed by dhtkit" {
			t.Fatalf("anacrolix got seq %d %q mutable %v", got.Seq, got.V, got.Mutable)
		}
	})
}
