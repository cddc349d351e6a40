package dhtkit

import (
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/dhtkit/dhtkit/owner"
	"github.com/dhtkit/dhtkit/store"
)

// ErrBadChunk: a record under a chunk's key does not hold the data the
// key names.
var ErrBadChunk = errors.New("a chunk record must hold the data its key names")

// admit is the rule a Node's replicas apply before they store a record
// (store.Config.Admit). A chunk of a large value is named by its hash, so
// its record must hold that data: a forged write cannot replace a chunk,
// and nobody can claim a chunk's key with a signature (which would refuse
// the chunk to the value that needs it). Every other key follows the
// owner rule (owner.Admit).
func admit(old *store.Record, r store.Record) error {
	if _, u, ok := parseOwnedChunkKey(r.Key); ok && !r.Deleted {
		// An upload's chunk: it names the owner key whose hash its key
		// holds, and holds the data its key names.
		if len(r.Value) == 0 || r.Value[0] != kindOwned {
			return fmt.Errorf("%q: %w", shortKey(r.Key), ErrBadChunk)
		}
		of, kind, data, err := splitOwned(r.Value[1:])
		if err != nil || (kind != kindChunk && kind != kindIndex) || ownedChunkKey(of, u, sha1.Sum(data)) != r.Key {
			return fmt.Errorf("%q: %w", shortKey(r.Key), ErrBadChunk)
		}
		return nil
	}
	if h, ok := strings.CutPrefix(r.Key, chunkKeyPrefix); ok && !r.Deleted {
		v := r.Value
		if len(v) == 0 || (v[0] != kindChunk && v[0] != kindIndex) {
			return fmt.Errorf("%q: %w", shortKey(r.Key), ErrBadChunk)
		}
		sum := sha1.Sum(v[1:])
		if hex.EncodeToString(sum[:]) != h {
			return fmt.Errorf("%q: %w", shortKey(r.Key), ErrBadChunk)
		}
		return nil
	}
	return owner.Admit(old, r)
}
