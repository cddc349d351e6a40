package httpapi

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/dhtkit/dhtkit"
	"github.com/dhtkit/dhtkit/kademlia"
	"github.com/dhtkit/dhtkit/store"
)

func (s *server) kvRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/keys/{key}", s.getKey) // HEAD too
	mux.HandleFunc("PUT /v1/keys/{key}", s.putKey)
	mux.HandleFunc("DELETE /v1/keys/{key}", s.deleteKey)
	mux.HandleFunc("GET /v1/keys/{key}/where", s.where)
	mux.HandleFunc("GET /v1/watch/{key}", s.watch)
	s.valuesRoutes(mux)
	mux.HandleFunc("GET /v1/local", s.local)
	mux.HandleFunc("POST /ui/put", s.ui.put)
	mux.HandleFunc("GET /ui/get", s.ui.get)
	mux.HandleFunc("POST /ui/delete", s.ui.del)
}

// pathKey returns the {key} of r (the mux has unescaped it) as the
// record key of the value ?id= names (store.ValueKey): the key itself
// without ?id=, for its default value.
func pathKey(r *http.Request) (string, error) {
	k := r.PathValue("key")
	if k == "" {
		return "", errors.New("empty key")
	}
	if store.IsValueKey(k) {
		// It would name a value of another key (NUL, "v", 16 hex digits
		// end a value's record key): ask for that value with ?id=.
		return "", errors.New("the key ends like a value's id (NUL, v, 16 hex digits): name the value with ?id= instead")
	}
	if h := r.URL.Query().Get("id"); h != "" {
		v, err := store.ParseValueID(h)
		if err != nil {
			return "", fmt.Errorf("id=%q: want a value id of 1 to 16 hexadecimal digits", h)
		}
		k = store.ValueKey(k, v)
	}
	return k, nil
}

// splitKey is what JSON answers show of a record key: the key, and the
// value id unless it is the default.
func splitKey(rk string) (string, string) {
	k, v := store.SplitKey(rk)
	if v == store.DefaultValue {
		return k, ""
	}
	return k, v.String()
}

// etag quotes a version as an HTTP entity tag.
func etag(v store.Version) string {
	var raw [16]byte
	binary.BigEndian.PutUint64(raw[:8], v.Time)
	binary.BigEndian.PutUint64(raw[8:], v.Writer)
	var b [2 + 2*len(raw)]byte // one allocation, the string's, where concatenation made two
	hex.Encode(b[1:], raw[:])
	b[0], b[len(b)-1] = '"', '"'
	return string(b[:])
}

// The constant headers of a value, shared by every answer: a Set
// allocates a slice per header per request. Each is handed out as a
// full slice ([:1:1]), so that an Add copies rather than writes into it.
var (
	noCache     = []string{"no-cache"}
	sandbox     = []string{"sandbox; default-src 'none'"}
	octetStream = []string{"application/octet-stream"}
)

func setValueHeaders(h http.Header, v dhtkit.Value) {
	// The version is the entity tag without its quotes: one string, and
	// one slice for both headers.
	tag := etag(v.Version)
	vs := []string{tag, tag[1 : len(tag)-1]}
	h["Etag"], h["X-Dhtkit-Version"] = vs[0:1:1], vs[1:2:2]
	if !v.Expires.IsZero() {
		h.Set("X-Dhtkit-Expires", v.Expires.UTC().Format(time.RFC3339))
	}
	if v.Signer != nil {
		h.Set("X-Dhtkit-Signer", hex.EncodeToString(v.Signer))
	}
	if v.Envelope != nil {
		h.Set(envelopeHeader, base64.StdEncoding.EncodeToString(v.Envelope))
	}
	if v.Partial {
		// Fewer replicas than the read quorum answered: the value is the
		// newest they had, not necessarily the newest acknowledged.
		h.Set("X-Dhtkit-Partial", "true")
	}
}

