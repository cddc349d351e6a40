package dhtkit

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/dhtkit/dhtkit/kademlia"
	"github.com/dhtkit/dhtkit/owner"
	"github.com/dhtkit/dhtkit/replica"
	"github.com/dhtkit/dhtkit/store"
)

// Permanent puts: a value its writer keeps alive for as long as the
// writer runs, as OpenDHT's permanent puts are. The node writes it again
// before it expires (replica.Keeper decides when: every TTL/3, sooner
// after a failure), each time as a new version with a fresh expiry, so
// that the key's replica set as it is at that moment (nodes that joined
// since included) holds it. The list of a node's permanent puts is kept
// in its data directory (file "permanent"), saved before a put is
// acknowledged and after every cancel, so a node restarted with the same
// --data goes on refreshing them. Without a data directory they last as
// long as the process.
//
// A permanent put stops when it is cancelled (CancelPermanent, or Delete
// of its key through this node), and when the writer finds at a refresh
// that the key holds a newer write that is not its value (another
// writer's value, or a delete made through another node): the writer
// never undoes a later write. Once stopped, the value is gone from every
// replica within its TTL, which is why a permanent put's TTL defaults to
// DefaultPermanentTTL rather than the 24 hours of a plain put.

// DefaultPermanentTTL is the TTL of a permanent put made without one:
// short, so that a cancelled permanent value, or one whose writer is gone
// for good, disappears soon.
const DefaultPermanentTTL = 10 * time.Minute

// MinPermanentTTL is the shortest TTL a permanent put may have.
const MinPermanentTTL = 10 * time.Second

// MaxPermanent bounds the permanent puts one node keeps alive.
const MaxPermanent = 1024

// permanentParallel bounds the refreshes a node has in flight.
const permanentParallel = 8

// Errors of permanent puts.
var (
	ErrNotPermanent = errors.New("not a permanent put of this node")
	ErrPermanent    = errors.New("cannot be a permanent put")
)

// PermanentPut is one value a node keeps alive.
type PermanentPut struct {
	Key     string        `json:"key"`
	TTL     time.Duration `json:"ttl"`
	Size    int           `json:"size"`
	Version store.Version `json:"version"` // the last version this node wrote
	// Written is when that version was acknowledged; zero when none has
	// been since the node started.
	Written time.Time `json:"written"`
}

// permanentRecord is one permanent put as the data directory keeps it.
type permanentRecord struct {
	Key     string        `json:"key"`
	Value   []byte        `json:"value"`
	TTL     time.Duration `json:"ttl"`
	Version store.Version `json:"version"`
}

// permanentPuts is a node's list of permanent puts and their schedule.
type permanentPuts struct {
	mu      sync.Mutex
	keeper  *replica.Keeper
	vals    map[string]*permanentRecord
	written map[string]time.Time
	wake    chan struct{}
	// saveMu orders the saves of the list, so that the file on disk is
	// always the latest list whatever order two saves finish in.
	saveMu sync.Mutex
}

func newPermanentPuts(saved []permanentRecord, now time.Time) *permanentPuts {
	p := &permanentPuts{keeper: replica.NewKeeper(), vals: map[string]*permanentRecord{}, written: map[string]time.Time{}, wake: make(chan struct{}, 1)}
	for i := range saved {
		r := saved[i]
		p.vals[r.Key] = &r
		// Written before the restart, at a time we do not know: refresh
		// as soon as the node is ready.
		p.keeper.Add(r.Key, r.TTL, now)
	}
	return p
}

// poke wakes the refresh loop.
func (p *permanentPuts) poke() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// list returns the records to save, in key order.
func (p *permanentPuts) list() []permanentRecord {
	out := make([]permanentRecord, 0, len(p.vals))
	for _, r := range p.vals {
		out = append(out, *r)
	}
	slices.SortFunc(out, func(a, b permanentRecord) int {
		switch {
		case a.Key < b.Key:
			return -1
		case a.Key > b.Key:
			return 1
		}
		return 0
	})
	return out
}

// save writes the list to the data directory, if the node has one.
func (n *Node) savePermanent() error {
	if n.dir == nil {
		return nil
	}
	p := n.permanent
	p.saveMu.Lock()
	defer p.saveMu.Unlock()
	p.mu.Lock()
	list := p.list()
	p.mu.Unlock()
	return n.dir.savePermanent(list)
}

