package dhtkit

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/dhtkit/dhtkit/kademlia"
	"github.com/dhtkit/dhtkit/store"
)

// ErrNotFound is returned by Get for a key that has no live value.
var ErrNotFound = errors.New("dhtkit: not found")

// PutOptions tune a put.
type PutOptions struct {
	// TTL is how long the value lives; 0 means kademlia's DefaultTTL (24h).
	TTL time.Duration
	// Source names the writer for per-source quotas (an HTTP client's IP).
	Source string
	// Progress, when set, is told the bytes stored so far of a large value.
	Progress func(done int64)
}

// Value is what Get returns.
type Value struct {
	Data    []byte
	Size    int64 // the value's length (Data is nil when written to a Writer)
	Version store.Version
	Expires time.Time
	// Partial is set when fewer replicas than the read quorum answered:
	// the value may not be the newest acknowledged write.
	Partial bool
	Chunked bool // stored as a manifest of chunks
}

// Holder is one replica's view of a key, as Where returns it.
type Holder = kademlia.Holder

// parallelChunks is how many chunk puts or gets a large value keeps in
// flight.
const parallelChunks = 16

// Put stores value under key on the key's replicas and returns its
// version once a write quorum holds it. Values larger than one record are
// stored as chunks (see PutReader).
func (n *Node) Put(ctx context.Context, key string, value []byte, opt PutOptions) (store.Version, error) {
	if err := n.checkPut(key, opt); err != nil {
		return store.Version{}, err
	}
	if len(value) <= chunkSize {
		return n.putRecord(ctx, key, append([]byte{kindInline}, value...), opt)
	}
	return n.PutReader(ctx, key, bytes.NewReader(value), opt)
}

func (n *Node) putRecord(ctx context.Context, key string, rec []byte, opt PutOptions) (store.Version, error) {
	res, err := n.rt.Do(ctx, kademlia.KVPut{Key: key, Value: rec, TTL: opt.TTL, Source: opt.Source})
	if err != nil {
		return store.Version{}, fmt.Errorf("dhtkit: put %q: %w", shortKey(key), err)
	}
	return res.Version, nil
}