// getKey is GET and HEAD /v1/keys/{key}: the value's bytes, its version
// as ETag. ?download=1 asks the browser to save it as a file.
//
// A large value streams from its chunks as they arrive. Its version is
// known only at the end, so a value larger than streamAfter goes out
// without ETag and carries its version in the trailer X-Dhtkit-Version;
// a failure half-way aborts the response rather than end it short.
//
// ?signer=PUBKEY (64 hex digits) answers 409 unless that key signed the
// value (package owner): an unsigned value, or one signed by another key,
// is not served as if it were the owner's.
//
// Fewer replicas than the read quorum answering is 503, unless
// ?partial=true asks for their best answer, marked X-Dhtkit-Partial.
func (s *server) getKey(w http.ResponseWriter, r *http.Request) {
	key, err := pathKey(r)
	if err != nil {
		s.fail(w, r, http.StatusBadRequest, err)
		return
	}
	var query url.Values // parsed once, and only when there is one: each parse allocates the map
	if r.URL.RawQuery != "" {
		query = r.URL.Query()
	}
	if query.Get("partial") == "true" {
		// The caller takes the best answer of fewer replicas than the
		// read quorum (X-Dhtkit-Partial); without it such a read is 503.
		r = r.WithContext(dhtkit.WithPartial(r.Context()))
	}
	var signer ed25519.PublicKey
	if sh := query.Get("signer"); sh != "" {
		b, err := hex.DecodeString(sh)
		if err != nil || len(b) != ed25519.PublicKeySize {
			s.fail(w, r, http.StatusBadRequest, fmt.Errorf("signer=%q: want a 64-hex-digit ed25519 public key", sh))
			return
		}
		signer = b
		// Checked before any byte is sent: a signed value is one record,
		// and a large unsigned one fails here without being fetched.
		v, err := s.n.Stat(r.Context(), key)
		if err == nil {
			err = signedBy(key, v, signer)
		}
		if err != nil {
			s.fail(w, r, 0, err) // the node's error names the operation and the key
			return
		}
	}
	h := w.Header()
	h["Cache-Control"] = noCache[:1:1]
	// A value is data, never a page of this origin.
	h["Content-Security-Policy"] = sandbox[:1:1]
	if query.Get("download") != "" {
		h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": fileName(key)}))
	}
	if r.Method == http.MethodHead {
		// The version and size only (MyDHT's haskey): a large value's
		// chunks stay where they are.
		start := time.Now()
		v, err := s.n.Stat(r.Context(), key)
		s.metrics.observeOp("kv_stat", time.Since(start), err)
		if err != nil {
			s.fail(w, r, 0, err) // the node's error names the operation and the key
			return
		}
		setValueHeaders(h, v)
		h.Set("Content-Type", "application/octet-stream")
		if match := r.Header.Get("If-None-Match"); match != "" && match == etag(v.Version) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		h.Set("Content-Length", strconv.FormatInt(v.Size, 10))
		return
	}
	bw := &bufferedValue{w: w}
	start := time.Now()

	v, err := s.n.GetTo(r.Context(), key, bw, nil)
	if err == nil && signer != nil {
		// A new version may have arrived since the Stat.
		err = signedBy(key, v, signer)
	}
	s.metrics.observeOp("kv_get", time.Since(start), err)
	if err != nil {
		if bw.streaming {
			s.log.Warn("value transfer failed", "key", key, "err", err)
			panic(http.ErrAbortHandler)
		}
		s.fail(w, r, 0, err) // the node's error names the operation and the key
		return
	}
	if bw.streaming {
		h.Set("X-Dhtkit-Version", v.Version.String())
		return
	}
	setValueHeaders(h, v)
	h["Content-Type"] = octetStream[:1:1]
	if match := r.Header.Get("If-None-Match"); match != "" && match == etag(v.Version) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h["Content-Length"] = []string{strconv.Itoa(bw.buf.Len())}
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(bw.buf.Bytes())
}

// envelopeHeader carries the owner's signature of a large signed value's
// manifest (dhtkit.SignValue), base64: in a PUT's request, a GET's and a
// HEAD's response. The reader checks the value against it
// (dhtkit.OpenChunked).
const envelopeHeader = "X-Dhtkit-Envelope"

// streamAfter is the largest value getKey holds in memory to answer with
// its version as ETag.
const streamAfter = 4 << 20

// bufferedValue keeps the first streamAfter bytes of a value, then sends
// the headers and streams the rest.
type bufferedValue struct {
	w         http.ResponseWriter
	buf       bytes.Buffer
	streaming bool
}

// WriteEnvelope implements dhtkit.EnvelopeWriter: the signature of a
// large signed value goes out with the headers, before the value.
func (b *bufferedValue) WriteEnvelope(env []byte) {
	if !b.streaming {
		b.w.Header().Set(envelopeHeader, base64.StdEncoding.EncodeToString(env))
	}
}

