package dhtkit

import (
	"bytes"
	"crypto/sha1"
	"errors"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/owner"
	"github.com/dhtkit/dhtkit/store"
)

func TestAdmitChunks(t *testing.T) {
	data := []byte("a chunk of a large value")
	key := chunkKey(sha1.Sum(data))
	v := store.Version{Time: 1 << 40, Writer: 1}
	exp := time.Now().Add(time.Hour)
	alice, _ := NewIdentity(bytes.Repeat([]byte{1}, 32))
	claim, _ := owner.Sign(key, alice.Sign, owner.Envelope{Version: v, Expires: exp, Payload: data})
	for _, tc := range []struct {
		name string
		r    store.Record
		want error
	}{
		{"the chunk", store.Record{Key: key, Value: append([]byte{kindChunk}, data...), Version: v}, nil},
		{"an index chunk", store.Record{Key: key, Value: append([]byte{kindIndex}, data...), Version: v}, nil},
		{"other data", store.Record{Key: key, Value: append([]byte{kindChunk}, "forged"...), Version: v}, ErrBadChunk},
		{"an inline value", store.Record{Key: key, Value: append([]byte{kindInline}, data...), Version: v}, ErrBadChunk},
		{"an owner's claim", store.Record{Key: key, Value: claim, Version: v, Expires: exp}, ErrBadChunk},
		{"empty", store.Record{Key: key, Value: []byte{}, Version: v}, ErrBadChunk},
		{"a tombstone (chunk lifecycle)", store.Record{Key: key, Version: v, Deleted: true}, nil},
		{"a key that only looks like one", store.Record{Key: "dhtkit/chunks", Value: []byte("\x00x"), Version: v}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := admit(nil, tc.r); !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("admit = %v, want %v", err, tc.want)
			}
		})
	}
	// An upload's chunks: the owner named, the data hashed.
	u := newUploadID(time.UnixMilli(1700000000000))
	upKey := ownedChunkKey("file.bin", u, sha1.Sum(data))
	for _, tc := range []struct {
		name string
		r    store.Record
		want error
	}{
		{"an upload's chunk", store.Record{Key: upKey, Value: append(ownedHeader("file.bin", kindChunk), data...), Version: v}, nil},
		{"an upload's index chunk", store.Record{Key: upKey, Value: append(ownedHeader("file.bin", kindIndex), data...), Version: v}, nil},
		{"another owner", store.Record{Key: upKey, Value: append(ownedHeader("other.bin", kindChunk), data...), Version: v}, ErrBadChunk},
		{"other data", store.Record{Key: upKey, Value: append(ownedHeader("file.bin", kindChunk), "forged"...), Version: v}, ErrBadChunk},
		{"not owned", store.Record{Key: upKey, Value: append([]byte{kindChunk}, data...), Version: v}, ErrBadChunk},
		{"an inline value inside", store.Record{Key: upKey, Value: append(ownedHeader("file.bin", kindInline), data...), Version: v}, ErrBadChunk},
		{"a tombstone", store.Record{Key: upKey, Version: v, Deleted: true}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := admit(nil, tc.r); !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("admit = %v, want %v", err, tc.want)
			}
		})
	}
	// Other keys follow the owner rule.
	owned, _ := owner.Sign("k", alice.Sign, owner.Envelope{Version: v, Expires: exp, Payload: []byte("x")})
	old := store.Record{Key: "k", Value: owned, Version: v, Expires: exp}
	if err := admit(&old, store.Record{Key: "k", Value: []byte("\x00evil"), Version: store.Version{Time: v.Time + 1}}); !errors.Is(err, owner.ErrNotOwner) {
		t.Fatalf("an unsigned write over an owned key: %v", err)
	}
}
