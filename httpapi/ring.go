package httpapi

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net/http"

	"github.com/dhtkit/dhtkit/chord"
	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/kademlia"
	"github.com/dhtkit/dhtkit/krpc"
)

// errNotChord answers /v1/ring on a Kademlia node.
var errNotChord = errors.New("this node runs Kademlia, which has buckets, not a ring: see /v1/routing (start the node with --protocol chord for a ring)")

// fingerJSON is one row of a Chord finger table.
type fingerJSON struct {
	Index int      `json:"index"` // the row: start = id + 2^index
	Start string   `json:"start"`
	Node  nodeJSON `json:"node"`
}

// ringJSON is GET /v1/ring: a Chord node's neighbours in Chord's words.
type ringJSON struct {
	ID          string       `json:"id"`
	Predecessor *nodeJSON    `json:"predecessor"` // null when not known yet
	Successors  []nodeJSON   `json:"successors"`
	Fingers     []fingerJSON `json:"fingers"`
}

func (s *server) ringOf(r chord.Ring) ringJSON {
	out := ringJSON{ID: r.Self.String(), Successors: s.nodes(r.Successors), Fingers: make([]fingerJSON, 0, len(r.Fingers))}
	if r.HasPredecessor {
		p := s.nodes([]krpc.NodeInfo{r.Predecessor})[0]
		out.Predecessor = &p
	}
	for _, f := range r.Fingers {
		out.Fingers = append(out.Fingers, fingerJSON{Index: f.Index, Start: f.Start.String(), Node: s.nodes([]krpc.NodeInfo{f.Node})[0]})
	}
	return out
}

func (s *server) getRing(w http.ResponseWriter, r *http.Request) {
	rg, ok := s.n.Ring()
	if !ok {
		s.fail(w, r, http.StatusNotFound, errNotChord)
		return
	}
	writeJSON(w, http.StatusOK, s.ringOf(rg))
}

// hopJSON is one query of a traced lookup (GET /v1/lookup/{target}?trace=1).
type hopJSON struct {
	Node  nodeJSON   `json:"node"`
	Depth int        `json:"depth"`           // answers in the chain that led to this node
	RTTMs float64    `json:"rtt_ms"`          // 0 when it did not answer
	Nodes []nodeJSON `json:"nodes"`           // what it answered
	Done  bool       `json:"done,omitempty"`  // Chord: it answered with the target's successor
	Error string     `json:"error,omitempty"` // why it gave no answer
}

func (s *server) trace(hops []kademlia.Hop) []hopJSON {
	if hops == nil {
		return nil
	}
	out := make([]hopJSON, 0, len(hops))
	for _, h := range hops {
		out = append(out, hopJSON{
			Node: s.nodes([]krpc.NodeInfo{h.Node})[0], Depth: h.Depth, RTTMs: float64(h.RTT.Microseconds()) / 1000,
			Nodes: s.nodes(h.Nodes), Done: h.Done, Error: h.Err,
		})
	}
	return out
}

// loadNodeJSON is one node of GET /v1/load.
type loadNodeJSON struct {
	ID    string `json:"id"`
	Addr  string `json:"addr"`
	Keys  int64  `json:"keys"`
	Bytes int64  `json:"bytes"`
	Error string `json:"error,omitempty"` // it did not answer; keys and bytes are 0 and left out of the figures
}

// loadJSON is GET /v1/load: the records each node holds, network-wide.
type loadJSON struct {
	Nodes []loadNodeJSON `json:"nodes"`
	Min   int64          `json:"min"`
	Max   int64          `json:"max"`
	Mean  float64        `json:"mean"`
	Gini  float64        `json:"gini"`
	Keys  int64          `json:"keys"`
	Bytes int64          `json:"bytes"`
}

func (s *server) load(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := s.ctx(r)
	defer cancel()
	l, err := s.n.Load(ctx)
	if err != nil {
		s.fail(w, r, 0, err)
		return
	}
	out := loadJSON{Nodes: make([]loadNodeJSON, 0, len(l.Nodes)), Min: l.Min, Max: l.Max, Mean: l.Mean, Gini: l.Gini, Keys: l.Keys, Bytes: l.Bytes}
	for _, x := range l.Nodes {
		nj := loadNodeJSON{ID: x.Node.ID.String(), Addr: x.Node.Addr.String(), Keys: x.Keys, Bytes: x.Bytes}
		if x.Err != nil {
			nj.Error = x.Err.Error()
		}
		out.Nodes = append(out.Nodes, nj)
	}
	writeJSON(w, http.StatusOK, out)
}