func (b *bufferedValue) Write(p []byte) (int, error) {
	if b.streaming {
		return b.w.Write(p)
	}
	if b.buf.Len()+len(p) <= streamAfter {
		return b.buf.Write(p)
	}
	b.streaming = true
	h := b.w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Trailer", "X-Dhtkit-Version")
	b.w.WriteHeader(http.StatusOK)
	if _, err := b.w.Write(b.buf.Bytes()); err != nil {
		return 0, err
	}
	b.buf = bytes.Buffer{}
	return b.w.Write(p)
}

// fileName turns a key into a file name a browser will accept: the last
// path element, without control characters.
func fileName(key string) string {
	if i := strings.LastIndexByte(key, '/'); i >= 0 && i < len(key)-1 {
		key = key[i+1:]
	}
	key = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == '\\' || r == '"' || r == utf8.RuneError {
			return '_'
		}
		return r
	}, key)
	if key == "" || key == "." || key == ".." {
		return "value"
	}
	return key
}

type putJSON struct {
	Key     string        `json:"key"`
	Version store.Version `json:"version"`
	Expires *time.Time    `json:"expires,omitempty"`
	ID      string        `json:"id,omitempty"` // the value's id (?id=), absent for the default value
}

// parseTTL reads ?ttl=: a Go duration ("1h", "90m"); empty means the
// node's default.
func parseTTL(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("ttl=%q: want a positive duration such as 90s, 30m or 24h", s)
	}
	return d, nil
}

func (s *server) putKey(w http.ResponseWriter, r *http.Request) {
	key, err := pathKey(r)
	if err != nil {
		s.fail(w, r, http.StatusBadRequest, err)
		return
	}
	query := r.URL.Query() // parsed once: each parse allocates the whole map again
	ttl, err := parseTTL(query.Get("ttl"))
	if err != nil {
		s.fail(w, r, http.StatusBadRequest, err)
		return
	}
	if r.ContentLength > s.opt.MaxValueSize {
		s.fail(w, r, http.StatusRequestEntityTooLarge, fmt.Errorf("value of %d bytes is larger than the %d this node accepts", r.ContentLength, s.opt.MaxValueSize))
		return
	}
	var env []byte
	if h := r.Header.Get(envelopeHeader); h != "" {
		if env, err = base64.StdEncoding.DecodeString(h); err != nil {
			s.fail(w, r, http.StatusBadRequest, fmt.Errorf("%s: not base64: %w", envelopeHeader, err))
			return
		}
	}
	// The node streams the body into chunks: a large value is never whole
	// in memory.
	start := time.Now()
	body, opt := http.MaxBytesReader(w, r.Body, s.opt.MaxValueSize), dhtkit.PutOptions{TTL: ttl, Source: clientIP(r)}
	if err := putOptions(query, &opt); err != nil {
		s.fail(w, r, http.StatusBadRequest, err)
		return
	}
	var v store.Version
	k, id := store.SplitKey(key) // the Go API takes the key and the value's id
	opt.ID = id
	if env != nil {
		v, err = s.n.PutSigned(r.Context(), k, body, env, opt)
	} else {
		v, err = s.n.PutReader(r.Context(), k, body, opt)
	}
	s.metrics.observeOp("kv_put", time.Since(start), err)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			err = fmt.Errorf("value is larger than the %d bytes this node accepts", s.opt.MaxValueSize)
			s.fail(w, r, http.StatusRequestEntityTooLarge, err)
			return
		}
		s.fail(w, r, 0, err)
		return
	}
	var expires time.Time
	if ttl > 0 {
		expires = start.Add(ttl).UTC().Truncate(time.Second)
	}
	w.Header().Set("ETag", etag(v))
	out := putJSON{Version: v}
	out.Key, out.ID = splitKey(key)
	if !expires.IsZero() {
		out.Expires = &expires
	}
	writeJSON(w, http.StatusOK, out)
}

// put stores a value for the API and the form; expires is an estimate
// for the reply (the node decides).
func (s *server) put(r *http.Request, key string, data []byte, ttl time.Duration) (store.Version, time.Time, error) {
	ctx, cancel := s.ctx(r)
	defer cancel()
	start := time.Now()
	k, id := store.SplitKey(key) // the Go API takes the key and the value's id
	v, err := s.n.Put(ctx, k, data, dhtkit.PutOptions{TTL: ttl, Source: clientIP(r), ID: id})
	s.metrics.observeOp("kv_put", time.Since(start), err)
	if err != nil {
		return v, time.Time{}, err
	}
	var expires time.Time
	if ttl > 0 {
		expires = start.Add(ttl).UTC().Truncate(time.Second)
	}
	return v, expires, nil
}

