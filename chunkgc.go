package dhtkit

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dhtkit/dhtkit/routing"
	"github.com/dhtkit/dhtkit/store"
)

// The chunk collector releases the chunks no live manifest names: those
// of a value deleted or overwritten, and those of a put that failed or was
// interrupted. It runs on every node over the chunks that node holds, so
// nothing needs to reach the chunks' holders when a value goes.
//
// The rule, per upload (the chunks of one PutReader, see value.go): once
// ChunkGrace has passed since the upload started, its chunks live only as
// long as the key's newest record is a manifest naming that upload. Before
// then nothing is released, since the upload may still be running: its
// manifest is written last, and may win over a manifest or a delete that
// is newer than its chunks. PutReader gives up at ChunkGrace less
// chunkMargin, so a manifest can no longer appear once the collector
// decides. Hence the bound users read in the README: a deleted or
// overwritten value's chunks are released at most ChunkGrace after its
// put began, plus one ChunkCollectInterval; those of a failed or
// interrupted put, at most ChunkGrace plus one interval after it began.
//
// Removal is local (store.Remove), not a delete: a tombstone per chunk
// would outlive the chunk by MaxTTL. A replica that still holds a chunk
// may hand it back by anti-entropy before its own collector runs; the
// next pass removes it again, and the copies converge to none.

// Defaults of Config.ChunkGrace and Config.ChunkCollectInterval.
const (
	DefaultChunkGrace           = time.Hour
	DefaultChunkCollectInterval = 5 * time.Minute
)

// chunkMargin is what separates the end of a put (PutReader gives up) from
// the moment collectors may release its chunks: room for the manifest's
// write to land and for clock differences between nodes.
func chunkMargin(grace time.Duration) time.Duration { return min(5*time.Minute, grace/4) }

// chunkCollector is the collector's configuration.
type chunkCollector struct {
	grace, interval time.Duration
	peers           bool         // the node was given peers: its table alone is not the network
	released        atomic.Int64 // chunk records removed

	mu sync.Mutex
	// checked is when each upload group was last looked up and found
	// live: a pass looks up the groups checked longest ago first.
	checked map[string]time.Time
}

func newChunkCollector(cfg Config) *chunkCollector {
	c := &chunkCollector{grace: cfg.ChunkGrace, interval: cfg.ChunkCollectInterval}
	if c.grace <= 0 {
		c.grace = DefaultChunkGrace
	}
	if c.interval <= 0 {
		c.interval = DefaultChunkCollectInterval
	}
	return c
}

// uploadLimit is the longest a chunked put may take.
func (c *chunkCollector) uploadLimit() time.Duration { return c.grace - chunkMargin(c.grace) }

func (n *Node) collectChunksPeriodically() {
	defer n.wg.Done()
	t := time.NewTicker(n.chunks.interval)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
			n.collectChunks(n.ctx, time.Now())
		}
	}
}

// chunkGroup is the chunks this node holds of one upload.
type chunkGroup struct {
	upload   uploadID
	keys     []string
	versions []store.Version
}

// collectParallel bounds the manifest lookups of one pass in flight.
const collectParallel = 8

// removeBatch is how many chunk records one hold of the engine removes,
// in one commit.
const removeBatch = 1024

// collectChunks makes one pass of the collector at now and returns how
// many chunk records it removed.
func (n *Node) collectChunks(ctx context.Context, now time.Time) int {
	if n.chunks.peers && n.goodContacts() == 0 {
		// Cut off: a lookup would see this node's own store only and
		// miss manifests held elsewhere.
		return 0
	}
	st := n.eng.Store()
	groups := map[string]*chunkGroup{}
	// Entries come from the index: no value is read.
	_ = st.Bucket(0, 0, func(e store.Entry) bool {
		if e.Deleted || !strings.HasPrefix(e.Key, chunkKeyPrefix) {
			return true
		}
		name, u, ok := parseOwnedChunkKey(e.Key)
		if !ok || now.Before(u.started().Add(n.chunks.grace)) {
			return true
		}
		g := groups[name]
		if g == nil {
			g = &chunkGroup{upload: u}
			groups[name] = g
		}
		g.keys = append(g.keys, e.Key)
		g.versions = append(g.versions, e.Version)
		return true
	})
	if len(groups) == 0 {
		return 0
	}
	names := n.chunks.due(groups)
	var (
		mu      sync.Mutex
		dead    []*chunkGroup
		wg      sync.WaitGroup
		sem     = make(chan struct{}, collectParallel)
		removed int
	)
	for _, name := range names {
		g := groups[name]
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			isDead, sure := n.uploadDead(ctx, st, name, g)
			mu.Lock()
			defer mu.Unlock()
			if isDead {
				dead = append(dead, g)
			} else if sure {
				n.chunks.live(name, now)
			}
		}()
	}
	wg.Wait()
	for _, g := range dead {
		for i := 0; i < len(g.keys); i += removeBatch {
			batch := make([]store.Entry, 0, removeBatch)
			for j := i; j < min(i+removeBatch, len(g.keys)); j++ {
				batch = append(batch, store.Entry{Key: g.keys[j], Version: g.versions[j]})
			}
			n.rt.Inspect(func() {
				k, err := removeAll(st, batch)
				removed += k
				if err != nil {
					n.log.Warn("releasing chunks", "records", len(batch), "err", err)
				}
			})
		}
	}
	n.chunks.released.Add(int64(removed))
	if removed > 0 {
		n.log.Info("released the chunks of deleted, overwritten or abandoned uploads", "records", removed, "uploads", len(dead))
	}
	return removed
}