// PutReader stores what r yields under key, streaming: a value that fits
// one record is stored as one; a larger one is cut into chunks of one
// upload that are stored in parallel on the replicas of their own hashes,
// and then the key's record is written with the manifest that names them.
// Memory use is bounded by the chunks in flight plus 20 bytes per chunk.
//
// The whole put must end within Config.ChunkGrace less chunkMargin of its
// start: past that, the nodes holding its chunks take the upload for
// abandoned and release them (chunkgc.go), so PutReader gives up first.
// A put that fails or is interrupted leaves chunks behind for at most
// ChunkGrace plus one collector interval.
func (n *Node) PutReader(ctx context.Context, key string, r io.Reader, opt PutOptions) (store.Version, error) {
	if err := n.checkPut(key, opt); err != nil {
		return store.Version{}, err
	}
	br := bufio.NewReaderSize(r, chunkSize+1)
	head, err := br.Peek(chunkSize + 1)
	if err != nil && err != io.EOF {
		if err == bufio.ErrBufferFull {
			err = nil
		} else {
			return store.Version{}, fmt.Errorf("dhtkit: put %q: reading the value: %w", shortKey(key), err)
		}
	}
	if len(head) <= chunkSize {
		return n.Put(ctx, key, head, opt)
	}
	start := time.Now()
	upload := newUploadID(start)
	limit := n.chunks.uploadLimit()
	ctx, cancel := context.WithDeadline(ctx, start.Add(limit))
	defer cancel()
	fail := func(what string, err error) (store.Version, error) {
		if errors.Is(err, context.DeadlineExceeded) && time.Since(start) >= limit {
			err = fmt.Errorf("the upload took longer than %v, the most a chunked put may take (Config.ChunkGrace less %v): %w", limit, chunkMargin(n.chunks.grace), err)
		}
		return store.Version{}, fmt.Errorf("dhtkit: put %q: %s: %w", shortKey(key), what, err)
	}
	var (
		hashes  []byte
		size    int64
		errc    = make(chan error, parallelChunks)
		sem     = make(chan struct{}, parallelChunks)
		payload = chunkPayload(key)
	)
	firstErr := func() error {
		select {
		case err := <-errc:
			return err
		default:
			return nil
		}
	}
	put := func(data []byte, kind byte) [sha1.Size]byte {
		h := sha1.Sum(data)
		rec := append(ownedHeader(key, kind), data...)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			if err := n.putChunk(ctx, kademlia.KVPut{Key: ownedChunkKey(key, upload, h), Value: rec, TTL: opt.TTL, Source: opt.Source}); err != nil {
				select {
				case errc <- err:
				default:
				}
				cancel()
			}
		}()
		return h
	}
	wait := func() error {
		for range parallelChunks { // wait for every chunk
			sem <- struct{}{}
		}
		for range parallelChunks {
			<-sem
		}
		return firstErr()
	}
	buf := make([]byte, payload)
	for {
		k, err := io.ReadFull(br, buf)
		if k > 0 {
			h := put(bytes.Clone(buf[:k]), kindChunk)
			hashes = append(hashes, h[:]...)
			size += int64(k)
			if opt.Progress != nil {
				opt.Progress(size)
			}
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			cancel()
			wait()
			return fail("reading the value", err)
		}
		if e := firstErr(); e != nil {
			wait()
			return fail("storing a chunk", e)
		}
	}
	// Index chunks until the top level fits the manifest.
	depth := 0
	perIndex := payload / sha1.Size * sha1.Size
	for len(hashes)/sha1.Size > fanout {
		var up []byte
		for i := 0; i < len(hashes); i += perIndex {
			end := min(i+perIndex, len(hashes))
			h := put(bytes.Clone(hashes[i:end]), kindIndex)
			up = append(up, h[:]...)
		}
		hashes = up
		depth++
	}
	if e := wait(); e != nil {
		return fail("storing a chunk", e)
	}
	v, err := n.putRecord(ctx, key, encodeManifest(manifest{size: size, depth: depth, hashes: hashes, upload: &upload}), opt)
	if err != nil {
		return fail("storing the manifest", err)
	}
	return v, nil
}

// chunkAttempts is how many times a chunk's put is tried: one lost chunk
// of a large value fails the whole put, and a busy replica that does not
// answer in time usually does the next time.
const chunkAttempts = 3

// putChunk stores one chunk record, trying again after a failure that
// another try may not meet (no answer, too few replicas), never after a
// refusal (a limit) or once ctx ends. Its error is about the chunk, not
// its name: the caller says whose chunk it was.
func (n *Node) putChunk(ctx context.Context, put kademlia.KVPut) error {
	var err error
	for attempt := 1; attempt <= chunkAttempts; attempt++ {
		if _, err = n.rt.Do(ctx, put); err == nil || refused(err) || ctx.Err() != nil {
			return err
		}
		select {
		case <-time.After(time.Duration(attempt) * 100 * time.Millisecond):
		case <-ctx.Done():
			return err
		}
	}
	return err
}

