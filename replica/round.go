package replica

import (
	"slices"
	"time"

	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/krpc"
	"github.com/dhtkit/dhtkit/store"
)

// Placement is the one question the layer asks an engine: which nodes
// should hold target, by the engine's current view, besides this node, and
// whether this node should. An engine that cannot tell (a Chord node about
// a target outside the range it is primary for) answers (nil, false): the
// layer then neither pushes nor pulls nor drops that record.
type Placement interface {
	Replicas(target id.ID) (others []krpc.NodeInfo, self bool)
}

// Bounds of one round.
const (
	// window is how many dk_sync queries a round keeps in flight.
	window = 4
	// maxRequests bounds the queries of one round; what is left waits
	// for the next round. The walk is depth first, so that a round that
	// runs out still repairs what it reached, and the next one skips it.
	maxRequests = 2048
	// maxRepairs bounds the records one round pushes or pulls.
	maxRepairs = 16384
)

// Round is one anti-entropy exchange with one peer, sans I/O: the engine
// sends the queries Next hands it, as dk_sync to Peer, and gives their
// answers to Answer (or Fail) under the handle it chose; it takes the
// repairs (Repairs) after each and ends the round once Done.
type Round struct {
	Peer    krpc.NodeInfo
	tree    *Tree
	place   Placement
	shared  *Set
	leaf    int
	queue   []Request
	flying  map[uint64]Request
	sent    int
	pages   map[Prefix][]store.Entry // the peer's entries of a MaxDepth prefix, paged
	push    []store.Entry
	pull    []string
	repairs int // records pushed or pulled so far
	// BytesOut and BytesIn count the dk_sync payloads sent and received.
	BytesOut, BytesIn int
}

// NewRound starts a round with peer over the prefixes of shared.
func NewRound(peer krpc.NodeInfo, tree *Tree, place Placement, shared *Set) *Round {
	r := &Round{Peer: peer, tree: tree, place: place, shared: shared, flying: make(map[uint64]Request)}
	r.leaf = leafDepth(tree.Len())
	if !shared.Empty() {
		r.queue = append(r.queue, Request{Prefix: Root, Fanout: r.fanout(Root)})
	}
	return r
}

// fanout is how many levels a digest request under p asks for: down to
// the listing depth, at most MaxFanout, at least one.
func (r *Round) fanout(p Prefix) int {
	return max(1, min(MaxFanout, r.leaf-p.Len, MaxDepth-p.Len))
}

// RoundLink is what a Round asks of the engine that carries it: the
// transport to its peer and the operations its repairs start. Step keeps
// the rest (what to send, what to repair, when the round is over) here,
// once for both engines.
type RoundLink interface {
	// SendSync sends the dk_sync payload x to the round's peer and
	// returns the handle its answer will come back under, or false.
	SendSync(now time.Time, x []byte) (handle uint64, ok bool)
	// Push starts p, a push to the peer of records it lacks.
	Push(now time.Time, p *Push)
	// Pull fetches keys from the peer (dk_fetch, AppendFetch) and stores
	// what is newer than this node's copy (Pulled).
	Pull(now time.Time, keys []string)
	// Finish ends the round's operation.
	Finish(now time.Time)
}

// Step sends what the round asks for over l, starts the repairs its
// answers call for, and finishes the round once it is done: after
// NewRound, and after each answer or failure (Answered, Failed).
func (r *Round) Step(now time.Time, l RoundLink) {
	r.Next(func(x []byte) (uint64, bool) { return l.SendSync(now, x) })
	push, pulls := r.Repairs()
	if len(push) > 0 {
		l.Push(now, NewPushKeys(r.Peer, push))
	}
	for _, ks := range pulls {
		l.Pull(now, ks)
	}
	if r.Done() {
		l.Finish(now)
	}
}

// Answered takes the peer's answer x under handle h (Answer), then
// Steps. It returns the error of a malformed answer, for the engine's
// count.
func (r *Round) Answered(now time.Time, h uint64, x []byte, l RoundLink) error {
	err := r.Answer(now, h, x)
	r.Step(now, l)
	return err
}

// Failed takes the failure of the query under handle h (Fail), then
// Steps.
func (r *Round) Failed(now time.Time, h uint64, l RoundLink) {
	r.Fail(h)
	r.Step(now, l)
}

// Next hands the engine the queries to send now, as "x" payloads; send
// returns the handle the answer will come back under, or false if the
// query could not be sent (it then counts as failed).
func (r *Round) Next(send func(x []byte) (handle uint64, ok bool)) {
	for len(r.flying) < window && len(r.queue) > 0 && r.sent < maxRequests {
		q := r.queue[len(r.queue)-1]
		r.queue = r.queue[:len(r.queue)-1]
		r.sent++
		x := AppendRequest(nil, q)
		h, ok := send(x)
		if !ok {
			continue
		}
		r.BytesOut += len(x)
		r.flying[h] = q
	}
}

