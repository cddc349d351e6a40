// Package httpapi serves one node over HTTP: the JSON API of CONTRACT.md
// (/v1/...), Prometheus metrics (/metrics) and the node's web page (/).
//
// The web page is plain server-rendered HTML, readable in a text browser;
// its script only adds the live parts (counters, the message stream). All
// assets are embedded, so the page works offline. Everything that came from
// the network — keys, values, node ids, addresses — passes through
// html/template and is escaped.
//
// Endpoints beyond CONTRACT.md serve the protocol commands of the CLI when
// they ask a running node: POST /v1/lookup/{target}, GET /v1/peers/{infohash},
// POST /v1/announce/{infohash}?port=P, GET /v1/items/{target}?salt=S and
// PUT /v1/items/{target} (BEP 44), and GET /v1/events (Server-Sent Events of
// the node's traffic, which the web page shows live).
package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dhtkit/dhtkit"
	"github.com/dhtkit/dhtkit/chord"
	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/kademlia"
	"github.com/dhtkit/dhtkit/krpc"
	"github.com/dhtkit/dhtkit/routing"
	"github.com/dhtkit/dhtkit/store"
)

// DefaultMaxValueSize bounds the body of PUT /v1/keys/{key}. The node
// streams a large value into chunks, so the bound is about what a node
// lets one request write, not about memory.
const DefaultMaxValueSize = 4 << 30

// maxJSONBody bounds the JSON bodies the API accepts (BEP 44 items, forms):
// they are small by nature.
const maxJSONBody = 64 << 10

// Options configures the handler. The zero value works.
type Options struct {
	// Logger receives request errors; nil: slog.Default().
	Logger *slog.Logger
	// PeerURL returns the web page of the node listening on the UDP address
	// addr, or "" when it is not known. The demo and a cluster know the
	// pages of their nodes; nil: no links.
	PeerURL func(addr netip.AddrPort) string
	// Events feeds the live view and GET /v1/events with the node's
	// messages. Install its Tap as the node's kademlia.Config.Tap before
	// dhtkit.Listen. nil: the live view shows counters only.
	Events *Events
	// Protocol is the routing protocol the node runs, for /v1/status;
	// "" means "kademlia".
	Protocol string
	// Started is when the node started, for the uptime; zero: when New
	// was called.
	Started time.Time
	// MaxValueSize bounds a value written through the API; 0 means
	// DefaultMaxValueSize. Larger bodies get 413.
	MaxValueSize int64
	// Timeout bounds each network operation an API request starts; 0 means
	// 30s.
	Timeout time.Duration
	// Token, when not empty, is the bearer token every request must carry
	// (see guard.go). A node serving off loopback needs one.
	Token string
	// AllowedHosts are the host names the API answers to besides IP
	// literals and localhost names (DNS rebinding protection): the names
	// by which an operator reaches the node.
	AllowedHosts []string
}

// server is the state shared by the handlers of one node.
type server struct {
	n       *dhtkit.Node
	opt     Options
	log     *slog.Logger
	metrics *metrics
	ui      *ui
}

// New returns the handler serving n: the API, /metrics and the web page.
func New(n *dhtkit.Node, opt Options) http.Handler {
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	if opt.Protocol == "" {
		opt.Protocol = "kademlia"
	}
	if opt.Started.IsZero() {
		opt.Started = time.Now()
	}
	if opt.MaxValueSize <= 0 {
		opt.MaxValueSize = DefaultMaxValueSize
	}
	if opt.Timeout <= 0 {
		opt.Timeout = 30 * time.Second
	}
	if opt.PeerURL == nil {
		opt.PeerURL = func(netip.AddrPort) string { return "" }
	}
	s := &server{n: n, opt: opt, log: opt.Logger}
	s.metrics = newMetrics(s)
	s.ui = newUI(s)

	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", s.status)
	mux.HandleFunc("GET /v1/routing", s.routing)
	mux.HandleFunc("GET /v1/members", s.members)
	mux.HandleFunc("GET /v1/keys", s.keys)
	mux.HandleFunc("GET /v1/ring", s.getRing)
	mux.HandleFunc("GET /v1/load", s.load)
	mux.HandleFunc("GET /v1/events", s.events)
	mux.HandleFunc("POST /v1/lookup/{target}", s.lookup)
	mux.HandleFunc("GET /v1/lookup/{target}", s.lookup)
	mux.HandleFunc("GET /v1/peers/{infohash}", s.peers)
	mux.HandleFunc("POST /v1/announce/{infohash}", s.announce)
	mux.HandleFunc("GET /v1/items/{target}", s.getItem)
	mux.HandleFunc("PUT /v1/items/{target}", s.putItem)
	mux.HandleFunc("POST /v1/items", s.putItem)
	s.kvRoutes(mux)
	s.permanentRoutes(mux)
	mux.Handle("GET /metrics", s.metrics.handler())
	s.ui.routes(mux)
	return s.metrics.instrument(securityHeaders(s.guard(s.jsonErrors(mux))))
}