// refused reports whether err is a replica's refusal, which trying again
// would meet again.
func refused(err error) bool {
	for _, e := range []error{store.ErrCapacity, store.ErrQuota, store.ErrTooLarge, store.ErrInvalid, store.ErrFull, kademlia.ErrTooLarge} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// checkPut refuses, before anything is sent, a put every replica would
// refuse or cut short: a TTL longer than the node's MaxTTL.
func (n *Node) checkPut(key string, opt PutOptions) error {
	if n.maxTTL > 0 && opt.TTL > n.maxTTL {
		return fmt.Errorf("dhtkit: put %q: a TTL of %v is longer than this node's limit of %v (Config.Limits.MaxTTL, node --max-ttl): %w",
			shortKey(key), opt.TTL, n.maxTTL, store.ErrInvalid)
	}
	return nil
}

// getRecord reads key's record and splits off its kind byte.
func (n *Node) getRecord(ctx context.Context, key string) (kademlia.Result, byte, []byte, error) {
	res, err := n.rt.Do(ctx, kademlia.KVGet{Key: key})
	if errors.Is(err, kademlia.ErrNotFound) {
		return res, 0, nil, fmt.Errorf("dhtkit: get %q: %w", shortKey(key), ErrNotFound)
	}
	if err != nil {
		return res, 0, nil, fmt.Errorf("dhtkit: get %q: %w", shortKey(key), err)
	}
	v := res.Record.Value
	if len(v) == 0 {
		return res, 0, nil, fmt.Errorf("dhtkit: get %q: empty record", shortKey(key))
	}
	return res, v[0], v[1:], nil
}

// Get reads key's value from its replicas: the newest version among them.
// A large value is assembled in memory; use GetTo to stream it instead.
func (n *Node) Get(ctx context.Context, key string) (Value, error) {
	var buf bytes.Buffer
	v, err := n.GetTo(ctx, key, &buf, nil)
	if err != nil {
		return v, err
	}
	v.Data = buf.Bytes()
	return v, nil
}

// GetTo writes key's value to w, fetching the chunks of a large value in
// parallel and verifying each against its hash. progress, when set, is
// told the bytes written so far.
func (n *Node) GetTo(ctx context.Context, key string, w io.Writer, progress func(done, total int64)) (Value, error) {
	res, kind, data, err := n.getRecord(ctx, key)
	if err != nil {
		return Value{}, err
	}
	v := Value{Version: res.Version, Expires: res.Record.Expires, Partial: res.Partial}
	return n.readValue(ctx, key, v, kind, data, w, progress)
}

// Stat reads what Get would return about key's value, without its data:
// size, version, expiry. A large value's chunks are not fetched.
func (n *Node) Stat(ctx context.Context, key string) (Value, error) {
	res, kind, data, err := n.getRecord(ctx, key)
	if err != nil {
		return Value{}, err
	}
	v := Value{Version: res.Version, Expires: res.Record.Expires, Partial: res.Partial}
	switch kind {
	case kindInline:
		v.Size = int64(len(data))
	case kindManifest:
		m, err := decodeManifest(data)
		if err != nil {
			return v, fmt.Errorf("dhtkit: stat %q: %w", shortKey(key), err)
		}
		v.Size, v.Chunked = m.size, true
	default:
		return v, fmt.Errorf("dhtkit: stat %q: record of unknown kind %d (written by a newer dhtkit?)", shortKey(key), kind)
	}
	return v, nil
}

// readValue writes to w the value whose record holds kind and data: the

// data itself, or the chunks its manifest names.
func (n *Node) readValue(ctx context.Context, key string, v Value, kind byte, data []byte, w io.Writer, progress func(done, total int64)) (Value, error) {
	switch kind {
	case kindInline:
		v.Size = int64(len(data))
		if _, err := w.Write(data); err != nil {
			return v, fmt.Errorf("dhtkit: get %q: writing: %w", shortKey(key), err)
		}
		return v, nil
	case kindManifest:
	default:
		return v, fmt.Errorf("dhtkit: get %q: record of unknown kind %d (written by a newer dhtkit?)", shortKey(key), kind)
	}
	m, err := decodeManifest(data)
	if err != nil {
		return v, fmt.Errorf("dhtkit: get %q: %w", shortKey(key), err)
	}
	v.Size, v.Chunked = m.size, true
	// Expand the index levels into the list of data chunks.
	hashes := m.hashes
	for range m.depth {
		var down []byte
		parts, err := n.fetchChunks(ctx, key, &m, hashes, kindIndex, nil)
		if err != nil {
			return v, fmt.Errorf("dhtkit: get %q: %w", shortKey(key), err)
		}
		for _, p := range parts {
			if len(p)%sha1.Size != 0 {
				return v, fmt.Errorf("dhtkit: get %q: corrupt index chunk", shortKey(key))
			}
			down = append(down, p...)
		}
		hashes = down
	}
	var written int64
	_, err = n.fetchChunks(ctx, key, &m, hashes, kindChunk, func(p []byte) error {
		if _, err := w.Write(p); err != nil {
			return fmt.Errorf("writing: %w", err)
		}
		written += int64(len(p))
		if progress != nil {
			progress(written, m.size)
		}
		return nil
	})
	if err != nil {
		return v, fmt.Errorf("dhtkit: get %q: %w", shortKey(key), err)
	}
	if written != m.size {
		return v, fmt.Errorf("dhtkit: get %q: chunks hold %d bytes, the manifest says %d", shortKey(key), written, m.size)
	}
	return v, nil
}

// fetchChunks gets the chunks named by hashes of the value under key whose
// manifest is m, parallelChunks at a time, verifies each, and hands them to
// sink in order (or returns them all when sink is nil).
func (n *Node) fetchChunks(ctx context.Context, key string, m *manifest, hashes []byte, kind byte, sink func([]byte) error) ([][]byte, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	count := len(hashes) / sha1.Size
	type result struct {
		data []byte
		err  error
	}
	slots := make([]chan result, count)
	fetch := func(i int) {
		var h [sha1.Size]byte
		copy(h[:], hashes[i*sha1.Size:])
		_, k, data, err := n.getRecord(ctx, m.chunkKey(key, h))
		if err == nil && m.upload != nil {
			var owner string
			if k != kindOwned {
				k = 0xff
			} else if owner, k, data, err = splitOwned(data); err == nil && owner != key {
				k = 0xff
			}
		}
		switch {
		case err != nil:
			err = fmt.Errorf("chunk %d of %d: %w", i+1, count, err)
		case k != kind || sha1.Sum(data) != h:
			err = fmt.Errorf("chunk %d of %d (%x) failed verification: a replica holds corrupt data", i+1, count, h[:4])
		}
		slots[i] <- result{data, err}
	}
	for i := range slots {
		slots[i] = make(chan result, 1)
	}
	next := 0
	for ; next < min(parallelChunks, count); next++ {
		go fetch(next)
	}
	var all [][]byte
	for i := range count {
		r := <-slots[i]
		if next < count {
			go fetch(next)
			next++
		}
		if r.err != nil {
			cancel()
			for j := i + 1; j < next; j++ { // let the started fetches end
				<-slots[j]
			}
			return nil, r.err
		}
		if sink == nil {
			all = append(all, r.data)
			continue
		}
		if err := sink(r.data); err != nil {
			cancel()
			for j := i + 1; j < next; j++ {
				<-slots[j]
			}
			return nil, err
		}
	}
	return all, nil
}

// Delete writes a tombstone for key: it beats every older write, so the
// key stays deleted on every replica, and expires later. The nodes holding
// the chunks of a large value release them (chunkgc.go).
func (n *Node) Delete(ctx context.Context, key string) error {
	if _, err := n.rt.Do(ctx, kademlia.KVPut{Key: key, Delete: true}); err != nil {
		return fmt.Errorf("dhtkit: delete %q: %w", shortKey(key), err)
	}
	return nil
}

// Where asks key's replicas what they hold of it.
func (n *Node) Where(ctx context.Context, key string) ([]Holder, error) {
	res, err := n.rt.Do(ctx, kademlia.KVGet{Key: key})
	if err != nil && !errors.Is(err, kademlia.ErrNotFound) {
		return res.Holders, fmt.Errorf("dhtkit: where %q: %w", shortKey(key), err)
	}
	return res.Holders, nil
}

// Local returns what this node stores, values without their layout byte
// (a chunked value's record shows its manifest; chunk records are listed
// too, under keys starting "dhtkit/chunk/").
func (n *Node) Local() []store.Record {
	var out []store.Record
	n.rt.Inspect(func() {
		_ = n.eng.Store().Each(func(r store.Record) bool {
			if len(r.Value) > 0 {
				r.Value = bytes.Clone(r.Value[1:])
			}
			out = append(out, r)
			return true
		})
	})
	return out
}

// Watch reports key's value each time a new version appears, until ctx
// ends or the node closes. It does not poll: the key's replicas push each
// version they take to the node (kademlia.KVListen), so a change arrives
// one datagram after a replica stores it. The first Value is the current
// one, if the key has one. A delete, or the expiry of the value last
// reported, yields a zero Value, once.
//
// A Chord node has no such push: it asks the replicas every
// watchPollInterval instead.
func (n *Node) Watch(ctx context.Context, key string) (<-chan Value, error) {
	if key == "" {
		return nil, fmt.Errorf("dhtkit: watch: %w", kademlia.ErrNoKey)
	}
	if n.chord != nil {
		return n.pollWatch(ctx, key), nil
	}
	ctx, cancel := context.WithCancel(ctx)
	events, err := n.rt.Watch(ctx, kademlia.KVListen{Key: key})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("dhtkit: watch %q: %w", shortKey(key), err)
	}
	ch := make(chan Value)
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		defer close(ch)
		// Canceling ends the KVListen.
		defer cancel()
		var last store.Version // of the value last reported; zero: none, or deleted
		expiry := time.NewTimer(time.Hour)
		expiry.Stop()
		defer expiry.Stop()
		send := func(v Value) bool {
			select {
			case ch <- v:
				return true
			case <-ctx.Done():
			case <-n.ctx.Done():
			}
			return false
		}
		for {
			var v Value
			select {
			case ev, ok := <-events:
				if !ok {
					return
				}
				if ev.Record.Deleted {
					if last.IsZero() {
						continue
					}
					break // out of the select: report the delete
				}
				var err error
				v, err = n.watchValue(ctx, key, ev.Record)
				if err != nil {
					n.log.Debug("watch: reading a new version", "key", shortKey(key), "version", ev.Record.Version, "err", err)
					continue
				}
			case <-expiry.C:
				if last.IsZero() {
					continue
				}
			case <-ctx.Done():
				return
			case <-n.ctx.Done():
				return
			}
			last = v.Version
			expiry.Stop()
			if !v.Expires.IsZero() {
				expiry.Reset(time.Until(v.Expires))
			}
			if !send(v) {
				return
			}
		}
	}()
	return ch, nil
}

