package dhtkit

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/dhtkit/dhtkit/kademlia"
	"github.com/dhtkit/dhtkit/owner"
	"github.com/dhtkit/dhtkit/replica"
	"github.com/dhtkit/dhtkit/store"
)

// Conditional writes: Put with PutOptions.IfVersion or IfAbsent, decided
// at the key's replica set by CASPaxos (replica/cas.go), the node as
// proposer. What holds is in the README ("Conditional writes"): among
// conditional writes of a key, no acknowledged one is lost or applied to
// a stale state, with concurrent writers and a minority of the replica
// set down.

// Errors of conditional writes.
var (
	// ErrConflict: the condition did not hold; the error names the key's
	// current version (errors.As to a *ConflictError for it).
	ErrConflict = replica.ErrConflict
	// ErrContended: other writes of the key kept beating this one;
	// nothing was written.
	ErrContended = replica.ErrContended
	// ErrIndeterminate: the write reached fewer replicas than its quorum
	// and could not be settled; it may or may not have taken effect.
	ErrIndeterminate = replica.ErrIndeterminate
)

// ConflictError is a failed condition, naming the key's current version.
type ConflictError = replica.ConflictError

// casAttempts bounds the rounds of one conditional write: contended
// rounds tried again, and rounds that settle an indeterminate one.
const casAttempts = 8

// conditional reports whether opt asks for a conditional write.
func (o PutOptions) conditional() bool { return o.IfAbsent || !o.IfVersion.IsZero() }

// cond is opt's condition.
func (o PutOptions) cond() replica.Cond {
	return replica.Cond{IfAbsent: o.IfAbsent, IfVersion: o.IfVersion}
}

// putConditional writes value under key if opt's condition holds at the
// replica set. A round that other writes beat is tried again (nothing was
// written); one whose accept reached too few replicas is settled by
// further rounds (replica.RecoverChange).
func (n *Node) putConditional(ctx context.Context, key string, value []byte, opt PutOptions) (store.Version, error) {
	switch {
	case owner.Is(value):
		return store.Version{}, fmt.Errorf("dhtkit: put %q: a signed value carries its owner's version: it cannot be a conditional write: %w", shortKey(key), store.ErrInvalid)
	case len(value) > chunkSize:
		return store.Version{}, fmt.Errorf("dhtkit: put %q: a conditional write is one record (%d bytes at most, this value is %d): %w", shortKey(key), chunkSize, len(value), store.ErrInvalid)
	case opt.Permanent:
		return store.Version{}, fmt.Errorf("dhtkit: put %q: %w: a conditional write is decided once; its refreshes could not be", shortKey(key), ErrPermanent)
	case opt.IfAbsent && !opt.IfVersion.IsZero():
		return store.Version{}, fmt.Errorf("dhtkit: put %q: if-absent and if-version together: give one: %w", shortKey(key), store.ErrInvalid)
	}
	if err := n.waitReady(ctx); err != nil {
		return store.Version{}, fmt.Errorf("dhtkit: put %q: %w", shortKey(key), err)
	}
	ttl := opt.TTL
	if ttl <= 0 {
		ttl = kademlia.DefaultConfig().DefaultTTL
	}
	rec := append([]byte{kindInline}, value...)
	cond := opt.cond()
	var was []store.Version // ballots an indeterminate round may have been accepted under
	var err error
	for attempt := 1; attempt <= casAttempts; attempt++ {
		op := kademlia.KVCas{Key: key, Value: rec, TTL: ttl, Cond: cond}
		if len(was) > 0 {
			op.Change = replica.RecoverChange(key, was, cond, store.Record{Value: rec, Expires: time.Now().Add(ttl)})
		}
		var res kademlia.Result
		res, err = n.rt.Do(ctx, op)
		switch {
		case err == nil:
			return res.Version, nil
		case errors.Is(err, replica.ErrSuperseded), errors.Is(err, ErrConflict) && len(was) == 0:
			return store.Version{}, fmt.Errorf("dhtkit: put %q: %w", shortKey(key), err)
		case errors.Is(err, ErrIndeterminate):
			was = append(was, res.Version)
		case errors.Is(err, ErrContended), errors.Is(err, kademlia.ErrQuorum), errors.Is(err, kademlia.ErrTimeout):
			// Nothing written by this round: try again, after a pause
			// that lets a competing writer finish.
		default:
			return store.Version{}, fmt.Errorf("dhtkit: put %q: %w", shortKey(key), err)
		}
		select {
		case <-time.After(time.Duration(attempt) * time.Duration(10+rand.IntN(40)) * time.Millisecond):
		case <-ctx.Done():
			err = ctx.Err()
			attempt = casAttempts
		}
	}
	if len(was) > 0 {
		return store.Version{}, fmt.Errorf("dhtkit: put %q: %w (after %d rounds: %w)", shortKey(key), ErrIndeterminate, casAttempts, err)
	}
	return store.Version{}, fmt.Errorf("dhtkit: put %q: %w", shortKey(key), err)
}