// jsonErrors answers requests to /v1/ that match no endpoint, or match
// one with another method, with a JSON error like every other API error.
func (s *server) jsonErrors(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := mux.Handler(r); pattern != "" || !strings.HasPrefix(r.URL.Path, "/v1/") {
			mux.ServeHTTP(w, r)
			return
		}
		rec := &codeRecorder{header: http.Header{}}
		mux.ServeHTTP(rec, r)
		msg := "no such endpoint"
		if rec.code == http.StatusMethodNotAllowed {
			msg = "method not allowed"
			w.Header().Set("Allow", rec.header.Get("Allow"))
		}
		s.fail(w, r, rec.code, fmt.Errorf("%s: %s %s", msg, r.Method, r.URL.Path))
	})
}

// codeRecorder keeps the status and headers of the mux's own 404 and 405.
type codeRecorder struct {
	header http.Header
	code   int
}

func (c *codeRecorder) Header() http.Header         { return c.header }
func (c *codeRecorder) Write(b []byte) (int, error) { return len(b), nil }
func (c *codeRecorder) WriteHeader(code int)        { c.code = code }

// securityHeaders keeps values served by the node from being sniffed into
// HTML or framed by another site.
// Their values are shared by every response, where Header.Set allocated
// a slice per header per request: nothing changes a value in place (Set
// replaces the slice, and Add appends past its capacity, to a copy).
func securityHeaders(h http.Handler) http.Handler {
	var (
		nosniff    = []string{"nosniff"}
		deny       = []string{"DENY"}
		sameOrigin = []string{"same-origin"}
	)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd["X-Content-Type-Options"] = nosniff[:1:1]
		hd["X-Frame-Options"] = deny[:1:1]
		hd["Referrer-Policy"] = sameOrigin[:1:1]
		h.ServeHTTP(w, r)
	})
}

// ctx bounds a network operation started by r.
func (s *server) ctx(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), s.opt.Timeout)
}

func (s *server) uptime() time.Duration { return time.Since(s.opt.Started) }

// jsonWriter is an indenting JSON encoder and the buffer it writes to,
// recycled: a fresh encoder allocated itself, its buffer and the
// indented copy on every answer, a put's included.
type jsonWriter struct {
	buf bytes.Buffer
	enc *json.Encoder
}

var jsonWriters = sync.Pool{New: func() any {
	j := &jsonWriter{}
	j.enc = json.NewEncoder(&j.buf)
	j.enc.SetIndent("", "  ")
	return j
}}

// writeJSON writes v with status code.
func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	j := jsonWriters.Get().(*jsonWriter)
	if err := j.enc.Encode(v); err == nil {
		_, _ = w.Write(j.buf.Bytes()) // the client went away: nothing to do
	}
	if j.buf.Cap() <= 64<<10 { // a large answer's buffer is not kept
		j.buf.Reset()
		jsonWriters.Put(j)
	}
}

// errorBody is every error response: {"error":"..."}.
type errorBody struct {
	Error string `json:"error"`
}

// fail answers with {"error": err} and code; 0 picks the code from err.
func (s *server) fail(w http.ResponseWriter, r *http.Request, code int, err error) {
	if code == 0 {
		code = statusOf(err)
	}
	if code >= 500 {
		s.log.Warn("http request failed", "method", r.Method, "path", r.URL.Path, "status", code, "err", err)
	}
	s.metrics.apiError(code)
	if r.Method == http.MethodHead {
		w.WriteHeader(code)
		return
	}
	writeJSON(w, code, errorBody{Error: err.Error()})
}

