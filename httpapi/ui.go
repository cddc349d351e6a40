package httpapi

import (
	"bytes"
	"embed"
	"encoding/binary"
	"fmt"
	"html/template"
	"io/fs"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/kademlia"
	"github.com/dhtkit/dhtkit/routing"
	"github.com/dhtkit/dhtkit/store"
)

//go:embed ui
var uiFiles embed.FS

// pageCSP keeps the page to its own assets: nothing from the network can
// run script, and nothing is fetched from elsewhere.
const pageCSP = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// ui renders the web page.
type ui struct {
	s      *server
	tmpl   *template.Template
	static http.Handler
}

func newUI(s *server) *ui {
	funcs := template.FuncMap{
		"short":    func(x string) string { return x[:min(len(x), 8)] },
		"inc":      func(i int) int { return i + 1 },
		"bytes":    humanBytes,
		"ago":      func(t time.Time) string { return ago(time.Now(), t) },
		"duration": humanDuration,
		"keyurl":   keyURL,
	}
	tmpl := template.Must(template.New("").Funcs(funcs).ParseFS(uiFiles, "ui/*.html"))
	static, err := fs.Sub(uiFiles, "ui")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	return &ui{s: s, tmpl: tmpl, static: http.StripPrefix("/static/", http.FileServerFS(static))}
}

func (u *ui) routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /{$}", u.index)
	mux.HandleFunc("GET /ui/lookup", u.lookup)
	mux.Handle("GET /static/", u.static)
}

// page is what every page shows: the node in the header.
type page struct {
	Title    string
	Node     nodeView
	Flash    string
	FlashErr bool
	Body     any
}

type nodeView struct {
	ID       string
	Network  string
	Protocol string
	Listen   string
	External string
	Uptime   string
	Started  time.Time
}

func (u *ui) page(title string, body any) page {
	st := u.s.statusNow()
	return page{
		Title: title,
		Node: nodeView{
			ID: st.ID, Network: st.Network, Protocol: st.Protocol, Listen: st.Listen, External: st.External,
			Uptime: humanDuration(u.s.uptime()), Started: u.s.opt.Started,
		},
		Body: body,
	}
}

