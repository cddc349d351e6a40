package httpapi

import (
	"errors"
	"net/http"

	"github.com/dhtkit/dhtkit/chord"
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
