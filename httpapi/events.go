package httpapi

import (
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/kademlia"
	"github.com/dhtkit/dhtkit/krpc"
)

// noDeadline is the zero time: no write deadline.
var noDeadline time.Time

// recentMessages is how many messages Events keeps for the page.
const recentMessages = 40

// Events fans the messages of one node out to the web page and to GET
// /v1/events. Install Tap as the node's kademlia.Config.Tap: it runs on
// the node's protocol loop, so it only copies a few fixed-size fields and
// never blocks; a subscriber that falls behind loses messages, not the
// node its speed.
type Events struct {
	mu     sync.Mutex
	recent [recentMessages]tapped
	next   int // index in recent of the next message
	count  uint64
	subs   map[chan tapped]struct{}
}

// NewEvents returns an Events with no subscribers.
func NewEvents() *Events {
	return &Events{subs: make(map[chan tapped]struct{})}
}

// tapped is what Events keeps of a message.
type tapped struct {
	time   time.Time
	dir    kademlia.Direction
	peer   netip.AddrPort
	kind   krpc.Kind
	method krpc.Method
	sender id.ID
	target id.ID
	has    krpc.Field // HasID, HasTarget or HasInfoHash: which ids are set
	code   int
}

// Tap has the signature of kademlia.Config.Tap.
func (e *Events) Tap(dir kademlia.Direction, peer netip.AddrPort, m *krpc.Msg) {
	t := tapped{time: time.Now(), dir: dir, peer: peer, kind: m.Y, method: m.Q}
	if sender, ok := m.SenderID(); ok {
		t.sender, t.has = sender, krpc.HasID
	}
	switch {
	case m.Y == krpc.Query && m.A.Has&krpc.HasTarget != 0:
		t.target, t.has = m.A.Target, t.has|krpc.HasTarget
	case m.Y == krpc.Query && m.A.Has&krpc.HasInfoHash != 0:
		t.target, t.has = m.A.InfoHash, t.has|krpc.HasInfoHash
	case m.Y == krpc.Error:
		t.code = m.E.Code
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.recent[e.next] = t
	e.next = (e.next + 1) % len(e.recent)
	e.count++
	for c := range e.subs {
		select {
		case c <- t:
		default: // the subscriber is behind: it loses this one
		}
	}
}

// subscribe returns a channel of the messages from now on; cancel ends
// the subscription.
func (e *Events) subscribe() (c <-chan tapped, cancel func()) {
	ch := make(chan tapped, 256)
	e.mu.Lock()
	e.subs[ch] = struct{}{}
	e.mu.Unlock()
	return ch, func() {
		e.mu.Lock()
		delete(e.subs, ch)
		e.mu.Unlock()
	}
}

// Recent returns up to the last recentMessages messages, newest first.
func (e *Events) recentJSON() []messageJSON {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := min(int(e.count), len(e.recent))
	out := make([]messageJSON, 0, n)
	for i := 1; i <= n; i++ {
		out = append(out, e.recent[(e.next-i+len(e.recent))%len(e.recent)].json())
	}
	return out
}

// messageJSON is one message in GET /v1/events and on the page.
type messageJSON struct {
	Time     time.Time `json:"time"`
	Dir      string    `json:"dir"`  // "in" or "out"
	Kind     string    `json:"kind"` // "query", "response" or "error"
	Method   string    `json:"method,omitempty"`
	Peer     string    `json:"peer"`
	Sender   string    `json:"sender,omitempty"`
	Target   string    `json:"target,omitempty"`
	InfoHash string    `json:"infohash,omitempty"`
	Code     int       `json:"code,omitempty"`
}

func (t tapped) json() messageJSON {
	m := messageJSON{Time: t.time.UTC(), Dir: "in", Peer: t.peer.String(), Code: t.code}
	if t.dir == kademlia.Out {
		m.Dir = "out"
	}
	switch t.kind {
	case krpc.Query:
		m.Kind = "query"
		m.Method = t.method.String()
	case krpc.Response:
		m.Kind = "response"
	case krpc.Error:
		m.Kind = "error"
	}
	if t.has&krpc.HasID != 0 {
		m.Sender = t.sender.String()
	}
	if t.has&krpc.HasTarget != 0 {
		m.Target = t.target.String()
	}
	if t.has&krpc.HasInfoHash != 0 {
		m.InfoHash = t.target.String()
	}
	return m
}

// countersJSON is the "stats" event of GET /v1/events: running totals the
// page turns into rates.
type countersJSON struct {
	UptimeS    float64           `json:"uptime_s"`
	Contacts   int               `json:"contacts"`
	Keys       int               `json:"keys"`
	Bytes      int64             `json:"bytes"`
	QueriesIn  map[string]uint64 `json:"queries_in"`
	QueriesOut map[string]uint64 `json:"queries_out"`
	MsgsIn     uint64            `json:"messages_in"`
	MsgsOut    uint64            `json:"messages_out"`
	Timeouts   uint64            `json:"timeouts"`
	Errors     uint64            `json:"errors"`
	Dropped    map[string]uint64 `json:"dropped"` // by kademlia.DropReason, all of them
}

func (s *server) counters() countersJSON {
	st := s.n.Stats()
	c := countersJSON{
		UptimeS:    s.uptime().Seconds(),
		Contacts:   countContacts(s.n.Routing()),
		QueriesIn:  map[string]uint64{},
		QueriesOut: map[string]uint64{},
		Timeouts:   st.Timeouts,
		Errors:     st.ErrorsIn + st.ErrorsOut + st.Malformed,
		Dropped:    map[string]uint64{},
	}
	for _, r := range kademlia.DropReasons() {
		c.Dropped[r.String()] = st.Drops[r]
	}
	sz := s.storeSize()
	c.Keys, c.Bytes = sz.Keys, sz.Bytes
	for _, m := range krpc.Methods() {
		c.QueriesIn[m.String()] = st.QueriesIn[m]
		c.QueriesOut[m.String()] = st.QueriesOut[m]
		c.MsgsIn += st.QueriesIn[m]
		c.MsgsOut += st.QueriesOut[m]
	}
	c.MsgsIn += st.QueriesIn[krpc.MethodUnknown] + st.ResponsesIn + st.ErrorsIn
	return c
}

// events is GET /v1/events: a "stats" event every second (?interval= to
// change it) and, when Options.Events is set, a "message" event per
// message the node sends or receives.
func (s *server) events(w http.ResponseWriter, r *http.Request) {
	interval := time.Second
	if d, err := time.ParseDuration(r.URL.Query().Get("interval")); err == nil && d >= 100*time.Millisecond {
		interval = d
	}
	var msgs <-chan tapped
	if s.opt.Events != nil {
		c, cancel := s.opt.Events.subscribe()
		defer cancel()
		msgs = c
	}
	sse := startSSE(w)
	if sse.event("stats", "", s.counters()) != nil {
		return
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-tick.C:
			if sse.event("stats", "", s.counters()) != nil {
				return
			}
		case t := <-msgs:
			if sse.event("message", "", t.json()) != nil {
				return
			}
		}
	}
}