// chordView is a Chord node's ring drawn as SVG, in Chord's words: the
// node n, its predecessor, its successor list s1..sr and its fingers,
// finger[i] = successor(n + 2^i), each a chord from n across the circle
// to its node, with the finger's start marked on the rim. It is built
// from the same chord.Ring as /v1/ring, so the page and the API agree.
type chordView struct {
	Size, C, R  float64
	Self        chordPoint
	Predecessor *chordPoint
	Successors  []chordPoint
	Fingers     []chordFinger
	Ticks       []ringTick
}

type chordPoint struct {
	X, Y   float64
	FX, FY float64 // successors and predecessor: the point the arrow comes from (n, s1, …; p leads to n)
	LX, LY float64 // where its label goes, outside the rim
	Label  string  // the tooltip: role, id, address
	Text   string  // the short label drawn beside it: "p", "s1", "f5"
	URL    string
	N      int // successor rank (1 = the successor) or finger row
}

type chordFinger struct {
	chordPoint
	Path             string  // the chord from n to the finger's node, bent toward the centre
	SX, SY, SX2, SY2 float64 // the mark of its start, n + 2^i, on the rim
}

// at places an id on a circle of radius r round the view's centre: 0 at
// the top, ids clockwise, by their first 32 bits.
func (v *chordView) at(x id.ID, r float64) (float64, float64) {
	a := float64(binary.BigEndian.Uint32(x[:4])) / (1 << 32) * 2 * math.Pi
	return round1(v.C + r*math.Sin(a)), round1(v.C - r*math.Cos(a))
}

func (v *chordView) point(s *server, n krpc.NodeInfo, role, text string, rank int) chordPoint {
	p := chordPoint{Label: role + " " + n.ID.String() + " " + n.Addr.String(), Text: text, N: rank, URL: s.opt.PeerURL(n.Addr)}
	p.X, p.Y = v.at(n.ID, v.R)
	p.LX, p.LY = v.at(n.ID, v.R+16)
	p.LY += 4 // the text's baseline, so that it centres on the point
	return p
}

func (s *server) chordRing(r chord.Ring) *chordView {
	v := &chordView{Size: 380, C: 190, R: 150}
	v.Self.X, v.Self.Y = v.at(r.Self, v.R)
	v.Self.Label, v.Self.Text = "this node n "+r.Self.String(), "n"
	v.Self.LX, v.Self.LY = v.at(r.Self, v.R+16)
	v.Self.LY += 4
	if r.HasPredecessor {
		p := v.point(s, r.Predecessor, "predecessor", "p", 0)
		p.FX, p.FY = p.X, p.Y
		v.Predecessor = &p
	}
	fx, fy := v.Self.X, v.Self.Y
	for i, n := range r.Successors {
		p := v.point(s, n, fmt.Sprintf("successor %d of %d", i+1, len(r.Successors)), fmt.Sprint("s", i+1), i+1)
		p.FX, p.FY = fx, fy
		fx, fy = p.X, p.Y
		v.Successors = append(v.Successors, p)
	}
	for _, f := range r.Fingers {
		cf := chordFinger{chordPoint: v.point(s, f.Node, fmt.Sprintf("finger[%d] = successor(n + 2^%d)", f.Index, f.Index), fmt.Sprint("f", f.Index), f.Index)}
		// A quadratic curve through a point pulled toward the centre: the
		// chords of near fingers stay visible beside the rim.
		mx, my := (v.Self.X+cf.X)/2, (v.Self.Y+cf.Y)/2
		qx, qy := round1(v.C+(mx-v.C)*0.5), round1(v.C+(my-v.C)*0.5)
		cf.Path = fmt.Sprintf("M%.1f %.1fQ%.1f %.1f %.1f %.1f", v.Self.X, v.Self.Y, qx, qy, cf.X, cf.Y)
		cf.SX, cf.SY = v.at(f.Start, v.R-7)
		cf.SX2, cf.SY2 = v.at(f.Start, v.R+7)
		v.Fingers = append(v.Fingers, cf)
	}
	for q := range 4 {
		a := float64(q) * math.Pi / 2
		sin, cos := math.Sin(a), math.Cos(a)
		v.Ticks = append(v.Ticks, ringTick{
			X1: round1(v.C + (v.R-4)*sin), Y1: round1(v.C - (v.R-4)*cos),
			X2: round1(v.C + (v.R+4)*sin), Y2: round1(v.C - (v.R+4)*cos),
			TX: round1(v.C + (v.R-20)*sin), TY: round1(v.C - (v.R-20)*cos + 4),
			Label: []string{"00", "40", "80", "c0"}[q],
		})
	}
	return v
}