// statusOf maps an error of the node to an HTTP status.
func statusOf(err error) int {
	var mbe *http.MaxBytesError
	var re *kademlia.RemoteError
	switch {
	case isNotFound(err), errors.Is(err, kademlia.ErrNotFound):
		return http.StatusNotFound
	case errors.As(err, &mbe), errors.Is(err, store.ErrTooLarge), errors.Is(err, kademlia.ErrItemTooBig):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, store.ErrQuota):
		return http.StatusTooManyRequests
	case errors.Is(err, store.ErrCapacity), errors.Is(err, store.ErrFull):
		return http.StatusInsufficientStorage
	case errors.Is(err, kademlia.ErrBadSignature), errors.Is(err, kademlia.ErrSaltTooBig),
		errors.Is(err, kademlia.ErrNotBencoded), errors.Is(err, store.ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, kademlia.ErrReadOnly), errors.Is(err, store.ErrRefused):
		return http.StatusForbidden // a read-only node; a key owned by another signer
	case errors.Is(err, dhtkit.ErrSigner):
		return http.StatusConflict // ?signer= names another key than the value's signer
	case errors.Is(err, dhtkit.ErrConflict):
		return http.StatusConflict // a conditional write's condition failed
	case errors.Is(err, dhtkit.ErrContended):
		return http.StatusServiceUnavailable // try again
	case errors.Is(err, dhtkit.ErrIndeterminate):
		return http.StatusGatewayTimeout // the outcome is unknown: read the key
	case errors.Is(err, dhtkit.ErrBadSignature), errors.Is(err, dhtkit.ErrPermanent):
		return http.StatusBadRequest
	case errors.Is(err, dhtkit.ErrSignedTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, chord.ErrUnsupported):
		return http.StatusNotImplemented // a BitTorrent method asked of a Chord node
	case errors.Is(err, kademlia.ErrNoContacts), errors.Is(err, kademlia.ErrNotStored), errors.Is(err, kademlia.ErrQuorum),
		errors.Is(err, kademlia.ErrClosed), errors.Is(err, dhtkit.ErrNotStored), errors.Is(err, dhtkit.ErrNotJoined):
		return http.StatusServiceUnavailable
	case errors.Is(err, kademlia.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout
	case errors.As(err, &re):
		return http.StatusBadGateway
	}
	return http.StatusInternalServerError
}

// statusJSON is GET /v1/status (CONTRACT.md), plus the address peers see.
type statusJSON struct {
	ID       string  `json:"id"`
	Network  string  `json:"network"`
	Protocol string  `json:"protocol"`
	Listen   string  `json:"listen"`
	External string  `json:"external,omitempty"`
	UptimeS  float64 `json:"uptime_s"`
	// Ready: the node serves reads and writes (it has joined and knows a
	// write quorum of nodes); NotReady says why not.
	Ready    bool        `json:"ready"`
	NotReady string      `json:"not_ready,omitempty"`
	Routing  routingSize `json:"routing"`
	Store    storeSize   `json:"store"`
	// NetworkKey is set when the node seals its datagrams with a
	// network key: the ids of its keys (never the keys) and what it dropped.
	NetworkKey *networkKeyJSON `json:"network_key,omitempty"`
}

type networkKeyJSON struct {
	IDs           []string `json:"ids"` // the sealing key first
	Opened        uint64   `json:"opened"`
	Undecryptable uint64   `json:"undecryptable"` // no key of the keyring opens them
	Replayed      uint64   `json:"replayed"`
	Stale         uint64   `json:"stale"` // timestamp too far from the node's clock
}

// routingSize counts the routing table. Nodes is the contacts the node
// routes through: good and questionable ones. Bad contacts (failed
// BadFails queries in a row, probed until they answer) are not among
// them; Bad counts them apart, so that a partitioned node does not look
// well connected.
type routingSize struct {
	Nodes        int `json:"nodes"`
	Good         int `json:"good"`
	Questionable int `json:"questionable"`
	Bad          int `json:"bad"`
	Buckets      int `json:"buckets"`
}

// routingSizeOf counts the contacts of bs by state.
func routingSizeOf(bs []routingBucket) routingSize {
	r := routingSize{Buckets: len(bs)}
	for _, b := range bs {
		for _, c := range b.Contacts {
			switch c.State {
			case routing.Good:
				r.Good++
			case routing.Questionable:
				r.Questionable++
			default:
				r.Bad++
			}
		}
	}
	r.Nodes = r.Good + r.Questionable
	return r
}

type storeSize struct {
	Keys  int   `json:"keys"` // records, the chunks of large values included
	Bytes int64 `json:"bytes"`
}

func (s *server) status(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.statusNow())
}