// Done reports whether the round has nothing left in flight or to send.
func (r *Round) Done() bool {
	return len(r.flying) == 0 && (len(r.queue) == 0 || r.sent >= maxRequests)
}

// Fail drops the query of handle h: its part of the tree waits for the
// next round.
func (r *Round) Fail(h uint64) { delete(r.flying, h) }

// Answer takes the peer's answer x to the query of handle h. A malformed
// answer drops that query's part of the tree, as a failure does.
func (r *Round) Answer(now time.Time, h uint64, x []byte) error {
	q, ok := r.flying[h]
	if !ok {
		return nil
	}
	delete(r.flying, h)
	r.BytesIn += len(x)
	if q.Entries {
		es, more, err := ParseEntries(x, q.Prefix, q.After)
		if err != nil {
			return err
		}
		r.entries(q, es, more)
		return nil
	}
	theirs, err := ParseDigests(x, q.Fanout)
	if err != nil {
		return err
	}
	ours, err := r.tree.Digests(now, q.Prefix, q.Fanout)
	if err != nil {
		return nil // our own store could not say: next round
	}
	// Pushed last, popped first: the walk goes left to right.
	for i := len(theirs) - 1; i >= 0; i-- {
		ch := q.Prefix.Child(q.Fanout, i)
		if theirs[i] == ours[i] || !r.shared.Meets(ch) {
			continue
		}
		// Where either side holds nothing, one listing settles the whole
		// subtree: the empty side's answer is a single empty page, and
		// the other's entries are read from the local store.
		if ch.Len >= r.leaf || ch.Len == MaxDepth || theirs[i] == 0 || ours[i] == 0 {
			r.queue = append(r.queue, Request{Prefix: ch, Entries: true})
		} else {
			r.queue = append(r.queue, Request{Prefix: ch, Fanout: r.fanout(ch)})
		}
	}
	return nil
}

// entries handles a page of the peer's entries under a prefix.
func (r *Round) entries(q Request, es []store.Entry, more bool) {
	p := q.Prefix
	if more && p.Len < MaxDepth {
		// Too many to list in one page: list the two halves instead,
		// those the shared set meets.
		for i := 1; i >= 0; i-- {
			if ch := p.Child(1, i); r.shared.Meets(ch) {
				r.queue = append(r.queue, Request{Prefix: ch, Entries: true})
			}
		}
		return
	}
	if more || q.After != "" {
		// The deepest prefixes page: collect the pages, compare at the end.
		all := append(r.pages[p], es...)
		if more && len(es) > 0 {
			if r.pages == nil {
				r.pages = make(map[Prefix][]store.Entry)
			}
			r.pages[p] = all
			r.queue = append(r.queue, Request{Prefix: p, Entries: true, After: es[len(es)-1].Key})
			return
		}
		delete(r.pages, p)
		es = all
	}
	r.compare(p, es)
}

// compare sets what to push and pull for prefix p, given all the peer's
// entries under it, up to maxRepairs a round.
func (r *Round) compare(p Prefix, theirs []store.Entry) {
	if r.repairs >= maxRepairs {
		return
	}
	ours := make(map[string]store.Entry)
	after := ""
	for {
		es, more, err := r.tree.Entries(p, after)
		if err != nil {
			return
		}
		for _, e := range es {
			ours[e.Key] = e
		}
		if !more || len(es) == 0 {
			break
		}
		after = es[len(es)-1].Key
	}
	seen := make(map[string]bool, len(theirs))
	for _, th := range theirs {
		seen[th.Key] = true
		if o, has := ours[th.Key]; has && !th.Version.Newer(o.Version) {
			if o.Version.Newer(th.Version) {
				r.offer(o)
			}
			continue
		}
		if _, self := r.place.Replicas(store.KeyTarget(th.Key)); self {
			r.pull = append(r.pull, th.Key)
			r.repairs++
		}
	}
	keys := make([]string, 0, len(ours))
	for k := range ours {
		if !seen[k] {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		r.offer(ours[k])
	}
}

// offer pushes e to the peer if the peer should hold it.
func (r *Round) offer(e store.Entry) {
	others, _ := r.place.Replicas(store.KeyTarget(e.Key))
	if slices.ContainsFunc(others, func(n krpc.NodeInfo) bool { return n.ID == r.Peer.ID }) {
		r.push = append(r.push, e)
		r.repairs++
	}
}

// Repairs returns, and forgets, what the answers so far call for: the
// entries to push to the peer (their values to be read from the store as
// they are sent) and the keys to fetch from it, in batches whose keys fit
// one query.
func (r *Round) Repairs() (push []store.Entry, pull [][]string) {
	push, r.push = r.push, nil
	for len(r.pull) > 0 {
		n, size := 0, 0
		for n < len(r.pull) && (n == 0 || size+len(r.pull[n])+8 <= MaxPayload) {
			size += len(r.pull[n]) + 8
			n++
		}
		pull = append(pull, r.pull[:n:n])
		r.pull = r.pull[n:]
	}
	r.pull = nil
	return push, pull
}