func (u *ui) render(w http.ResponseWriter, r *http.Request, name string, p page) {
	var buf bytes.Buffer
	if err := u.tmpl.ExecuteTemplate(&buf, name, p); err != nil {
		u.s.fail(w, r, http.StatusInternalServerError, fmt.Errorf("rendering the page: %w", err))
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", pageCSP)
	h.Set("Cache-Control", "no-store")
	_, _ = w.Write(buf.Bytes())
}

// flash sends the browser back to the page with a message (or err).
func (u *ui) flash(w http.ResponseWriter, r *http.Request, msg string, err error) {
	q := url.Values{}
	if err != nil {
		q.Set("err", err.Error())
	} else {
		q.Set("msg", msg)
	}
	http.Redirect(w, r, "/?"+q.Encode()+"#data", http.StatusSeeOther)
}

// indexPage is the body of the node's page.
type indexPage struct {
	Contacts int
	Buckets  []bucketView
	Records  []recordView
	Store    storeSize
	Ring     ringView
	Recent   []messageJSON
	Live     bool
	Counters countersJSON
	Methods  []methodCount
	// Chunks of large values are listed apart: their keys mean nothing
	// to a person.
	Chunks     int
	ChunkBytes int64
	// More: the node stores more records than the page lists.
	More bool
	// Chord is a Chord node's ring (predecessor, successors, fingers),
	// shown in Chord's words instead of buckets; nil on a Kademlia node.
	Chord *ringJSON
}

// chunkPrefix starts the keys of the chunks of large values (package
// dhtkit stores them under "dhtkit/chunk/<sha1>").
const chunkPrefix = "dhtkit/chunk/"

type bucketView struct {
	Prefix       string // the bucket's bits, e.g. "0110"
	PrefixLen    int
	Changed      time.Time
	Contacts     []contactJSON
	Replacements int
}

type recordView struct {
	Key      string // the key, without a value's id
	ID       string // a value's id in hex; empty for the key's default value
	Download string // the value's URL, downloading
	Size     int
	Version  string
	Written  time.Time
	Expires  time.Time
	Deleted  bool
	Target   string
}

type methodCount struct {
	Method  string
	In, Out uint64
}

func (u *ui) index(w http.ResponseWriter, r *http.Request) {
	s := u.s
	buckets := s.n.Routing()
	body := indexPage{Contacts: countContacts(buckets), Live: s.opt.Events != nil, Counters: s.counters()}
	if rg, ok := s.n.Ring(); ok {
		rj := s.ringOf(rg)
		body.Chord, buckets = &rj, nil
	}
	for i := len(buckets) - 1; i >= 0; i-- { // nearest buckets first: they hold our neighbours
		b := buckets[i]
		if len(b.Contacts) == 0 {
			continue
		}
		bv := bucketView{Prefix: prefixBits(b.Prefix, b.PrefixLen), PrefixLen: b.PrefixLen, Changed: b.LastChanged, Replacements: len(b.Replacements)}
		for _, c := range b.Contacts {
			bv.Contacts = append(bv.Contacts, s.contact(c))
		}
		body.Buckets = append(body.Buckets, bv)
	}
	// The page lists the first records only, and counts from the store's
	// counters: it costs the same on a store of 1 GiB as on an empty one.
	recs := s.n.LocalFirst(maxPageRecords + 1)
	if len(recs) > maxPageRecords {
		recs, body.More = recs[:maxPageRecords], true
	}
	slices.SortFunc(recs, func(a, b store.Record) int { return strings.Compare(a.Key, b.Key) })
	body.Store = s.storeSize()
	for _, rec := range recs {
		if strings.HasPrefix(rec.Key, chunkPrefix) {
			body.Chunks++
			body.ChunkBytes += int64(len(rec.Value))
			continue
		}
		key, vid := store.SplitKey(rec.Key)
		rv := recordView{
			Key: key, Download: keyURL(key) + "?download=1", Size: len(rec.Value), Version: rec.Version.String(),
			Written: rec.Version.Physical(), Expires: rec.Expires, Deleted: rec.Deleted, Target: rec.Target().String(),
		}
		if vid != store.DefaultValue {
			rv.ID = vid.String()
			rv.Download = keyURL(key) + "?id=" + rv.ID + "&download=1"
		}
		body.Records = append(body.Records, rv)
	}
	body.Ring = s.ring(s.n.Routing(), recs)
	if s.opt.Events != nil {
		body.Recent = s.opt.Events.recentJSON()
	}
	for _, m := range slices.Sorted(mapKeys(body.Counters.QueriesIn)) {
		body.Methods = append(body.Methods, methodCount{Method: m, In: body.Counters.QueriesIn[m], Out: body.Counters.QueriesOut[m]})
	}
	p := u.page("dhtkit node "+s.n.ID().String()[:8], body)
	q := r.URL.Query()
	if e := q.Get("err"); e != "" {
		p.Flash, p.FlashErr = e, true
	} else {
		p.Flash = q.Get("msg")
	}
	u.render(w, r, "index", p)
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// maxPageRecords is how many stored records the node's page lists; the
// rest are in /v1/local.
const maxPageRecords = 200

// getPage is the body of /ui/get.
type getPage struct {
	Key       string
	Target    string // SHA-1 of the key: where in the id space its replicas are
	KeyURL    string
	Found     bool
	NotFound  bool
	Err       string
	Size      int
	Version   string
	Expires   time.Time
	Partial   bool
	Signer    string // hex: the owner who signed the value
	IsText    bool
	Text      string
	Truncated bool
	Holders   []holderJSON
}

// lookupPage is the body of /ui/lookup.
type lookupPage struct {
	Query  string
	Target string
	Nodes  []nodeJSON
	Stats  lookupStatsJSON
	Trace  []hopJSON // every query, in the order the answers came
	Err    string
}

func (u *ui) lookup(w http.ResponseWriter, r *http.Request) {
	q := strings.TrimSpace(r.URL.Query().Get("target"))
	if q == "" {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	target := parseTarget(q)
	p := lookupPage{Query: q, Target: target.String()}
	res, err := u.s.do(r, "find_node", kademlia.FindNode{Target: target, Trace: true})
	if err != nil {
		p.Err = err.Error()
	}
	p.Nodes, p.Stats, p.Trace = u.s.nodes(res.Nodes), statsJSON(res.Stats), u.s.trace(res.Trace)
	u.render(w, r, "lookup", u.page("lookup "+target.String()[:8], p))
}

// ringView is the id space drawn as a ring: 0 at the top, ids clockwise.
type ringView struct {
	Size   float64
	C      float64 // centre
	R      float64 // radius of the node ring
	RK     float64 // radius of the key ring
	Self   ringPoint
	Nodes  []ringPoint
	Keys   []ringPoint
	Ticks  []ringTick
	Others int  // contacts not drawn
	Chord  bool // the lines are successors and fingers
	// ChordRing is a Chord node's ring in Chord's words (chordring.html).
	ChordRing *chordView
}

type ringPoint struct {
	X, Y  float64
	Label string // the tooltip
	Class string
	URL   string
	Near  bool // joined to self by a line: one of the K nodes nearest by XOR (Kademlia), a successor or finger (Chord)
}

type ringTick struct {
	X1, Y1, X2, Y2, TX, TY float64
	Label                  string
}

// maxRingKeys bounds the keys drawn, so a node storing many values still
// gets a light page.
const maxRingKeys = 500

func (s *server) ring(buckets []routing.Bucket, recs []store.Record) ringView {
	v := ringView{Size: 360, C: 180, R: 150, RK: 122}
	at := func(x id.ID, r float64) (float64, float64) {
		a := float64(binary.BigEndian.Uint32(x[:4])) / (1 << 32) * 2 * math.Pi
		return round1(v.C + r*math.Sin(a)), round1(v.C - r*math.Cos(a))
	}
	self := s.n.ID()
	v.Self.X, v.Self.Y = at(self, v.R)
	v.Self.Label = "this node " + self.String()
	var all []routing.Contact
	for _, b := range buckets {
		all = append(all, b.Contacts...)
	}
	// Kademlia: the nearest by XOR distance, the nodes a lookup of our id
	// ends at. Chord: the successors and fingers, the nodes a lookup
	// leaves through.
	slices.SortFunc(all, func(a, b routing.Contact) int { return id.CompareDistance(self, a.ID, b.ID) })
	near := func(i int, _ id.ID) bool { return i < 8 }
	if rg, ok := s.n.Ring(); ok {
		v.Chord = true
		v.ChordRing = s.chordRing(rg)
		out := make(map[id.ID]bool)
		for _, n := range rg.Successors {
			out[n.ID] = true
		}
		for _, f := range rg.Fingers {
			out[f.Node.ID] = true
		}
		near = func(_ int, x id.ID) bool { return out[x] }
	}
	for i, c := range all {
		p := ringPoint{Label: c.ID.String() + " " + c.Addr.String() + " (" + c.State.String() + ")", Class: "node " + c.State.String(), URL: s.opt.PeerURL(c.Addr), Near: near(i, c.ID)}
		p.X, p.Y = at(c.ID, v.R)
		v.Nodes = append(v.Nodes, p)
	}
	for _, r := range recs {
		if r.Deleted {
			continue
		}
		if len(v.Keys) == maxRingKeys {
			v.Others++
			continue
		}
		label := "key " + r.Key
		if key, vid := store.SplitKey(r.Key); vid != store.DefaultValue {
			label = "key " + key + " value " + vid.String()
		}
		p := ringPoint{Label: label, Class: "key"}
		p.X, p.Y = at(r.Target(), v.RK)
		v.Keys = append(v.Keys, p)
	}
	for q := range 4 {
		a := float64(q) * math.Pi / 2
		sin, cos := math.Sin(a), math.Cos(a)
		v.Ticks = append(v.Ticks, ringTick{
			X1: round1(v.C + (v.R-6)*sin), Y1: round1(v.C - (v.R-6)*cos),
			X2: round1(v.C + (v.R+6)*sin), Y2: round1(v.C - (v.R+6)*cos),
			TX: round1(v.C + (v.R+20)*sin), TY: round1(v.C - (v.R+20)*cos + 4),
			Label: []string{"00", "40", "80", "c0"}[q],
		})
	}
	return v
}

func round1(f float64) float64 { return math.Round(f*10) / 10 }

// prefixBits writes the first n bits of x, at most 16 then "…".
func prefixBits(x id.ID, n int) string {
	if n == 0 {
		return "*"
	}
	var b strings.Builder
	for i := range min(n, 16) {
		if x[i/8]&(0x80>>(i%8)) != 0 {
			b.WriteByte('1')
		} else {
			b.WriteByte('0')
		}
	}
	if n > 16 {
		b.WriteString("…")
	}
	return b.String()
}

func humanBytes(n any) string {
	var f float64
	switch x := n.(type) {
	case int:
		f = float64(x)
	case int64:
		f = float64(x)
	case uint64:
		f = float64(x)
	}
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	i := 0
	for f >= 1024 && i < len(units)-1 {
		f /= 1024
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%.0f %s", f, units[i])
	}
	return fmt.Sprintf("%.1f %s", f, units[i])
}

func humanDuration(d time.Duration) string {
	switch {
	case d < time.Second:
		return "0s"
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm %02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh %02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd %02dh", int(d.Hours())/24, int(d.Hours())%24)
}

// ago says how long before now t was, "never" for the zero time.
func ago(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t)
	if d < 0 {
		return "in " + humanDuration(-d)
	}
	return humanDuration(d) + " ago"
}
