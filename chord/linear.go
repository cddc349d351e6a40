package chord

import (
	"time"

	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/krpc"
)

// Routing names how a node forwards a lookup.
const (
	// RoutingFingers is Chord's routing: each step goes to the known node
	// that most closely precedes the target, fingers included, halving the
	// distance left (O(log N) steps).
	RoutingFingers = "fingers"
	// RoutingLinear walks the ring one successor at a time (O(N) steps):
	// the baseline the Chord paper and its teaching labs compare fingers
	// with. Only a ring's teacher wants it.
	RoutingLinear = "linear"
)

// linear reports whether the node walks successors instead of using fingers.
func (e *Engine) linear() bool { return e.cfg.Routing == RoutingLinear }

// route is answer under the node's routing: a node walking the ring
// knows the answer only when the target lies between it and its first
// successor.
func (e *Engine) route(now time.Time, t id.ID, k int, dst []krpc.NodeInfo) (nodes []krpc.NodeInfo, done, partial, blind bool) {
	if e.linear() && !e.ring.owns(t) && len(e.ring.succs) > 0 && !id.Between(t, e.self, e.ring.succs[0].ID) {
		return dst, false, false, false
	}
	return e.answer(now, t, k, dst)
}

// nextHops is ring.preceding under the node's routing: a node walking the
// ring offers only its first successor.
func (e *Engine) nextHops(t id.ID, n int, dst []krpc.NodeInfo) []krpc.NodeInfo {
	if e.linear() {
		if len(e.ring.succs) == 0 || e.ring.succs[0].ID == t || !id.Between(e.ring.succs[0].ID, e.self, t) {
			return dst
		}
		return append(dst, e.ring.succs[0])
	}
	return e.ring.preceding(t, n, dst)
}
