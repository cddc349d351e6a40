package dhtkit

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha1"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/dhtkit/dhtkit/kademlia"
	"github.com/dhtkit/dhtkit/owner"
	"github.com/dhtkit/dhtkit/store"
)

// ErrNotFound is returned by Get for a key that has no live value.
var ErrNotFound = errors.New("not found")

// PutOptions tune a put.
type PutOptions struct {
	// TTL is how long the value lives; 0 means kademlia's DefaultTTL (24h).
	TTL time.Duration
	// Source names the writer for per-source quotas (an HTTP client's IP).
	Source string
	// Progress, when set, is told the bytes stored so far of a large value.
	Progress func(done int64)
	// ID picks which of the key's values the put adds or replaces
	// (values.go); store.DefaultValue, the zero id, is the key's single
	// value of single-value use. A signed value's signature covers its id
	// (the signer signs store.ValueKey(key, ID)).
	ID store.ValueID
	// Permanent keeps the value alive while this node runs, across its
	// restarts with a data directory, until CancelPermanent or Delete
	// (permanent.go). TTL 0 then means DefaultPermanentTTL.
	Permanent bool
	// IfVersion (not zero) and IfAbsent make the put a conditional write,
	// decided at the key's replica set (conditional.go): it is written
	// only if the key's value has that version, or has none. The error
	// of a failed condition wraps ErrConflict and names the current
	// version. The condition is about the value ID names.
	IfVersion store.Version
	IfAbsent  bool
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
	// Signer is the owner of a signed value (package owner), verified by
	// this node; nil for an unsigned one. Data is then the whole envelope:
	// Open verifies it again and returns the payload; for a large value
	// Data is the value and Envelope signs its manifest (OpenChunked).
	Signer   ed25519.PublicKey
	Envelope []byte
	// ID is which of the key's values this is (values.go).
	ID store.ValueID
}

// An EnvelopeWriter is told, before the first byte of a large signed
// value that GetTo writes to it, the envelope that signs it: an HTTP
// handler sends it as a header ahead of the streamed value.
type EnvelopeWriter interface {
	io.Writer
	WriteEnvelope(env []byte)
}

// Holder is one replica's view of a key, as Where returns it.
type Holder = kademlia.Holder

// parallelChunks is how many chunk puts or gets a large value keeps in
// flight.
const parallelChunks = 16

// Put stores value under key on the key's replicas and returns its
// version once a write quorum holds it. Values larger than one record are
// stored as chunks (see PutReader).
//
// A value sealed with a signature (Seal, SealWith, SignValue) is stored as
// one record, under the version and expiry its owner signed (opt.TTL does
// not apply), and makes the key the signer's: replicas then refuse every
// write or delete not signed by the same owner with a newer version. A
// larger signed value goes through PutSigned.
func (n *Node) Put(ctx context.Context, key string, value []byte, opt PutOptions) (store.Version, error) {
	if err := checkKey("put", key); err != nil {
		return store.Version{}, err
	}
	return n.put(ctx, valueKey(key, &opt), value, opt)
}

// put is Put of a record key (valueKey's).
func (n *Node) put(ctx context.Context, key string, value []byte, opt PutOptions) (store.Version, error) {
	if err := n.checkPut(key, opt); err != nil {
		return store.Version{}, err
	}
	if opt.conditional() {
		return n.putConditional(ctx, key, value, opt)
	}
	if opt.Permanent {
		return n.putPermanent(ctx, key, value, opt)
	}
	if owner.Is(value) {
		return n.putSigned(ctx, key, value, false, opt)
	}
	if len(value) <= chunkSize {
		return n.putRecord(ctx, key, append([]byte{kindInline}, value...), opt)
	}
	return n.putReader(ctx, key, bytes.NewReader(value), nil, opt)
}

