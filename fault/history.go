package fault

import (
	"slices"
	"sync"
	"time"
)

// Kind is what an operation does to its key.
type Kind uint8

const (
	Read Kind = iota
	Write
	Delete
)

func (k Kind) String() string {
	switch k {
	case Read:
		return "read"
	case Write:
		return "write"
	case Delete:
		return "delete"
	}
	return "unknown"
}

// Op is one client operation as the client saw it: when it started and
// ended (wall clock), and what came back. A write that failed or timed
// out is indeterminate, not absent: it may have reached a replica and
// spread from there, so the checker lets it explain what reads see but
// never requires it to be seen.
type Op struct {
	Process int    // the client that made it (one operation at a time each)
	Node    string // the node whose API it went through
	Kind    Kind
	Key     string
	// Value is what a write wrote (unique in a history, so that a read
	// names the write it saw) or what a read returned.
	Value string
	// Version is the version a write was acknowledged with, or the one a
	// read returned: 32 hexadecimal digits (store.Version.String), whose
	// string order is the version order.
	Version    string
	Start, End time.Time
	// OK: the write or delete was acknowledged; the read answered (a
	// value, or not found: see Found).
	OK      bool
	Found   bool // a read returned a value (not 404)
	Partial bool // the node said fewer replicas than a read quorum answered
	// Final marks the reads made once the faults were over and the
	// cluster had time to converge: what they see is what survived.
	Final bool
	Err   string // why it failed, for the report
}

// History records operations from many goroutines.
type History struct {
	mu  sync.Mutex
	ops []Op
}

// Add records op.
func (h *History) Add(op Op) {
	h.mu.Lock()
	h.ops = append(h.ops, op)
	h.mu.Unlock()
}

// Ops returns a copy of the recorded operations in the order they started.
func (h *History) Ops() []Op {
	h.mu.Lock()
	out := slices.Clone(h.ops)
	h.mu.Unlock()
	slices.SortStableFunc(out, func(a, b Op) int { return a.Start.Compare(b.Start) })
	return out
}

// Keys returns the keys the history touched.
func (h *History) Keys() []string {
	seen := map[string]bool{}
	var out []string
	for _, op := range h.Ops() {
		if !seen[op.Key] {
			seen[op.Key] = true
			out = append(out, op.Key)
		}
	}
	return out
}