func (s *server) statusNow() statusJSON {
	buckets := s.n.Routing()
	st := statusJSON{
		ID:       s.n.ID().String(),
		Network:  s.n.Network(),
		Protocol: s.opt.Protocol,
		Listen:   s.n.Addr().String(),
		UptimeS:  s.uptime().Round(time.Millisecond).Seconds(),
		Routing:  routingSizeOf(buckets),
		Store:    s.storeSize(),
	}
	if a, ok := s.external(); ok {
		st.External = a.String()
	}
	st.Ready, st.NotReady = s.n.Ready()
	if ids := s.n.NetworkKeyIDs(); ids != nil {
		ss := s.n.SealStats()
		st.NetworkKey = &networkKeyJSON{IDs: ids, Opened: ss.Opened, Undecryptable: ss.Undecryptable(),
			Replayed: ss.Replayed, Stale: ss.Stale}
	}
	return st
}

// external is the node's address as its peers report it (BEP 42 "ip").
// The node offers it once it has the method; until then the page and the
// status leave it out.
func (s *server) external() (netip.AddrPort, bool) {
	if e, ok := any(s.n).(interface {
		ExternalAddr() (netip.AddrPort, int)
	}); ok {
		a, votes := e.ExternalAddr()
		return a, votes > 0 && a.IsValid()
	}
	return netip.AddrPort{}, false
}

func countContacts(bs []routingBucket) int {
	k := 0
	for _, b := range bs {
		k += len(b.Contacts)
	}
	return k
}

// contactJSON is one routing-table entry in GET /v1/routing.
type contactJSON struct {
	ID        string    `json:"id"`
	Addr      string    `json:"addr"`
	State     string    `json:"state"`
	RTTMs     float64   `json:"rtt_ms"`
	LastSeen  time.Time `json:"last_seen"`
	Responded bool      `json:"responded"`
	Fails     int       `json:"fails"`
	URL       string    `json:"url,omitempty"` // the node's web page, when known
}

type bucketJSON struct {
	Prefix       string        `json:"prefix"`
	PrefixLen    int           `json:"prefix_len"`
	LastChanged  time.Time     `json:"last_changed"`
	Contacts     []contactJSON `json:"contacts"`
	Replacements []contactJSON `json:"replacements"`
}

type routingJSON struct {
	ID      string       `json:"id"`
	Nodes   int          `json:"nodes"`
	Buckets []bucketJSON `json:"buckets"`
	// A Chord node has no buckets: Buckets is empty and Ring holds its
	// predecessor, successor list and fingers (as GET /v1/ring).
	Protocol string    `json:"protocol,omitempty"`
	Ring     *ringJSON `json:"ring,omitempty"`
}

func (s *server) contact(c routingContact) contactJSON {
	return contactJSON{
		ID:        c.ID.String(),
		Addr:      c.Addr.String(),
		State:     c.State.String(),
		RTTMs:     float64(c.RTT.Microseconds()) / 1000,
		LastSeen:  c.LastSeen.UTC(),
		Responded: c.Responded,
		Fails:     c.Fails,
		URL:       s.opt.PeerURL(c.Addr),
	}
}

func (s *server) routing(w http.ResponseWriter, r *http.Request) {
	bs := s.n.Routing()
	out := routingJSON{ID: s.n.ID().String(), Nodes: countContacts(bs), Buckets: make([]bucketJSON, 0, len(bs))}
	if rg, ok := s.n.Ring(); ok {
		rj := s.ringOf(rg)
		out.Protocol, out.Ring, bs = "chord", &rj, nil
	}
	for _, b := range bs {
		bj := bucketJSON{
			Prefix:       b.Prefix.String(),
			PrefixLen:    b.PrefixLen,
			LastChanged:  b.LastChanged.UTC(),
			Contacts:     make([]contactJSON, 0, len(b.Contacts)),
			Replacements: make([]contactJSON, 0, len(b.Replacements)),
		}
		for _, c := range b.Contacts {
			bj.Contacts = append(bj.Contacts, s.contact(c))
		}
		for _, c := range b.Replacements {
			bj.Replacements = append(bj.Replacements, s.contact(c))
		}
		out.Buckets = append(out.Buckets, bj)
	}
	writeJSON(w, http.StatusOK, out)
}

// nodeJSON is a node found by a lookup.
type nodeJSON struct {
	ID   string `json:"id"`
	Addr string `json:"addr"`
	URL  string `json:"url,omitempty"`
}

// lookupStatsJSON reports how an operation went.
type lookupStatsJSON struct {
	Queries    int     `json:"queries"`
	Responses  int     `json:"responses"`
	Timeouts   int     `json:"timeouts"`
	Hops       int     `json:"hops"`
	DurationMs float64 `json:"duration_ms"`
}

