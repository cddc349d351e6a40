package chord

import (
	"time"

	"github.com/dhtkit/dhtkit/kademlia"
)

// reissue starts a written put over with a version past the newer one a
// replica kept over it, if replica.Reissues says it goes again, and
// reports whether it did: a write issued after another was acknowledged
// must win over it, whatever the two writers' clocks said
// (replica/reissue.go). Answers to the earlier attempt's queries match
// none of the new ones (kvOp.find) and are dropped.
func (e *Engine) reissue(now time.Time, op *kvOp) bool {
	s := op.s
	put, ok := s.op.(kademlia.KVPut)
	if !ok {
		return false
	}
	v, again := s.reissues.Next(now, &e.clock, &op.q, op.rec.Version)
	if again {
		e.stats.Reissues++
		s.op, s.kv = put.With(v, op.rec.Expires), nil
		e.startKV(now, s, put.Key)
	}
	return again
}