// remove deletes key; a non-empty tombstone is the owner's signed delete
// (dhtkit.SignDelete).
func (s *server) remove(r *http.Request, key string, tombstone []byte) error {
	ctx, cancel := s.ctx(r)
	defer cancel()
	start := time.Now()
	var err error
	if len(tombstone) > 0 {
		err = s.n.DeleteSigned(ctx, key, tombstone)
	} else {
		err = s.n.Delete(ctx, key)
	}
	s.metrics.observeOp("kv_delete", time.Since(start), err)
	if err != nil {
		return err
	}
	return nil
}

type deleteJSON struct {
	Key     string `json:"key"`
	Deleted bool   `json:"deleted"`
	ID      string `json:"id,omitempty"` // the value deleted (?id=)
	// Values is how many values DELETE /v1/values/{key} deleted.
	Values *int `json:"values,omitempty"`
}

func (s *server) deleteKey(w http.ResponseWriter, r *http.Request) {
	key, err := pathKey(r)
	if err != nil {
		s.fail(w, r, http.StatusBadRequest, err)
		return
	}
	// The body, if any, is the owner's signed delete: one record.
	tomb, err := io.ReadAll(http.MaxBytesReader(w, r.Body, kademlia.MaxRecordValue))
	if err != nil {
		s.fail(w, r, 0, fmt.Errorf("reading the signed delete: %w", err))
		return
	}
	if err := s.remove(r, key, tomb); err != nil {
		s.fail(w, r, 0, err)
		return
	}
	out := deleteJSON{Deleted: true}
	out.Key, out.ID = splitKey(key)
	writeJSON(w, http.StatusOK, out)
}

type whereJSON struct {
	Key    string       `json:"key"`
	Target string       `json:"target"`
	Nodes  []holderJSON `json:"nodes"`
	ID     string       `json:"id,omitempty"` // the value asked about (?id=)
}

func (s *server) holders(r *http.Request, key string) (whereJSON, error) {
	ctx, cancel := s.ctx(r)
	defer cancel()
	start := time.Now()
	hs, err := s.n.Where(ctx, key)
	s.metrics.observeOp("kv_where", time.Since(start), err)
	out := whereJSON{Target: store.KeyTarget(key).String(), Nodes: make([]holderJSON, 0, len(hs))}
	out.Key, out.ID = splitKey(key)
	if err != nil {
		return out, err
	}
	for _, h := range hs {
		if h.Self {
			// The engine names itself by id only; give the address peers
			// see, else the one it listens on.
			h.Node.Addr = s.n.Addr()
			if a, ok := s.external(); ok {
				h.Node.Addr = a
			}
		}
		hj := holderJSON{
			ID: h.Node.ID.String(), Addr: h.Node.Addr.String(),
			Version: h.Version, Has: h.Has, Deleted: h.Deleted, Self: h.Self,
			URL: s.opt.PeerURL(h.Node.Addr),
		}
		if h.Err != nil {
			hj.Error = h.Err.Error()
		}
		out.Nodes = append(out.Nodes, hj)
	}
	return out, nil
}

