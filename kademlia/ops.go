package kademlia

import (
	"cmp"
	"maps"
	"net/netip"
	"slices"
	"time"

	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/krpc"
	"github.com/dhtkit/dhtkit/replica"
)

// opState is an operation in progress.
type opState struct {
	id       OpID
	op       Op
	internal bool // started by the engine itself: its Result is not reported
	started  time.Time
	lookup   *lookup          // for iterative operations
	kv       kvHandler        // for key-value operations past their lookup
	onehop   bool             // a key-value operation sent without a lookup (onehop.go)
	reissues replica.Reissues // a put's attempts (reissue.go)
	result   Result
}

// Start begins an operation; its Result comes out of Ready.
func (e *Engine) Start(now time.Time, op Op) OpID {
	e.begin()
	if e.closed {
		e.lastOp++
		e.results = append(e.results, Result{Op: e.lastOp, Err: ErrClosed})
		return e.lastOp
	}
	return e.startOp(now, op, false)
}

func (e *Engine) startOp(now time.Time, op Op, internal bool) OpID {
	e.lastOp++
	s := &opState{id: e.lastOp, op: op, internal: internal, started: now}
	e.ops[s.id] = s
	switch op := op.(type) {
	case Ping:
		e.newQuery(krpc.MethodPing)
		e.querySingle(now, s, op.Addr)
	case SampleInfohashes:
		m := e.newQuery(krpc.MethodSampleInfohashes)
		m.A.Has |= krpc.HasTarget
		m.A.Target = op.Target
		e.querySingle(now, s, op.Addr)
	case Load:
		e.newQuery(krpc.MethodLoad)
		e.querySingle(now, s, op.Addr)
	case FindNode:
		e.startLookup(now, s, krpc.MethodFindNode, op.Target, nil)
	case GetPeers:
		e.startLookup(now, s, krpc.MethodGetPeers, op.InfoHash, nil)
	case Announce:
		if op.Port <= 0 && !op.ImpliedPort || op.Port > 65535 {
			e.finish(now, s, errBadPort)
			break
		}
		e.startLookup(now, s, krpc.MethodGetPeers, op.InfoHash, nil)
	case PutItem:
		if err := op.Item.Validate(); err != nil {
			e.finish(now, s, err)
			break
		}
		e.startLookup(now, s, krpc.MethodGet, op.Item.Target(), nil)
	case GetItem:
		e.startLookup(now, s, krpc.MethodGet, op.Target, nil)
	case KVPut:
		e.startKV(now, s, op.Key)
	case KVGet:
		e.startKV(now, s, op.Key)
	case KVCas:
		e.startCAS(now, s, op)
	case KVListen:
		e.startListen(now, s, op.Key)
	case Handover:
		e.startHandover(now, s)
	case KVKeys:
		e.startKeys(now, s, op)
	case Bootstrap:
		e.boot.start(now, e, s, op.Addrs)
	default:
		e.finish(now, s, errUnknownOp)
	}
	return s.id
}

// querySingle sends the query in e.out for a one-query operation.
func (e *Engine) querySingle(now time.Time, s *opState, addr netip.AddrPort) {
	if !addr.IsValid() || addr.Port() == 0 {
		e.finish(now, s, errBadAddr)
		return
	}
	if !e.sendQuery(now, addr, [20]byte{}, s.id, forOp) {
		e.finish(now, s, errBusy)
	}
}

// Cancel ends an operation early; its Result carries ErrCanceled.
func (e *Engine) Cancel(now time.Time, op OpID) {
	e.begin()
	if s := e.ops[op]; s != nil {
		e.finish(now, s, ErrCanceled)
	}
}

// onResponse routes a response to the operation that asked.
func (e *Engine) onResponse(now time.Time, p *pending, sender [20]byte, m *krpc.Msg) {
	s := e.ops[p.op]
	if s == nil {
		return // finished already; the table has learned from it anyway
	}
	if lo, ok := s.kv.(*listenOp); ok && !lo.own(p) {
		// A listener's lookup, or a late answer to an earlier one.
		if lo.lookupReply(p) {
			s.lookup.response(now, e, p, sender, m)
		}
		return
	}
	if s.kv != nil {
		s.kv.response(now, e, p, m)
		return
	}
	if s.lookup != nil {
		s.lookup.response(now, e, p, sender, m)
		return
	}
	s.result.ID = sender
	s.result.Stats.Queries, s.result.Stats.Responses, s.result.Stats.Hops = 1, 1, 1
	if p.method == krpc.MethodSampleInfohashes {
		s.result.Samples = append([]id.ID(nil), m.R.Samples...)
		s.result.Num = m.R.Num
		s.result.Interval = time.Duration(m.R.Interval) * time.Second
		s.result.Nodes = append(s.result.Nodes, m.R.Nodes...)
		s.result.Nodes = append(s.result.Nodes, m.R.Nodes6...)
	}
	if p.method == krpc.MethodLoad {
		l, err := krpc.ParseLoad(m.R.X)
		if err != nil {
			e.stats.Malformed++
			e.finish(now, s, err)
			return
		}
		s.result.Load = l
	}
	e.finish(now, s, nil)
}

// onFailure routes a timeout or an error reply to the operation.
func (e *Engine) onFailure(now time.Time, p *pending, err error) {
	s := e.ops[p.op]
	if s == nil {
		return
	}
	if lo, ok := s.kv.(*listenOp); ok && !lo.own(p) {
		if lo.lookupReply(p) {
			s.lookup.failed(now, e, p, err)
		}
		return
	}
	if s.kv != nil {
		s.kv.failure(now, e, p, err)
		return
	}
	if s.lookup != nil {
		s.lookup.failed(now, e, p, err)
		return
	}
	s.result.Stats.Queries = 1
	if err == ErrTimeout {
		s.result.Stats.Timeouts = 1
	}
	e.finish(now, s, err)
}

// finish ends an operation and reports its Result.
func (e *Engine) finish(now time.Time, s *opState, err error) {
	if _, ok := e.ops[s.id]; !ok {
		return
	}
	delete(e.ops, s.id)
	if lo, ok := s.kv.(*listenOp); ok {
		e.listenOps = slices.DeleteFunc(e.listenOps, func(x *listenOp) bool { return x == lo })
	}
	if s.lookup != nil {
		s.lookup.fill(&s.result, e.cfg.K)
	}
	s.result.Op = s.id
	s.result.Err = err
	s.result.Stats.Duration = now.Sub(s.started)
	if !s.internal {
		e.results = append(e.results, s.result)
	}
	e.boot.finished(now, e, s)
}

// sortedOps lists the operations in the order they started, so that
// Close ends them in an order that repeats.
func (e *Engine) sortedOps() []*opState {
	ops := slices.Collect(maps.Values(e.ops))
	slices.SortFunc(ops, func(a, b *opState) int { return cmp.Compare(a.id, b.id) })
	return ops
}