// checkPermanent says why value cannot be a permanent put of key.
func (n *Node) checkPermanent(key string, value []byte, opt PutOptions) error {
	switch {
	case owner.Is(value):
		return fmt.Errorf("dhtkit: put %q: %w: a signed value carries the expiry its owner signed; sign it again to extend it", shortKey(key), ErrPermanent)
	case len(value) > chunkSize:
		return fmt.Errorf("dhtkit: put %q: %w: a permanent value is kept in the writer's memory and data directory, so it must fit one record (%d bytes, this one is %d)", shortKey(key), ErrPermanent, chunkSize, len(value))
	case opt.TTL != 0 && opt.TTL < MinPermanentTTL:
		return fmt.Errorf("dhtkit: put %q: %w: a TTL of %v is shorter than the %v a permanent put needs to be refreshed in time", shortKey(key), ErrPermanent, opt.TTL, MinPermanentTTL)
	}
	return nil
}

// putPermanent writes value under key and keeps it alive (Put with
// opt.Permanent). It returns once the first write is acknowledged and the
// list of permanent puts, with this one, is on disk.
func (n *Node) putPermanent(ctx context.Context, key string, value []byte, opt PutOptions) (store.Version, error) {
	if err := n.checkPermanent(key, value, opt); err != nil {
		return store.Version{}, err
	}
	if opt.TTL == 0 {
		opt.TTL = DefaultPermanentTTL
	}
	p := n.permanent
	p.mu.Lock()
	if p.vals[key] == nil && len(p.vals) >= MaxPermanent {
		p.mu.Unlock()
		return store.Version{}, fmt.Errorf("dhtkit: put %q: %w: this node keeps %d permanent puts already, the most it keeps (MaxPermanent); cancel one first", shortKey(key), ErrPermanent, MaxPermanent)
	}
	p.mu.Unlock()
	v, err := n.putRecord(ctx, key, append([]byte{kindInline}, value...), PutOptions{TTL: opt.TTL, Source: opt.Source})
	if err != nil {
		return v, err
	}
	now := time.Now()
	p.mu.Lock()
	p.vals[key] = &permanentRecord{Key: key, Value: append([]byte(nil), value...), TTL: opt.TTL, Version: v}
	p.written[key] = now
	p.keeper.Add(key, opt.TTL, now)
	p.keeper.Done(key, now, true)
	p.mu.Unlock()
	if err := n.savePermanent(); err != nil {
		n.stopPermanent(key)
		return v, fmt.Errorf("dhtkit: put %q: written once, but not kept alive: saving the list of permanent puts: %w", shortKey(key), err)
	}
	p.poke()
	return v, nil
}

// CancelPermanent stops keeping key's value alive: this node writes it no
// more, and forgets it in its data directory. The value stays readable
// until it expires, at most its TTL from now. It fails with
// ErrNotPermanent when this node keeps no permanent put of key.
func (n *Node) CancelPermanent(key string) error {
	if !n.stopPermanent(key) {
		return fmt.Errorf("dhtkit: cancel %q: %w", shortKey(key), ErrNotPermanent)
	}
	if err := n.savePermanent(); err != nil {
		return fmt.Errorf("dhtkit: cancel %q: stopped, but saving the list of permanent puts failed (a restart would resume it): %w", shortKey(key), err)
	}
	n.log.Info("permanent put cancelled", "key", shortKey(key))
	return nil
}

// stopPermanent drops key from the list in memory; it reports whether it
// was there.
func (n *Node) stopPermanent(key string) bool {
	p := n.permanent
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.vals[key]
	delete(p.vals, key)
	delete(p.written, key)
	p.keeper.Cancel(key)
	return ok
}

// cancelForDelete stops the permanent put of key, if any, before a delete
// of key: the delete would otherwise be undone at the next refresh.
func (n *Node) cancelForDelete(key string) error {
	if !n.stopPermanent(key) {
		return nil
	}
	return n.savePermanent()
}