func (s *server) where(w http.ResponseWriter, r *http.Request) {
	key, err := pathKey(r)
	if err != nil {
		s.fail(w, r, http.StatusBadRequest, err)
		return
	}
	out, err := s.holders(r, key)
	if err != nil {
		s.fail(w, r, 0, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// valueJSON is one event of GET /v1/watch/{key}. Value is base64; Text
// repeats it when it is valid UTF-8. Deleted marks a delete (no value).
type valueJSON struct {
	Key     string        `json:"key"`
	Version store.Version `json:"version"`
	Size    int           `json:"size"`
	Value   []byte        `json:"value"`
	Text    *string       `json:"text,omitempty"`
	Expires *time.Time    `json:"expires,omitempty"`
	Deleted bool          `json:"deleted,omitempty"`
	Partial bool          `json:"partial,omitempty"`
	// Signer is the owner's key of a signed value (hex); Text is then
	// its payload, checked by this node (Value is the whole envelope,
	// for a reader to check itself).
	Signer string `json:"signer,omitempty"`
	// ID is the value's id among the key's values (16 hex digits; all
	// zeros for the default value).
	ID string `json:"id"`
	// Reason says what happened, in a watch event: "added", "changed",
	// "deleted" or "expired" (Deleted is set for the last two: the value
	// is gone; Version is the delete's, or the expired value's).
	Reason string `json:"reason,omitempty"`
	// Truncated, in GET /v1/values/{key}: the value did not fit the
	// answer (Value is empty); read it with GET /v1/keys/{key}?id=ID.
	Truncated bool `json:"truncated,omitempty"`
}

// newValueJSON is what the API shows of value v of key.
func newValueJSON(key string, v dhtkit.Value) valueJSON {
	ev := valueJSON{Key: key, Version: v.Version, Size: len(v.Data), Value: v.Data, Partial: v.Partial, ID: v.ID.String()}
	shown, signer := readable(store.ValueKey(key, v.ID), v)
	if utf8.Valid(shown) {
		t := string(shown)
		ev.Text = &t
	}
	ev.Signer = signer
	if !v.Expires.IsZero() {
		e := v.Expires.UTC()
		ev.Expires = &e
	}
	return ev
}

// readable is what a person is shown of v: the payload of a signed value
// this node can open (not one encrypted to someone), and its signer in
// hex; the data as it is otherwise.
func readable(key string, v dhtkit.Value) ([]byte, string) {
	if v.Signer == nil {
		return v.Data, ""
	}
	var o dhtkit.Opened
	var err error
	if v.Envelope != nil {
		o, err = dhtkit.OpenChunked(key, v.Data, v.Envelope, nil)
	} else {
		o, err = dhtkit.Open(key, v.Data, nil)
	}
	if err != nil || o.Encrypted {
		return v.Data, hex.EncodeToString(v.Signer)
	}
	return o.Payload, hex.EncodeToString(v.Signer)
}

// watch streams GET /v1/watch/{key} as Server-Sent Events: one "value"
// event per value of the key added, changed, deleted or expired (with
// ?id=, of that value only), the event id its version, and a comment
// every 15s so that proxies keep the stream open.
func (s *server) watch(w http.ResponseWriter, r *http.Request) {
	rk, err := pathKey(r)
	if err != nil {
		s.fail(w, r, http.StatusBadRequest, err)
		return
	}
	key, only := store.SplitKey(rk)
	if r.URL.Query().Get("id") == "" {
		key, only = rk, store.DefaultValue
	}
	filter := r.URL.Query().Get("id") != ""
	ch, err := s.n.WatchValues(r.Context(), key)
	if err != nil {
		s.fail(w, r, 0, fmt.Errorf("watch %q: %w", key, err))
		return
	}
	sse := startSSE(w)
	keepalive := time.NewTicker(15 * time.Second)
	defer keepalive.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-keepalive.C:
			if sse.comment("keepalive") != nil {
				return
			}
		case c, ok := <-ch:
			if !ok {
				return
			}
			if filter && c.Value.ID != only {
				continue
			}
			ev := newValueJSON(key, c.Value)
			ev.Reason = string(c.Reason)
			if c.Reason == dhtkit.Deleted || c.Reason == dhtkit.Expired {
				ev.Deleted, ev.Text, ev.Value, ev.Size = true, nil, nil, 0
			}
			if sse.event("value", c.Value.Version.String(), ev) != nil {
				return
			}
		}
	}
}

// recordJSON is one record of GET /v1/local.
type recordJSON struct {
	Key     string        `json:"key"`
	Target  string        `json:"target"`
	Size    int           `json:"size"`
	Version store.Version `json:"version"`
	Expires *time.Time    `json:"expires,omitempty"`
	Deleted bool          `json:"deleted"`
	ID      string        `json:"id,omitempty"` // a value other than the key's default one
}

type localJSON struct {
	Keys    int          `json:"keys"`
	Bytes   int64        `json:"bytes"`
	Records []recordJSON `json:"records"`
}

func (s *server) local(w http.ResponseWriter, r *http.Request) {
	recs := s.localRecords()
	out := localJSON{Records: make([]recordJSON, 0, len(recs))}
	sz := s.storeSize()
	out.Keys, out.Bytes = sz.Keys, sz.Bytes
	for _, rec := range recs {
		rj := recordJSON{Target: rec.Target().String(), Size: len(rec.Value), Version: rec.Version, Deleted: rec.Deleted}
		rj.Key, rj.ID = splitKey(rec.Key)
		if !rec.Expires.IsZero() {
			e := rec.Expires.UTC()
			rj.Expires = &e
		}
		out.Records = append(out.Records, rj)
	}
	writeJSON(w, http.StatusOK, out)
}

// localRecords is what the node stores, in key order.
func (s *server) localRecords() []store.Record {
	recs := s.n.Local()
	slices.SortFunc(recs, func(a, b store.Record) int { return strings.Compare(a.Key, b.Key) })
	return recs
}

// storeSize counts live values (not tombstones) and their bytes, keys
// included, as the store counts them against its limit: counters the
// store keeps, so that status, metrics and the page cost the same on a
// store of 1 GiB as on an empty one.
func (s *server) storeSize() storeSize {
	st := s.n.LocalStats()
	return storeSize{Keys: st.Keys, Bytes: st.Bytes}
}

// The web page's forms. They post to the node like any form, so they work
// without script; a cross-site form is refused (see guard).

func (u *ui) put(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, u.s.opt.MaxValueSize+maxJSONBody)
	if err := r.ParseMultipartForm(1 << 20); err != nil && !errors.Is(err, http.ErrNotMultipart) {
		u.flash(w, r, "", fmt.Errorf("reading the form: %w", err))
		return
	}
	key := r.FormValue("key")
	if key == "" {
		u.flash(w, r, "", errors.New("put: the key is empty"))
		return
	}
	ttl, err := parseTTL(strings.TrimSpace(r.FormValue("ttl")))
	if err != nil {
		u.flash(w, r, "", err)
		return
	}
	// Browsers send a textarea's line breaks as CRLF (HTML's form
	// encoding); the value typed had none. Files are stored as they are.
	data := []byte(strings.ReplaceAll(r.FormValue("value"), "\r\n", "\n"))
	if f, _, err := r.FormFile("file"); err == nil {
		var buf bytes.Buffer
		_, err = io.Copy(&buf, f)
		f.Close()
		if err != nil {
			u.flash(w, r, "", fmt.Errorf("reading the file: %w", err))
			return
		}
		if buf.Len() > 0 {
			data = buf.Bytes()
		}
	}
	v, _, err := u.s.put(r, key, data, ttl)
	if err != nil {
		u.flash(w, r, "", err)
		return
	}
	u.flash(w, r, fmt.Sprintf("stored %q (%d bytes), version %v", key, len(data), v), nil)
}