// watchPollInterval is how often a Chord node's Watch asks the replicas.
const watchPollInterval = time.Second

// pollWatch is Watch by polling: Get every watchPollInterval, reporting
// each new version, and a delete or expiry (ErrNotFound after a value)
// once.
func (n *Node) pollWatch(ctx context.Context, key string) <-chan Value {
	ch := make(chan Value)
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		defer close(ch)
		var last store.Version // of the value last reported; zero: none, or gone
		t := time.NewTicker(watchPollInterval)
		defer t.Stop()
		for {
			v, err := n.Get(ctx, key)
			switch {
			case err == nil && v.Version != last, errors.Is(err, ErrNotFound) && !last.IsZero():
				last = v.Version
				select {
				case ch <- v:
				case <-ctx.Done():
					return
				case <-n.ctx.Done():
					return
				}
			case err != nil && !errors.Is(err, ErrNotFound):
				n.log.Debug("watch: reading the value", "key", shortKey(key), "err", err)
			}
			select {
			case <-t.C:
			case <-ctx.Done():
				return
			case <-n.ctx.Done():
				return
			}
		}
	}()
	return ch
}

// watchValue turns a version a replica sent into the Value it stands for,
// fetching the chunks of a large one.
func (n *Node) watchValue(ctx context.Context, key string, rec store.Record) (Value, error) {
	if len(rec.Value) == 0 {
		return Value{}, fmt.Errorf("dhtkit: watch %q: empty record", shortKey(key))
	}
	var buf bytes.Buffer
	v, err := n.readValue(ctx, key, Value{Version: rec.Version, Expires: rec.Expires}, rec.Value[0], rec.Value[1:], &buf, nil)
	if err != nil {
		return v, err
	}
	v.Data = buf.Bytes()
	return v, nil
}

// Leave hands every stored value over to the other nodes that should hold
// it, so that the node can stop without loss; it does not close the node.
func (n *Node) Leave(ctx context.Context) error {
	res, err := n.rt.Do(ctx, kademlia.Handover{})
	if err != nil {
		return fmt.Errorf("dhtkit: handing values over: %w", err)
	}
	n.log.Info("handed values over", "values", res.Acks)
	return nil
}

// shortKey is key as error messages quote it: whole when short, cut
// otherwise, so that a 2000-byte key does not flood a terminal.
func shortKey(key string) string {
	const limit = 64
	if len(key) <= limit {
		return key
	}
	return key[:limit] + "…"
}