// Permanent lists the permanent puts this node keeps alive, in key order.
func (n *Node) Permanent() []PermanentPut {
	p := n.permanent
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]PermanentPut, 0, len(p.vals))
	for _, r := range p.list() {
		out = append(out, PermanentPut{Key: r.Key, TTL: r.TTL, Size: len(r.Value), Version: r.Version, Written: p.written[r.Key]})
	}
	return out
}

// keepPermanent is the refresh loop: it writes each permanent value when
// the Keeper says it is due, at most permanentParallel at once.
func (n *Node) keepPermanent() {
	defer n.wg.Done()
	p := n.permanent
	sem := make(chan struct{}, permanentParallel)
	var inflight sync.WaitGroup
	defer inflight.Wait()
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		p.mu.Lock()
		due := p.keeper.Due(time.Now())
		p.mu.Unlock()
		for _, key := range due {
			select {
			case sem <- struct{}{}:
			case <-n.ctx.Done():
				return
			}
			inflight.Add(1)
			go func() {
				defer func() { <-sem; inflight.Done() }()
				n.refreshPermanent(key)
			}()
		}
		p.mu.Lock()
		next := p.keeper.Deadline()
		p.mu.Unlock()
		wait := time.Hour
		if !next.IsZero() {
			wait = max(time.Until(next), 0)
		}
		t.Reset(wait)
		select {
		case <-n.ctx.Done():
			return
		case <-p.wake:
			if !t.Stop() {
				<-t.C
			}
		case <-t.C:
		}
	}
}

// refreshTimeout bounds one refresh: its read and its write.
const refreshTimeout = time.Minute

// refreshPermanent writes key's permanent value again, unless the key now
// holds a newer write that is not this value.
func (n *Node) refreshPermanent(key string) {
	p := n.permanent
	p.mu.Lock()
	r := p.vals[key]
	var rec permanentRecord
	if r != nil {
		rec = *r
	}
	p.mu.Unlock()
	if r == nil {
		return
	}
	ctx, cancel := context.WithTimeout(n.ctx, refreshTimeout)
	defer cancel()
	ok := false
	defer func() {
		p.mu.Lock()
		p.keeper.Done(key, time.Now(), ok)
		p.mu.Unlock()
		p.poke()
	}()
	if err := n.waitReady(ctx); err != nil {
		return
	}
	if why := n.supersededBy(ctx, key, rec); why != "" {
		n.log.Warn("permanent put stopped: the key holds a newer write", "key", shortKey(key), "newer", why)
		if n.stopPermanent(key) {
			if err := n.savePermanent(); err != nil {
				n.log.Warn("saving the list of permanent puts", "err", err)
			}
		}
		return
	}
	p.mu.Lock()
	kept := p.keeper.Has(key)
	p.mu.Unlock()
	if !kept {
		return // cancelled during the read: a write now would outlive the cancel by more than the TTL
	}
	v, err := n.putRecord(ctx, key, append([]byte{kindInline}, rec.Value...), PutOptions{TTL: rec.TTL})
	if err != nil {
		n.log.Debug("refreshing a permanent put", "key", shortKey(key), "err", err)
		return
	}
	ok = true
	p.mu.Lock()
	if cur := p.vals[key]; cur != nil && v.Newer(cur.Version) {
		cur.Version = v
		p.written[key] = time.Now()
	}
	p.mu.Unlock()
}

// supersededBy reads key and says what newer write than rec's version,
// not rec's value, it holds ("" when none, or when it cannot tell: a
// failed read never stops a permanent put).
func (n *Node) supersededBy(ctx context.Context, key string, rec permanentRecord) string {
	res, err := n.rt.Do(ctx, kademlia.KVGet{Key: key})
	switch {
	case errors.Is(err, kademlia.ErrNotFound):
		if !res.Version.IsZero() && res.Version.Newer(rec.Version) && !res.Partial {
			return "a delete, version " + res.Version.String()
		}
		return "" // expired or lost: write it again
	case err != nil || res.Record == nil:
		return ""
	}
	v := res.Record.Value
	if len(v) > 0 && v[0] == kindInline && string(v[1:]) == string(rec.Value) {
		return "" // ours (or the same bytes)
	}
	if res.Record.Version.Newer(rec.Version) {
		return "version " + res.Record.Version.String()
	}
	return ""
}
