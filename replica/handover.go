package replica

import (
	"fmt"
	"slices"
	"time"

	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/krpc"
	"github.com/dhtkit/dhtkit/store"
)

// Handover hands records to the nodes that should hold them, one Push
// per node, and counts who took what, sans I/O. Both engines use it for
// the hand-over before a leave (every record to the nodes that take over
// its range) and for purge (records a node should no longer hold, to
// their replicas, dropped once every one of them holds it). The engine
// answers only where each record goes (Add) and carries the pushes.
type Handover struct {
	// Drop, if set, is called for each record that every node it was
	// handed to acknowledged: purge removes its own copy then. (A write
	// quorum would do for a put, but dropping the copy then would leave
	// the key on fewer than Replicas nodes until a later round repairs
	// it; a replica that does not confirm leaves the copy for next time.)
	Drop func(now time.Time, r store.Record)
	// Done, if set, is called once, when the last push has ended.
	Done func(now time.Time)

	pushes  map[id.ID]*Push
	need    map[string]int // key -> nodes it is handed to
	acks    map[string]int // key -> nodes that acknowledged it
	pending int
}

// NewHandover returns an empty hand-over.
func NewHandover() *Handover {
	return &Handover{pushes: make(map[id.ID]*Push), need: make(map[string]int), acks: make(map[string]int)}
}

// Add hands the record of en to each of to. A record handed to nobody
// still counts in the total (Held): it reached no other node.
func (h *Handover) Add(en store.Entry, to []krpc.NodeInfo) {
	h.need[en.Key] += len(to)
	for _, n := range to {
		p := h.pushes[n.ID]
		if p == nil {
			p = NewPushKeys(n, nil)
			h.pushes[n.ID] = p
		}
		p.todo = append(p.todo, pushItem{rec: store.Record{Key: en.Key, Version: en.Version, Deleted: en.Deleted}, lazy: true})
	}
}

// Pushes returns the pushes to start, one per node, by node id, with
// their reports wired to the hand-over.
func (h *Handover) Pushes() []*Push {
	out := make([]*Push, 0, len(h.pushes))
	for _, p := range h.pushes {
		p.OnAck, p.OnDone = h.ack, h.pushDone
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b *Push) int { return id.Compare(a.To.ID, b.To.ID) })
	h.pending = len(out)
	return out
}

func (h *Handover) ack(now time.Time, r store.Record, ok bool) {
	if !ok {
		return
	}
	h.acks[r.Key]++
	if h.acks[r.Key] == h.need[r.Key] && h.Drop != nil {
		h.Drop(now, r)
	}
}

func (h *Handover) pushDone(now time.Time) {
	if h.pending--; h.pending == 0 && h.Done != nil {
		h.Done(now)
	}
}

// Held returns how many records at least one node acknowledged, and how
// many were added.
func (h *Handover) Held() (held, total int) {
	for k := range h.need {
		if h.acks[k] > 0 {
			held++
		}
	}
	return held, len(h.need)
}

// Err is the hand-over's outcome once Done: ErrQuorum when a record
// reached no other node.
func (h *Handover) Err() error {
	held, total := h.Held()
	if lost := total - held; lost > 0 {
		return fmt.Errorf("%w: %d of %d values reached no other node", ErrQuorum, lost, total)
	}
	return nil
}
