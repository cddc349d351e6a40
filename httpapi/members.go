package httpapi

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dhtkit/dhtkit"
)

// membersJSON is GET /v1/members: the nodes this node knows (its routing
// table's contacts, replacements left out), each with its state and
// round-trip time, and how many are in each state: the cluster's health
// as this node sees it. The table bounds the list (K per bucket).
type membersJSON struct {
	Self    memberJSON     `json:"self"`
	Members []memberJSON   `json:"members"`
	States  map[string]int `json:"states"` // good, questionable, bad: how many of each
}

type memberJSON struct {
	ID       string     `json:"id"`
	Addr     string     `json:"addr"`
	State    string     `json:"state"`
	RTTMs    float64    `json:"rtt_ms"`              // smoothed; 0 when not measured yet
	LastSeen *time.Time `json:"last_seen,omitempty"` // last reply or query from it
	Fails    int        `json:"fails"`               // queries in a row it did not answer
	URL      string     `json:"url,omitempty"`       // its web page, when known
}

func (s *server) members(w http.ResponseWriter, r *http.Request) {
	self := s.n.Addr()
	if a, ok := s.external(); ok {
		self = a
	}
	out := membersJSON{
		Self:   memberJSON{ID: s.n.ID().String(), Addr: self.String(), State: "self"},
		States: map[string]int{},
	}
	for _, b := range s.n.Routing() {
		for _, c := range b.Contacts {
			cj := s.contact(c)
			m := memberJSON{ID: cj.ID, Addr: cj.Addr, State: cj.State, RTTMs: cj.RTTMs, Fails: cj.Fails, URL: cj.URL}
			if !c.LastSeen.IsZero() {
				m.LastSeen = &cj.LastSeen
			}
			out.Members = append(out.Members, m)
			out.States[m.State]++
		}
	}
	if out.Members == nil {
		out.Members = []memberJSON{}
	}
	slices.SortFunc(out.Members, func(a, b memberJSON) int { return strings.Compare(a.ID, b.ID) })
	writeJSON(w, http.StatusOK, out)
}

// keysJSON is GET /v1/keys?prefix=P&after=K&limit=N: a page of the keys
// across the network (dhtkit.Node.Keys).
type keysJSON struct {
	Keys     []string `json:"keys"`
	More     bool     `json:"more"`           // more keys follow: ask again with after=next
	Next     string   `json:"next,omitempty"` // the last key of this page, when more
	Asked    int      `json:"asked"`          // nodes asked, this one included
	Answered int      `json:"answered"`
	Partial  bool     `json:"partial"` // a node did not answer: keys may be missing
}

func (s *server) keys(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	opt := dhtkit.KeysOptions{Prefix: q.Get("prefix"), After: q.Get("after")}
	for name, dst := range map[string]*int{"limit": &opt.Limit, "nodes": &opt.Nodes} {
		if v := q.Get(name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				s.fail(w, r, http.StatusBadRequest, fmt.Errorf("%s=%q: want a positive number", name, v))
				return
			}
			*dst = n
		}
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	list, err := s.n.Keys(ctx, opt)
	if err != nil {
		s.fail(w, r, 0, err)
		return
	}
	out := keysJSON{Keys: list.Keys, More: list.More, Asked: list.Asked, Answered: list.Answered, Partial: list.Partial}
	if out.Keys == nil {
		out.Keys = []string{}
	}
	if list.More {
		out.Next = list.Keys[len(list.Keys)-1]
	}
	writeJSON(w, http.StatusOK, out)
}