// removeAll removes es from st in one commit when st can (store.Bolt and
// store.Memory: one fsync per batch, not per chunk), else one by one.
func removeAll(st store.Store, es []store.Entry) (int, error) {
	if b, ok := st.(interface {
		RemoveAll([]store.Entry) (int, error)
	}); ok {
		return b.RemoveAll(es)
	}
	removed := 0
	for _, e := range es {
		if err := st.Remove(e.Key, e.Version); err != nil {
			return removed, err
		}
		removed++
	}
	return removed, nil
}

// ownerLookupTimeout bounds one manifest lookup of the collector.
const ownerLookupTimeout = 30 * time.Second

// uploadDead reports whether the upload of group g (named name) is over
// and not the one the owner key's newest record names; sure is false when
// it could not tell. Any doubt (a chunk it cannot read, a lookup that
// fails or is partial) keeps the chunks for the next pass.
func (n *Node) uploadDead(ctx context.Context, st store.Store, name string, g *chunkGroup) (dead, sure bool) {
	rec, ok, err := st.Get(g.keys[0])
	if err != nil || !ok || rec.Deleted || len(rec.Value) == 0 || rec.Value[0] != kindOwned {
		return false, false
	}
	owner, _, _, err := splitOwned(rec.Value[1:])
	if err != nil || !strings.HasPrefix(ownedChunkKey(owner, g.upload, [20]byte{}), name+"/") {
		return false, false
	}
	ctx, cancel := context.WithTimeout(ctx, ownerLookupTimeout)
	defer cancel()
	res, kind, data, err := n.getRecord(ctx, owner)
	switch {
	case errors.Is(err, ErrNotFound):
		return !res.Partial, !res.Partial // deleted, expired or never written
	case err != nil || res.Partial:
		return false, false
	case kind == kindSigned:
		// An owner's envelope: a signed manifest names its upload
		// (signedchunks.go); any other signed record names none.
		m, ok := signedManifest(data)
		return !ok || m.upload == nil || *m.upload != g.upload, true
	case kind != kindManifest:
		return true, true // overwritten by a small value
	}
	m, err := decodeManifest(data)
	if err != nil {
		return false, false
	}
	return m.upload == nil || *m.upload != g.upload, true
}

// maxLookupsPerPass bounds the manifest lookups of one collector pass, so
// that chunk records written to make a node look up many keys cost a
// bounded rate of queries.
const maxLookupsPerPass = 256

// due returns the names of the groups a pass looks up: at most
// maxLookupsPerPass, those never found live first, then those found live
// longest ago, so that every group is looked up in turn. It forgets the
// groups no longer held.
func (c *chunkCollector) due(groups map[string]*chunkGroup) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	for name := range c.checked {
		if groups[name] == nil {
			delete(c.checked, name)
		}
	}
	names := make([]string, 0, len(groups))
	for name := range groups {
		names = append(names, name)
	}
	slices.SortFunc(names, func(a, b string) int {
		if d := c.checked[a].Compare(c.checked[b]); d != 0 {
			return d
		}
		return strings.Compare(a, b)
	})
	return names[:min(len(names), maxLookupsPerPass)]
}

// live notes that the group name was found live at now.
func (c *chunkCollector) live(name string, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.checked == nil {
		c.checked = map[string]time.Time{}
	}
	c.checked[name] = now
}

// goodContacts counts the routing table's contacts not known to be bad.
func (n *Node) goodContacts() int {
	k := 0
	for _, b := range n.Routing() {
		for _, c := range b.Contacts {
			if c.State != routing.Bad {
				k++
			}
		}
	}
	return k
}

// StorageFaults is what a node met of failing storage and what its chunk
// collector did, for /metrics.
type StorageFaults struct {
	// DamagedRecords counts the records dropped because they failed their
	// checksum or could not be decoded: not served, and refilled by the
	// other replicas.
	DamagedRecords int64
	// WriteErrors counts the writes the disk refused (full, I/O error).
	WriteErrors int64
	// ChunksReleased counts the chunk records the collector removed.
	ChunksReleased int64
}

// StorageFaults returns the node's StorageFaults; a node without a data
// directory has no disk to fail.
func (n *Node) StorageFaults() StorageFaults {
	f := StorageFaults{ChunksReleased: n.chunks.released.Load()}
	if n.dir != nil {
		f.DamagedRecords, f.WriteErrors = n.dir.store.Faults()
	}
	return f
}
