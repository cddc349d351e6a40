package dhtkit

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/dhtkit/dhtkit/kademlia"
	"github.com/dhtkit/dhtkit/owner"
	"github.com/dhtkit/dhtkit/store"
)

// Many values per key, as OpenDHT has them: a key holds up to
// store.MaxValuesPerKey values, each with an id (store.ValueID: the
// writer's choice, or NewValueID's random one), its own version, expiry
// and, when signed, owner. Each value is its own record, under
// store.ValueKey(key, id), placed on the key's replicas; the default id
// (zero) is the key's record itself, so single-value use is what it was.
//
//   - Put with PutOptions.ID adds or replaces that value; without, the
//     default one.
//   - Values returns every live value, newest first; GetValue one.
//   - DeleteValue deletes one value, DeleteAll every value this node may
//     delete (the unsigned ones; a signed value needs its owner's signed
//     delete, DeleteSigned with the value's record key).
//   - WatchValues reports each value added, changed, deleted or expired.
//
// A signed value (Seal, SignValue) signs its record key, so its id is
// its owner's: replicas refuse other writers on that id (owner.Admit),
// and other writers add values under ids of their own.

// NewValueID returns a random value id, never the default one.
func NewValueID() store.ValueID {
	var b [8]byte
	for {
		rand.Read(b[:])
		if v := store.ValueID(binary.BigEndian.Uint64(b[:])); v != store.DefaultValue {
			return v
		}
	}
}

// valueKey is the record key a put of key with opt writes, and clears
// opt.ID so that a nested call does not apply it twice.
func valueKey(key string, opt *PutOptions) string {
	if opt.ID != store.DefaultValue {
		key = store.ValueKey(key, opt.ID)
		opt.ID = store.DefaultValue
	}
	return key
}

// GetValue reads value id of key (Get for the default id).
func (n *Node) GetValue(ctx context.Context, key string, id store.ValueID) (Value, error) {
	if err := checkKey("get", key); err != nil {
		return Value{ID: id}, err
	}
	v, err := n.Get(ctx, store.ValueKey(key, id))
	v.ID = id
	return v, err
}

// DeleteValue deletes value id of key (Delete for the default id).
func (n *Node) DeleteValue(ctx context.Context, key string, id store.ValueID) error {
	if err := checkKey("delete", key); err != nil {
		return err
	}
	return n.Delete(ctx, store.ValueKey(key, id))
}

// ErrSignedValues: DeleteAll left values that only their owners may
// delete.
var ErrSignedValues = errors.New("signed values are left: each needs its owner's signed delete")

// DeleteAll deletes every value of key and returns how many it deleted.
// Signed values are left to their owners: the error then wraps
// ErrSignedValues and names them.
func (n *Node) DeleteAll(ctx context.Context, key string) (int, error) {
	if err := checkKey("delete", key); err != nil {
		return 0, err
	}
	res, err := n.values(ctx, key)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return 0, nil
		}
		return 0, fmt.Errorf("dhtkit: delete %q: %w", shortKey(key), err)
	}
	var signed []string
	deleted := 0
	del := func(rk string, v []byte) error {
		if owner.Is(v) {
			_, id := store.SplitKey(rk)
			signed = append(signed, id.String())
			return nil
		}
		if err := n.Delete(ctx, rk); err != nil {
			return err
		}
		deleted++
		return nil
	}
	for _, rec := range res.Records {
		if rec.Deleted || signedDelete(rec.Value) {
			continue
		}
		if err := del(rec.Key, rec.Value); err != nil {
			return deleted, err
		}
	}
	for _, rk := range res.Fetch {
		r, err := n.rt.Do(ctx, kademlia.KVGet{Key: rk})
		if errors.Is(err, kademlia.ErrNotFound) || err == nil && (r.Record.Deleted || signedDelete(r.Record.Value)) {
			continue
		}
		if err != nil {
			return deleted, fmt.Errorf("dhtkit: delete %q: %w", shortKey(rk), err)
		}
		if err := del(rk, r.Record.Value); err != nil {
			return deleted, err
		}
	}
	if len(signed) > 0 {
		return deleted, fmt.Errorf("dhtkit: delete %q: %w (value ids %v)", shortKey(key), ErrSignedValues, signed)
	}
	return deleted, nil
}

// values asks key's replicas for all its records (kademlia.KVGet with
// All), tombstones included; under WithPartial, the best answer of fewer
// replicas than the read quorum too.
func (n *Node) values(ctx context.Context, key string) (kademlia.Result, error) {
	if err := n.waitReady(ctx); err != nil {
		return kademlia.Result{}, err
	}
	res, err := n.rt.Do(ctx, kademlia.KVGet{Key: key, All: true, Partial: partialOK(ctx)})
	if errors.Is(err, kademlia.ErrNotFound) {
		if len(res.Records) > 0 || len(res.Fetch) > 0 {
			return res, nil
		}
		return res, ErrNotFound
	}
	return res, err
}