// putSigned stores an owner's envelope as the record of key: a value, or
// with del a signed delete.
func (n *Node) putSigned(ctx context.Context, key string, env []byte, del bool, opt PutOptions) (store.Version, error) {
	op := "put"
	if del {
		op = "delete"
	}
	if len(env) > kademlia.MaxRecordValue {
		return store.Version{}, fmt.Errorf("dhtkit: %s %q: %w", op, shortKey(key), ErrSignedTooLarge)
	}
	e, err := owner.Open(key, env)
	if err != nil {
		return store.Version{}, fmt.Errorf("dhtkit: %s %q: %w", op, shortKey(key), ErrBadSignature)
	}
	if e.Deleted != del {
		return store.Version{}, fmt.Errorf("dhtkit: %s %q: a signed delete goes to DeleteSigned, a signed value to Put", op, shortKey(key))
	}
	if err := n.waitReady(ctx); err != nil {
		return store.Version{}, fmt.Errorf("dhtkit: %s %q: %w", op, shortKey(key), err)
	}
	res, err := n.rt.Do(ctx, kademlia.KVPut{Key: key, Value: env, Version: e.Version, Expires: e.Expires, Source: opt.Source})
	if err != nil {
		return store.Version{}, fmt.Errorf("dhtkit: %s %q: %w", op, shortKey(key), err)
	}
	return res.Version, nil
}

// ErrSignedTooLarge: a value signed whole (Seal) is stored as one
// record, which it does not fit.
var ErrSignedTooLarge = fmt.Errorf("a value signed whole is one record of at most %d bytes with its signature: sign a larger one with SignValue and store it with PutSigned", kademlia.MaxRecordValue)

func (n *Node) putRecord(ctx context.Context, key string, rec []byte, opt PutOptions) (store.Version, error) {
	if err := n.waitReady(ctx); err != nil {
		return store.Version{}, fmt.Errorf("dhtkit: put %q: %w", shortKey(key), err)
	}
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
	if err := checkKey("put", key); err != nil {
		return store.Version{}, err
	}
	key = valueKey(key, &opt)
	return n.putReader(ctx, key, r, nil, opt)
}

// PutSigned stores the value r yields under key as PutReader does, signed
// by env: its owner's signature of the value's manifest (SignValue). The
// node checks that the value is the one signed before it writes the key.
// (A value that fits one record with its signature is signed whole by
// SignValue instead, and stored with Put.)
func (n *Node) PutSigned(ctx context.Context, key string, r io.Reader, env []byte, opt PutOptions) (store.Version, error) {
	if err := checkKey("put", key); err != nil {
		return store.Version{}, err
	}
	key = valueKey(key, &opt)
	if env == nil {
		return store.Version{}, fmt.Errorf("dhtkit: put %q: no signature", shortKey(key))
	}
	return n.putReader(ctx, key, r, env, opt)
}

// readers recycles putReader's buffers: each holds a chunk, and a small
// put through the HTTP API allocated one per request.
var readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, chunkSize+1) }}