func statsJSON(st kademlia.LookupStats) lookupStatsJSON {
	return lookupStatsJSON{
		Queries: st.Queries, Responses: st.Responses, Timeouts: st.Timeouts, Hops: st.Hops,
		DurationMs: float64(st.Duration.Microseconds()) / 1000,
	}
}

type lookupJSON struct {
	Target string          `json:"target"`
	Nodes  []nodeJSON      `json:"nodes"`
	Stats  lookupStatsJSON `json:"stats"`
	Trace  []hopJSON       `json:"trace,omitempty"` // with ?trace=1
}

// parseTarget reads a target as the CLI gives it: 40 hex digits, else the
// SHA-1 of the string.
func parseTarget(s string) id.ID { return id.ParseOrHash(s) }

// parseInfohash reads exactly 40 hex digits: an infohash is never hashed
// from a name.
func parseInfohash(s string) (id.ID, error) {
	x, err := id.Parse(s)
	if err != nil {
		return id.ID{}, fmt.Errorf("infohash %q: want 40 hex digits", s)
	}
	return x, nil
}

// do runs op on the node and records its duration.
func (s *server) do(r *http.Request, kind string, op kademlia.Op) (kademlia.Result, error) {
	ctx, cancel := s.ctx(r)
	defer cancel()
	start := time.Now()
	res, err := s.n.Do(ctx, op)
	s.metrics.observeOp(kind, time.Since(start), err)
	return res, err
}

func (s *server) nodes(ns []nodeInfo) []nodeJSON {
	out := make([]nodeJSON, 0, len(ns))
	for _, n := range ns {
		out = append(out, nodeJSON{ID: n.ID.String(), Addr: n.Addr.String(), URL: s.opt.PeerURL(n.Addr)})
	}
	return out
}

func (s *server) lookup(w http.ResponseWriter, r *http.Request) {
	target := parseTarget(r.PathValue("target"))
	trace := r.URL.Query().Get("trace")
	res, err := s.do(r, "find_node", kademlia.FindNode{Target: target, Trace: trace == "1" || trace == "true"})
	if err != nil {
		s.fail(w, r, 0, fmt.Errorf("lookup %v: %w", target, err))
		return
	}
	writeJSON(w, http.StatusOK, lookupJSON{Target: target.String(), Nodes: s.nodes(res.Nodes), Stats: statsJSON(res.Stats), Trace: s.trace(res.Trace)})
}

type peersJSON struct {
	InfoHash string          `json:"infohash"`
	Peers    []string        `json:"peers"`
	Nodes    []nodeJSON      `json:"nodes"`
	Stats    lookupStatsJSON `json:"stats"`
}

func (s *server) peers(w http.ResponseWriter, r *http.Request) {
	ih, err := parseInfohash(r.PathValue("infohash"))
	if err != nil {
		s.fail(w, r, http.StatusBadRequest, err)
		return
	}
	res, err := s.do(r, "get_peers", kademlia.GetPeers{InfoHash: ih})
	if err != nil {
		s.fail(w, r, 0, fmt.Errorf("get_peers %v: %w", ih, err))
		return
	}
	out := peersJSON{InfoHash: ih.String(), Peers: make([]string, 0, len(res.Peers)), Nodes: s.nodes(res.Nodes), Stats: statsJSON(res.Stats)}
	for _, p := range res.Peers {
		out.Peers = append(out.Peers, p.String())
	}
	writeJSON(w, http.StatusOK, out)
}

type announceJSON struct {
	InfoHash string          `json:"infohash"`
	Port     int             `json:"port"`
	Stored   int             `json:"stored"`
	Stats    lookupStatsJSON `json:"stats"`
}

func (s *server) announce(w http.ResponseWriter, r *http.Request) {
	ih, err := parseInfohash(r.PathValue("infohash"))
	if err != nil {
		s.fail(w, r, http.StatusBadRequest, err)
		return
	}
	q := r.URL.Query()
	implied := q.Get("implied") == "1" || q.Get("implied") == "true"
	port, err := strconv.Atoi(q.Get("port"))
	if !implied && (err != nil || port <= 0 || port > 65535) {
		s.fail(w, r, http.StatusBadRequest, fmt.Errorf("port=%q: want 1-65535 (or implied=1)", q.Get("port")))
		return
	}
	res, err := s.do(r, "announce_peer", kademlia.Announce{InfoHash: ih, Port: port, ImpliedPort: implied})
	if err == nil && res.Stored == 0 {
		err = dhtkit.ErrNotStored
	}
	if err != nil {
		s.fail(w, r, 0, fmt.Errorf("announce %v: %w", ih, err))
		return
	}
	writeJSON(w, http.StatusOK, announceJSON{InfoHash: ih.String(), Port: port, Stored: res.Stored, Stats: statsJSON(res.Stats)})
}