// Values reads every live value of key from its replicas, newest first:
// for each value, the newest version among a read quorum of replicas, as
// Get does for one. ErrNotFound when it has none. Large values are
// assembled in memory.
func (n *Node) Values(ctx context.Context, key string) ([]Value, error) {
	return n.ValuesWithin(ctx, key, math.MaxInt64)
}

// StatValues is Values without the data: what Stat says of each value
// (size, version, expiry, signer), no chunk fetched.
func (n *Node) StatValues(ctx context.Context, key string) ([]Value, error) {
	return n.ValuesWithin(ctx, key, -1)
}

// ValuesWithin is Values holding at most maxBytes of data in all: the
// values past it, newest first, come as StatValues has them (Data nil,
// Size set), and are read one by one with GetValue.
func (n *Node) ValuesWithin(ctx context.Context, key string, maxBytes int64) ([]Value, error) {
	if err := checkKey("get", key); err != nil {
		return nil, err
	}
	res, err := n.values(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("dhtkit: get %q: %w", shortKey(key), err)
	}
	recs := slices.Clone(res.Records)
	for _, rk := range res.Fetch {
		// Known by version only (too large for the replicas' answer):
		// read by its record key.
		r, err := n.rt.Do(ctx, kademlia.KVGet{Key: rk, Partial: partialOK(ctx)})
		if errors.Is(err, kademlia.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("dhtkit: get %q: %w", shortKey(rk), err)
		}
		recs = append(recs, *r.Record)
	}
	slices.SortStableFunc(recs, func(a, b store.Record) int { return b.Version.Compare(a.Version) })
	var out []Value
	budget := maxBytes
	for _, rec := range recs {
		if rec.Deleted || signedDelete(rec.Value) {
			continue
		}
		v, err := statRecord(rec)
		if err == nil && budget >= 0 && v.Size <= budget {
			budget -= v.Size
			v, err = n.watchValue(ctx, rec.Key, rec)
		}
		if err != nil {
			// One bad value (a chunk lost, a forged signature) does not
			// hide the others.
			n.log.Debug("get: skipping a value", "key", shortKey(rec.Key), "err", err)
			continue
		}
		_, v.ID = store.SplitKey(rec.Key)
		v.Partial = res.Partial
		out = append(out, v)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("dhtkit: get %q: %w", shortKey(key), ErrNotFound)
	}
	slices.SortStableFunc(out, func(a, b Value) int { return b.Version.Compare(a.Version) })
	return out, nil
}

// Reason says what happened to a value that WatchValues reports.
type Reason string

// The reasons of a Change.
const (
	Added   Reason = "added"   // a value id not seen before
	Changed Reason = "changed" // a newer version of a value seen before
	Deleted Reason = "deleted" // a delete (a tombstone, or an owner's signed delete)
	Expired Reason = "expired" // the value's expiry passed
)

// Change is one event of WatchValues. Value.ID names the value; for
// Deleted and Expired, Value has no data: its Version is the delete's
// (Deleted) or that of the value that expired.
type Change struct {
	Key    string
	Reason Reason
	Value  Value
}

// WatchValues reports each value of key added, changed, deleted or
// expired, until ctx ends or the node closes. The values the key holds
// when it starts come first, as Added. With either protocol, the key's
// replicas push each version they take to the node (kademlia.KVListen:
// dk_listen and dk_notify, replica/listen.go), every version once; no
// one polls. Expiry is noticed here, at each value's expiry time.
//
// It returns once enough of the key's replicas hold the registration
// that every write acknowledged from then on reaches one of them
// (kademlia.Event.Listening), or after ListenWait if they do not answer
// (the watch goes on, and registers again at its next refresh): a write
// made after WatchValues returned is then reported, even one made at
// once from another node.
func (n *Node) WatchValues(ctx context.Context, key string) (<-chan Change, error) {
	if key == "" {
		return nil, fmt.Errorf("dhtkit: watch: %w", kademlia.ErrNoKey)
	}
	if err := checkKey("watch", key); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	events, err := n.rt.Watch(ctx, kademlia.KVListen{Key: key})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("dhtkit: watch %q: %w", shortKey(key), err)
	}
	early, err := n.listening(ctx, key, events)
	if err != nil {
		cancel()
		return nil, err
	}
	ch := make(chan Change)
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		defer close(ch)
		defer cancel() // ends the KVListen
		w := newValueWatch(key)
		timer := time.NewTimer(time.Hour)
		timer.Stop()
		defer timer.Stop()
		for {
			var out []Change
			if len(early) > 0 {
				if c, ok := w.record(ctx, n, early[0].Record); ok {
					out = append(out, c)
				}
				early = early[1:]
			} else {
				select {
				case ev, ok := <-events:
					if !ok {
						return
					}
					if ev.Listening {
						continue
					}
					if c, ok := w.record(ctx, n, ev.Record); ok {
						out = append(out, c)
					}
				case <-timer.C:
					out = w.expire(time.Now())
				case <-ctx.Done():
					return
				case <-n.ctx.Done():
					return
				}
			}
			timer.Stop()
			if next, ok := w.nextExpiry(); ok {
				timer.Reset(time.Until(next))
			}
			for _, c := range out {
				select {
				case ch <- c:
				case <-ctx.Done():
					return
				case <-n.ctx.Done():
					return
				}
			}
		}
	}()
	return ch, nil
}