// putReader is PutReader, and with env PutSigned.
func (n *Node) putReader(ctx context.Context, key string, r io.Reader, env []byte, opt PutOptions) (store.Version, error) {
	if err := n.checkPut(key, opt); err != nil {
		return store.Version{}, err
	}
	var signed owner.Envelope
	if env != nil {
		var err error
		if signed, err = owner.Open(key, env); err != nil || !signed.Chunked {
			return store.Version{}, fmt.Errorf("dhtkit: put %q: %w (want the signature of a chunked value, from SignValue)", shortKey(key), ErrBadSignature)
		}
	}
	br := readers.Get().(*bufio.Reader)
	br.Reset(r)
	head, err := br.Peek(chunkSize + 1)
	if err != nil && err != io.EOF {
		if err == bufio.ErrBufferFull {
			err = nil
		} else {
			return store.Version{}, fmt.Errorf("dhtkit: put %q: reading the value: %w", shortKey(key), err)
		}
	}
	if env != nil || len(head) > chunkSize {
		if err := opt.checkLarge(key); err != nil {
			return store.Version{}, err
		}
	}
	switch {
	case env != nil:
		// Chunked whatever its size, as SignValue laid it out.
	case len(head) <= chunkSize:
		v, err := n.put(ctx, key, head, opt)
		// A plain put copied the value (putRecord), and only it gives br
		// back: a signed, conditional or permanent put may hand head to
		// the engine as it is, and a put's writes outlive the call (the
		// members past the quorum, kademlia/putrest.go), so the next
		// request must not read into the same buffer. A larger value's
		// chunking may likewise leave work behind that reads br.
		if !opt.conditional() && !opt.Permanent && !owner.Is(head) {
			br.Reset(nil)
			readers.Put(br)
		}
		return v, err
	case owner.Is(head):
		return store.Version{}, fmt.Errorf("dhtkit: put %q: %w", shortKey(key), ErrSignedTooLarge)
	}
	var signedUpload *uploadID // the upload the owner signed (SignValue)
	if env != nil {
		if sm, err := decodeManifest(signed.Payload); err == nil {
			signedUpload = sm.upload
		}
	}
	if env != nil && signedUpload == nil {
		// A value signed by an earlier dhtkit keeps the content-addressed
		// layout its owner signed: its chunks are left to their TTL.
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		inner := opt
		inner.Progress = nil
		m, err := buildTree(ctx, br, func(ctx context.Context, h [sha1.Size]byte, rec []byte) error {
			_, err := n.putRecord(ctx, chunkKey(h), rec, inner)
			return err
		}, opt.Progress)
		if err != nil {
			return store.Version{}, fmt.Errorf("dhtkit: put %q: %w", shortKey(key), err)
		}
		rec := encodeManifest(m)
		if !bytes.Equal(rec[1:], signed.Payload) {
			return store.Version{}, fmt.Errorf("dhtkit: put %q: %w: the value is not the one signed", shortKey(key), ErrBadSignature)
		}
		return n.putSigned(ctx, key, env, false, opt)
	}
	start := time.Now()
	upload := newUploadID(start)
	limit := n.chunks.uploadLimit()
	if signedUpload != nil {
		// The upload began when its owner signed it: the collectors count
		// the grace from then (signedchunks.go).
		var err error
		if upload, opt, err = n.signedUpload(key, *signedUpload, signed, opt); err != nil {
			return store.Version{}, err
		}
		start = upload.started()
	}
	ctx, cancel := context.WithDeadline(ctx, start.Add(limit))
	defer cancel()
	fail := func(err error) (store.Version, error) {
		if errors.Is(err, context.DeadlineExceeded) && time.Since(start) >= limit {
			err = fmt.Errorf("the upload took longer than %v, the most a chunked put may take (Config.ChunkGrace less %v): %w", limit, chunkMargin(n.chunks.grace), err)
		}
		return store.Version{}, fmt.Errorf("dhtkit: put %q: %w", shortKey(key), err)
	}
	payload := chunkPayload(key)
	m, err := buildChunks(ctx, br, payload, payload/sha1.Size*sha1.Size, func(ctx context.Context, h [sha1.Size]byte, kind byte, data []byte) error {
		rec := append(ownedHeader(key, kind), data...)
		return n.putChunk(ctx, kademlia.KVPut{Key: ownedChunkKey(key, upload, h), Value: rec, TTL: opt.TTL, Source: opt.Source})
	}, opt.Progress)
	if err != nil {
		return fail(err)
	}
	m.upload = &upload
	if env != nil {
		if !bytes.Equal(encodeManifest(m)[1:], signed.Payload) {
			return store.Version{}, fmt.Errorf("dhtkit: put %q: %w: the value is not the one signed", shortKey(key), ErrBadSignature)
		}
		return n.putSigned(ctx, key, env, false, opt)
	}
	v, err := n.putRecord(ctx, key, encodeManifest(m), opt)
	if err != nil {
		return fail(fmt.Errorf("storing the manifest: %w", err))
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
	for _, e := range []error{store.ErrCapacity, store.ErrQuota, store.ErrTooLarge, store.ErrInvalid, store.ErrFull, store.ErrRefused, kademlia.ErrTooLarge} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// checkPut refuses, before anything is sent, a put every replica would
// refuse or cut short: a TTL longer than the node's MaxTTL.
func (n *Node) checkPut(key string, opt PutOptions) error {
	if err := opt.check(key); err != nil {
		return err
	}
	if n.maxTTL > 0 && opt.TTL > n.maxTTL {
		return fmt.Errorf("dhtkit: put %q: a TTL of %v is longer than this node's limit of %v (Config.Limits.MaxTTL, node --max-ttl): %w",
			shortKey(key), opt.TTL, n.maxTTL, store.ErrInvalid)
	}
	return nil
}

// buildTree is buildChunks in the content-addressed layout that signed
// values use: each record is the kind byte and the payload, chunkSize
// bytes of data and fanout hashes per index chunk.
func buildTree(ctx context.Context, r io.Reader, put func(ctx context.Context, h [sha1.Size]byte, rec []byte) error, progress func(int64)) (manifest, error) {
	var p func(context.Context, [sha1.Size]byte, byte, []byte) error
	if put != nil {
		p = func(ctx context.Context, h [sha1.Size]byte, kind byte, data []byte) error {
			return put(ctx, h, append([]byte{kind}, data...))
		}
	}
	return buildChunks(ctx, r, chunkSize, fanout*sha1.Size, p, progress)
}

// buildChunks cuts what r yields into chunks of payload bytes, hands each
// (and each index chunk of perIndex bytes of hashes) to put,
// parallelChunks at a time, and returns the manifest of the tree; put nil
// only computes it. Memory use is bounded by the chunks in flight plus 20
// bytes per chunk.
func buildChunks(ctx context.Context, r io.Reader, payload, perIndex int, put func(ctx context.Context, h [sha1.Size]byte, kind byte, data []byte) error, progress func(int64)) (manifest, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		hashes []byte
		size   int64
		errc   = make(chan error, parallelChunks)
		sem    = make(chan struct{}, parallelChunks)
	)
	firstErr := func() error {
		select {
		case err := <-errc:
			return err
		default:
			return nil
		}
	}
	add := func(data []byte, kind byte) [sha1.Size]byte {
		h := sha1.Sum(data)
		if put == nil {
			return h
		}
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			if err := put(ctx, h, kind, data); err != nil {
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
		if e := firstErr(); e != nil {
			return fmt.Errorf("storing a chunk: %w", e)
		}
		return nil
	}
	buf := make([]byte, payload)
	for {
		k, err := io.ReadFull(r, buf)
		if k > 0 {
			h := add(bytes.Clone(buf[:k]), kindChunk)
			hashes = append(hashes, h[:]...)
			size += int64(k)
			if progress != nil {
				progress(size)
			}
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			cancel()
			_ = wait()
			return manifest{}, fmt.Errorf("reading the value: %w", err)
		}
		if e := firstErr(); e != nil {
			_ = wait()
			return manifest{}, fmt.Errorf("storing a chunk: %w", e)
		}
	}
	// Index chunks until the top level fits the manifest.
	depth := 0
	for len(hashes)/sha1.Size > fanout {
		var up []byte
		for i := 0; i < len(hashes); i += perIndex {
			end := min(i+perIndex, len(hashes))
			h := add(bytes.Clone(hashes[i:end]), kindIndex)
			up = append(up, h[:]...)
		}
		hashes = up
		depth++
	}
	if err := wait(); err != nil {
		return manifest{}, err
	}
	return manifest{size: size, depth: depth, hashes: hashes}, nil
}

// partialKey carries WithPartial's permission in a context.
type partialKey struct{}

// WithPartial returns a context under which Get, GetTo and Stat return
// the best answer of fewer replicas than the read quorum, marked
// Value.Partial, instead of failing with a quorum error (an error
// wrapping kademlia.ErrQuorum). Without it a read succeeds only when a
// read quorum of the key's replica set answered: the quorum rule
// (docs/architecture.md).
func WithPartial(ctx context.Context) context.Context {
	return context.WithValue(ctx, partialKey{}, true)
}

func partialOK(ctx context.Context) bool { ok, _ := ctx.Value(partialKey{}).(bool); return ok }

// getRecord reads key's record and splits off its kind byte.
func (n *Node) getRecord(ctx context.Context, key string) (kademlia.Result, byte, []byte, error) {
	if err := n.waitReady(ctx); err != nil {
		return kademlia.Result{}, 0, nil, fmt.Errorf("dhtkit: get %q: %w", shortKey(key), err)
	}
	res, err := n.rt.Do(ctx, kademlia.KVGet{Key: key, Partial: partialOK(ctx)})
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
	if owner.Is(v) {
		if e, err := owner.Parse(v); err == nil && e.Deleted {
			return res, 0, nil, fmt.Errorf("dhtkit: get %q: %w", shortKey(key), ErrNotFound)
		}
		return res, kindSigned, v, nil
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
	return statValue(key, Value{Version: res.Version, Expires: res.Record.Expires, Partial: res.Partial}, kind, data)
}

// statValue fills in v, without its data, from key's record, which holds
// kind and data.
func statValue(key string, v Value, kind byte, data []byte) (Value, error) {
	if kind == kindSigned {
		e, err := owner.Open(key, data)
		if err != nil {
			return v, fmt.Errorf("dhtkit: stat %q: %w", shortKey(key), ErrBadSignature)
		}
		v.Signer = e.Signer
		if e.Chunked {
			v.Envelope = data
			kind, data = kindManifest, e.Payload
		} else {
			kind = kindInline
		}
	}
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
	if kind == kindSigned {
		e, err := owner.Open(key, data)
		if err != nil {
			return v, fmt.Errorf("dhtkit: get %q: %w", shortKey(key), ErrBadSignature)
		}
		v.Signer = e.Signer
		if e.Chunked {
			// The value is the chunks; the envelope that signs their
			// manifest goes to the reader before them.
			v.Envelope = data
			if ew, ok := w.(EnvelopeWriter); ok {
				ew.WriteEnvelope(data)
			}
			kind, data = kindManifest, e.Payload
		} else {
			kind = kindInline // the envelope is the value
		}
	}
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
	// The manifest was read by the quorum rule; a chunk is never
	// overwritten and is verified against its hash, so any one replica's
	// copy is the right one.
	ctx = WithPartial(ctx)
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
			var of string
			if k != kindOwned {
				k = 0xff
			} else if of, k, data, err = splitOwned(data); err == nil && of != key {
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
	if err := n.cancelForDelete(key); err != nil {
		return fmt.Errorf("dhtkit: delete %q: stopping its permanent put: %w", shortKey(key), err)
	}
	if err := n.waitReady(ctx); err != nil {
		return fmt.Errorf("dhtkit: delete %q: %w", shortKey(key), err)
	}
	if _, err := n.rt.Do(ctx, kademlia.KVPut{Key: key, Delete: true}); err != nil {
		return fmt.Errorf("dhtkit: delete %q: %w", shortKey(key), err)
	}
	return nil
}

// DeleteSigned writes the signed delete of key (SignDelete): the only
// delete replicas accept for a key its owner signed.
func (n *Node) DeleteSigned(ctx context.Context, key string, tombstone []byte) error {
	_, err := n.putSigned(ctx, key, tombstone, true, PutOptions{})
	return err
}

// GetSignedBy is Get that fails, with an error wrapping ErrSigner, unless
// signer signed the value.
func (n *Node) GetSignedBy(ctx context.Context, key string, signer ed25519.PublicKey) (Value, error) {
	v, err := n.Get(ctx, key)
	if err != nil {
		return v, err
	}
	if err := CheckSigner(key, v.Signer, signer); err != nil {
		return Value{}, fmt.Errorf("dhtkit: get %q: %w", shortKey(key), err)
	}
	return v, nil
}

// CheckSigner says why a value of key signed by got (nil: unsigned) is
// not one signed by want. It does not name the key: its callers say
// `get "KEY": …` already.
func CheckSigner(key string, got, want ed25519.PublicKey) error {
	switch {
	case got == nil:
		return fmt.Errorf("%w: it is not signed (want %x)", ErrSigner, []byte(want))
	case !got.Equal(want):
		return fmt.Errorf("%w: it is signed by %x, not by %x", ErrSigner, []byte(got), []byte(want))
	}
	return nil
}

// Where asks key's replicas what they hold of it.
func (n *Node) Where(ctx context.Context, key string) ([]Holder, error) {
	if err := n.waitReady(ctx); err != nil {
		return nil, fmt.Errorf("dhtkit: where %q: %w", shortKey(key), err)
	}
	// Every replica's answer, however few: Where reports, it does not read.
	res, err := n.rt.Do(ctx, kademlia.KVGet{Key: key, Partial: true})
	if err != nil && !errors.Is(err, kademlia.ErrNotFound) {
		return res.Holders, fmt.Errorf("dhtkit: where %q: %w", shortKey(key), err)
	}
	return res.Holders, nil
}

// Local returns what this node stores, values without their layout byte
// (a chunked value's record shows its manifest; chunk records are listed
// too, under keys starting "dhtkit/chunk/"; a signed record is its whole
// envelope). It copies every value: status pages use LocalStats and
// LocalFirst instead.
func (n *Node) Local() []store.Record { return n.LocalFirst(-1) }

// LocalFirst is Local limited to the first limit records in target order
// (limit < 0: all). It reads the store, which is safe for concurrent use,
// in batches under the store's own lock, never the engine's: the node
// goes on answering meanwhile.
func (n *Node) LocalFirst(limit int) []store.Record {
	var out []store.Record
	if limit == 0 {
		return nil
	}
	_ = n.eng.Store().Each(func(r store.Record) bool {
		if len(r.Value) > 0 && !owner.Is(r.Value) {
			r.Value = bytes.Clone(r.Value[1:])
		}
		out = append(out, r)
		return limit < 0 || len(out) < limit
	})
	return out
}

// LocalStats counts what this node stores.
type LocalStats struct {
	Keys  int   // live values (tombstones left out)
	Bytes int64 // their keys and values, as counted against the limit
	// Records counts tombstones too; RecordBytes is what counts against
	// Limits.MaxBytes.
	Records     int
	RecordBytes int64
}

// LocalStats reads the counters the store keeps: no scan, no engine lock,
// the same cost with 10 values or 10 million.
func (n *Node) LocalStats() LocalStats {
	st := n.eng.Store()
	var s LocalStats
	s.Records, s.RecordBytes = st.Stats()
	s.Keys, s.Bytes = s.Records, s.RecordBytes
	if l, ok := st.(interface{ Live() (int, int64) }); ok {
		s.Keys, s.Bytes = l.Live()
	}
	return s
}

// Watch reports key's value each time a new version appears, until ctx
// ends or the node closes: WatchValues of the key's default value (the
// one Put writes without PutOptions.ID). It does not poll, with either
// protocol: the key's replicas push each version they take to the node
// (dk_listen), so a change arrives one datagram after a replica stores
// it. The first Value is the current one, if the key has one. A delete,
// or the expiry of the value last reported, yields a zero Value, once.
func (n *Node) Watch(ctx context.Context, key string) (<-chan Value, error) {
	ctx, cancel := context.WithCancel(ctx)
	changes, err := n.WatchValues(ctx, key)
	if err != nil {
		cancel()
		return nil, err
	}
	ch := make(chan Value)
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		defer close(ch)
		defer cancel() // ends the WatchValues
		for c := range changes {
			if c.Value.ID != store.DefaultValue {
				continue // another value of the key
			}
			v := c.Value
			if c.Reason == Deleted || c.Reason == Expired {
				v = Value{}
			}
			select {
			case ch <- v:
			case <-ctx.Done():
				return
			case <-n.ctx.Done():
				return
			}
		}
	}()
	return ch, nil
}

// ErrValueKey refuses a key that ends as a value's record key does (a
// NUL byte, 'v' and 16 hex digits: store.ValueKey): it would name a value
// of another key. Name a value with its key and id instead
// (PutOptions.ID, GetValue, WatchValues), as the HTTP API's ?id= does.
var ErrValueKey = errors.New("the key ends like a value's record key (NUL, v and 16 hex digits) and would name a value of another key: give the key and the value's id (PutOptions.ID, GetValue) instead")

// checkKey refuses, for op, a key that is a value's record key.
func checkKey(op, key string) error {
	if store.IsValueKey(key) {
		return fmt.Errorf("dhtkit: %s %q: %w", op, shortKey(key), ErrValueKey)
	}
	return nil
}

// signedDelete reports whether a record's value is an owner's signed
// delete.
func signedDelete(v []byte) bool {
	if !owner.Is(v) {
		return false
	}
	e, err := owner.Parse(v)
	return err == nil && e.Deleted
}

// watchValue turns a version a replica sent into the Value it stands for,
// fetching the chunks of a large one.
func (n *Node) watchValue(ctx context.Context, key string, rec store.Record) (Value, error) {
	if len(rec.Value) == 0 {
		return Value{}, fmt.Errorf("dhtkit: watch %q: empty record", shortKey(key))
	}
	var buf bytes.Buffer
	kind, data := rec.Value[0], rec.Value[1:]
	if owner.Is(rec.Value) {
		kind, data = kindSigned, rec.Value
	}
	v, err := n.readValue(ctx, key, Value{Version: rec.Version, Expires: rec.Expires}, kind, data, &buf, nil)
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
	if k, id := store.SplitKey(key); id != store.DefaultValue {
		return shortKey(k) + " value " + id.String()
	}
	const limit = 64
	if len(key) <= limit {
		return key
	}
	return key[:limit] + "…"
}
