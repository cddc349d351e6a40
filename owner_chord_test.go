package dhtkit

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/owner"
)

// TestChordOwnerKeys: a Chord ring enforces owner keys as Kademlia does
// (the rule lives in the store, below both engines): the owner writes
// with its own versions and deletes with a signed delete; an unsigned
// write, a plain delete and another signer are refused.
func TestChordOwnerKeys(t *testing.T) {
	nodes := chordRing(t, 4)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	alice, _ := NewIdentity(bytes.Repeat([]byte{1}, 32))
	bob, _ := NewIdentity(bytes.Repeat([]byte{2}, 32))
	seal := func(id Identity, text string) []byte {
		t.Helper()
		cur, _ := nodes[1].Stat(ctx, "k")
		b, err := SealWith("k", []byte(text), id.Sign, nil, SignOptions{Version: owner.NextVersion(id.SignPublic(), time.Now(), cur.Version)})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if _, err := nodes[0].Put(ctx, "k", seal(alice, "alice"), PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := nodes[1].Put(ctx, "k", seal(bob, "bob"), PutOptions{}); err == nil {
		t.Fatal("bob overwrote alice's key")
	}
	if _, err := nodes[2].Put(ctx, "k", []byte("unsigned"), PutOptions{}); err == nil {
		t.Fatal("an unsigned put overwrote alice's key")
	}
	if err := nodes[3].Delete(ctx, "k"); err == nil {
		t.Fatal("a plain delete removed alice's key")
	}
	v, err := nodes[3].GetSignedBy(ctx, "k", alice.SignPublic())
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := Open("k", v.Data, nil); string(o.Payload) != "alice" {
		t.Fatalf("read %q", o.Payload)
	}
	cur, _ := nodes[1].Stat(ctx, "k")
	tomb, _ := SignDelete("k", alice.Sign, SignOptions{Version: owner.NextVersion(alice.SignPublic(), time.Now(), cur.Version)})
	if err := nodes[2].DeleteSigned(ctx, "k", tomb); err != nil {
		t.Fatal(err)
	}
	if _, err := nodes[0].Get(ctx, "k"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get after the signed delete: %v", err)
	}
}

// BenchmarkPutSigned is BenchmarkPut with each value signed by its owner
// (a fresh key each time, so every put claims one): the cost of the check
// every replica makes, side by side with BenchmarkPut.
func BenchmarkPutSigned(b *testing.B) {
	nodes := network(b, 5, 1)
	ctx := context.Background()
	alice, _ := NewIdentity(bytes.Repeat([]byte{1}, 32))
	value := make([]byte, 100)
	var seq atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := seq.Add(1)
			key := "bench-" + strconv.FormatInt(i, 10)
			env, err := SealWith(key, value, alice.Sign, nil, SignOptions{})
			if err != nil {
				b.Error(err)
				return
			}
			if _, err := nodes[i%5].Put(ctx, key, env, PutOptions{}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