// ListenWait is how long WatchValues and Watch wait for the key's
// replicas to take the registration before they return anyway.
const ListenWait = 10 * time.Second

// listening waits until the KVListen whose events these are is
// registered (kademlia.Event.Listening), at most ListenWait, and returns
// the records heard meanwhile. The watch may end meanwhile: the events
// channel then closes, and its records are returned all the same.
func (n *Node) listening(ctx context.Context, key string, events <-chan kademlia.Event) ([]kademlia.Event, error) {
	timer := time.NewTimer(ListenWait)
	defer timer.Stop()
	var early []kademlia.Event
	for {
		select {
		case ev, ok := <-events:
			if !ok || ev.Listening {
				return early, nil
			}
			early = append(early, ev)
		case <-timer.C:
			return early, nil
		case <-ctx.Done():
			return nil, fmt.Errorf("dhtkit: watch %q: %w", shortKey(key), ctx.Err())
		case <-n.ctx.Done():
			return nil, fmt.Errorf("dhtkit: watch %q: %w", shortKey(key), kademlia.ErrClosed)
		}
	}
}

// valueWatch is what WatchValues knows of a key's values: the last
// version reported of each live one, and its expiry.
type valueWatch struct {
	key  string
	live map[string]watched // by record key
}

type watched struct {
	version store.Version
	expires time.Time
}

func newValueWatch(key string) *valueWatch {
	return &valueWatch{key: key, live: make(map[string]watched)}
}

// record turns a record of the key into the Change it makes, if any.
func (w *valueWatch) record(ctx context.Context, n *Node, rec store.Record) (Change, bool) {
	_, id := store.SplitKey(rec.Key)
	old, known := w.live[rec.Key]
	if known && !rec.Version.Newer(old.version) {
		return Change{}, false
	}
	if rec.Deleted || signedDelete(rec.Value) {
		if !known {
			return Change{}, false
		}
		delete(w.live, rec.Key)
		return Change{Key: w.key, Reason: Deleted, Value: Value{ID: id, Version: rec.Version}}, true
	}
	v, err := n.watchValue(ctx, rec.Key, rec)
	if err != nil {
		n.log.Debug("watch: reading a new version", "key", shortKey(rec.Key), "version", rec.Version, "err", err)
		return Change{}, false
	}
	v.ID = id
	if len(w.live) >= 4*store.MaxValuesPerKey && !known {
		return Change{}, false // bounded: a key holds at most MaxValuesPerKey per replica
	}
	w.live[rec.Key] = watched{version: rec.Version, expires: rec.Expires}
	reason := Added
	if known {
		reason = Changed
	}
	return Change{Key: w.key, Reason: reason, Value: v}, true
}

// expire reports, and forgets, the values whose expiry passed by now.
func (w *valueWatch) expire(now time.Time) []Change {
	var out []Change
	for rk, x := range w.live {
		if x.expires.IsZero() || x.expires.After(now) {
			continue
		}
		delete(w.live, rk)
		_, id := store.SplitKey(rk)
		out = append(out, Change{Key: w.key, Reason: Expired, Value: Value{ID: id, Version: x.version, Expires: x.expires}})
	}
	slices.SortFunc(out, func(a, b Change) int { return a.Value.Version.Compare(b.Value.Version) })
	return out
}

// nextExpiry is the earliest expiry of a live value.
func (w *valueWatch) nextExpiry() (time.Time, bool) {
	var next time.Time
	for _, x := range w.live {
		if !x.expires.IsZero() && (next.IsZero() || x.expires.Before(next)) {
			next = x.expires
		}
	}
	return next, !next.IsZero()
}

// statRecord is statValue of a record as a replica sent it.
func statRecord(rec store.Record) (Value, error) {
	v := Value{Version: rec.Version, Expires: rec.Expires}
	if len(rec.Value) == 0 {
		return v, fmt.Errorf("dhtkit: stat %q: empty record", shortKey(rec.Key))
	}
	if owner.Is(rec.Value) {
		return statValue(rec.Key, v, kindSigned, rec.Value)
	}
	return statValue(rec.Key, v, rec.Value[0], rec.Value[1:])
}