// itemJSON is a BEP 44 item. Byte fields are base64 (encoding/json's
// []byte): V is the bencoded value, K the ed25519 public key, Sig the
// signature. CAS, when set on a put, is the seq the stored item must have.
type itemJSON struct {
	Target  string `json:"target"`
	V       []byte `json:"v"`
	K       []byte `json:"k,omitempty"`
	Sig     []byte `json:"sig,omitempty"`
	Salt    []byte `json:"salt,omitempty"`
	Seq     int64  `json:"seq"`
	CAS     *int64 `json:"cas,omitempty"`
	Mutable bool   `json:"mutable"`
	Stored  int    `json:"stored,omitempty"`
}

// getItem is GET /v1/items/{target}?salt=S: salt (a plain string) is the
// one the mutable item's target was made with.
func (s *server) getItem(w http.ResponseWriter, r *http.Request) {
	target, err := id.Parse(r.PathValue("target"))
	if err != nil {
		s.fail(w, r, http.StatusBadRequest, fmt.Errorf("target %q: want 40 hex digits", r.PathValue("target")))
		return
	}
	res, err := s.do(r, "get", kademlia.GetItem{Target: target, Salt: []byte(r.URL.Query().Get("salt"))})
	if err == nil && res.Item == nil {
		err = kademlia.ErrNotFound
	}
	if err != nil {
		s.fail(w, r, 0, fmt.Errorf("item %v: %w", target, err))
		return
	}
	it := res.Item
	writeJSON(w, http.StatusOK, itemJSON{Target: target.String(), V: it.V, K: it.K, Sig: it.Sig, Salt: it.Salt, Seq: it.Seq, Mutable: it.Mutable()})
}

// putItem is PUT /v1/items/{target} (the target must match the item) and
// POST /v1/items, with an itemJSON body. Mutable items come signed: the
// private key never travels to the node.
func (s *server) putItem(w http.ResponseWriter, r *http.Request) {
	var in itemJSON
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxJSONBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		code := http.StatusBadRequest
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			code = http.StatusRequestEntityTooLarge
		}
		s.fail(w, r, code, fmt.Errorf("item: %w", err))
		return
	}
	it := kademlia.Item{V: in.V, K: in.K, Sig: in.Sig, Salt: in.Salt, Seq: in.Seq}
	if err := it.Validate(); err != nil {
		s.fail(w, r, 0, err)
		return
	}
	target := it.Target()
	if t := r.PathValue("target"); t != "" && !strings.EqualFold(t, target.String()) {
		s.fail(w, r, http.StatusBadRequest, fmt.Errorf("item's target is %v, not %s", target, t))
		return
	}
	op := kademlia.PutItem{Item: it}
	if in.CAS != nil {
		op.CAS, op.UseCAS = *in.CAS, true
	}
	res, err := s.do(r, "put", op)
	if err != nil {
		s.fail(w, r, 0, fmt.Errorf("item %v: %w", target, err))
		return
	}
	writeJSON(w, http.StatusOK, itemJSON{Target: target.String(), V: it.V, K: it.K, Sig: it.Sig, Salt: it.Salt, Seq: it.Seq, Mutable: it.Mutable(), Stored: res.Stored})
}

// holderJSON is one node of GET /v1/keys/{key}/where: the node and its
// version of the key.
type holderJSON struct {
	ID      string        `json:"id"`
	Addr    string        `json:"addr"`
	Version store.Version `json:"version"`
	Has     bool          `json:"has"`
	Deleted bool          `json:"deleted"`
	Self    bool          `json:"self,omitempty"`  // this node
	Error   string        `json:"error,omitempty"` // it did not answer
	URL     string        `json:"url,omitempty"`
}

// keyURL is the API address of key's value.
func keyURL(key string) string { return "/v1/keys/" + url.PathEscape(key) }

// Short names for the node's types.
type (
	routingBucket  = routing.Bucket
	routingContact = routing.Contact
	nodeInfo       = krpc.NodeInfo
)