func (u *ui) del(w http.ResponseWriter, r *http.Request) {
	key := r.FormValue("key")
	if key == "" {
		u.flash(w, r, "", errors.New("delete: the key is empty"))
		return
	}
	if err := u.s.remove(r, key, nil); err != nil {
		u.flash(w, r, "", err)
		return
	}
	u.flash(w, r, fmt.Sprintf("deleted %q", key), nil)
}

// get renders the value of ?key= on a page of its own, with where it is
// stored.
func (u *ui) get(w http.ResponseWriter, r *http.Request) {
	key := r.URL.Query().Get("key")
	if key == "" {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	p := getPage{Key: key, KeyURL: keyURL(key), Target: store.KeyTarget(key).String()}
	ctx, cancel := u.s.ctx(r)
	defer cancel()
	v, err := u.s.n.Get(ctx, key)
	switch {
	case errors.Is(err, dhtkit.ErrNotFound):
		p.NotFound = true
	case err != nil:
		p.Err = err.Error()
	default:
		p.Found = true
		p.Size = len(v.Data)
		p.Version = v.Version.String()
		p.Expires = v.Expires
		p.Partial = v.Partial
		shown, signer := readable(key, v)
		p.Signer = signer
		if utf8.Valid(shown) {
			const show = 64 << 10
			p.Text = string(shown[:min(len(shown), show)])
			p.Truncated = len(shown) > show
			p.IsText = true
		}
	}
	if where, err := u.s.holders(r, key); err == nil {
		p.Holders = where.Nodes
	}
	u.render(w, r, "get", u.page("get "+key, p))
}

func isNotFound(err error) bool { return errors.Is(err, dhtkit.ErrNotFound) }

// clientIP names the writer for the node's per-source quota.
func clientIP(r *http.Request) string {
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		return ap.Addr().Unmap().String()
	}
	return r.RemoteAddr
}

// signedBy is dhtkit.CheckSigner named like the node's own errors
// (`dhtkit: get "KEY": …`): CheckSigner leaves the key to its caller, and
// the Stat or Get error beside it names the key already, so neither is
// wrapped twice (issue 14).
func signedBy(key string, v dhtkit.Value, signer ed25519.PublicKey) error {
	if err := dhtkit.CheckSigner(key, v.Signer, signer); err != nil {
		return fmt.Errorf("dhtkit: get %q: %w", key, err)
	}
	return nil
}
