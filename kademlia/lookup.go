package kademlia

import (
	"bytes"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/dhtkit/dhtkit/guard"

	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/krpc"
)

// maxCandidates bounds a lookup's candidate list. Far candidates beyond it
// could never enter the K closest while nearer ones answer.
const maxCandidates = 128

// errStalled is a traced hop's Err for a node that passed its soft
// timeouts: the lookup moved on, and its answer, should it come, is a
// later hop.
const errStalled = "no answer yet: the lookup moves on"

// maxTries is how many times a lookup asks one node.
const maxTries = 2

// lookup is an iterative Kademlia lookup (find_node or get_peers), and for
// Announce the announce_peer round that follows it.
//
// It keeps up to Alpha queries in flight to the closest candidates not
// yet asked, and always has the Alpha closest that have not answered
// asked, however many queries to farther ones are in flight. It ends when
// the need closest candidates that have not failed have all answered, and
// K candidates in all have: need is K for a lookup that stores, since each
// of the K closest must hand over a token, fewer for one that reads (see
// lookupNeed). A query that passes its soft
// timeout stops counting against Alpha, so one slow node does not stall
// the lookup, but its answer is still used if it comes before the hard
// timeout.
type lookup struct {
	op       *opState
	started  time.Time
	method   krpc.Method
	target   id.ID
	cands    []cand // sorted by XOR distance to target
	inflight int    // queries asked and not stalled
	need     int    // closest live candidates that must answer
	few      bool   // the need closest are all it uses: no K answers wanted
	answered int    // candidates that answered
	peers    []netip.AddrPort
	peerSeen map[netip.AddrPort]struct{}

	item   *Item   // GetItem: the best verified item so far
	scrape *Scrape // GetPeers with Scrape: the filters so far

	converged bool // an answer brought no node closer than the closest known

	// sources are the nodes whose answers listed candidates. One whose
	// candidates keep failing to answer while none of them does is a liar
	// (or hopelessly stale): its other candidates are dropped and its
	// later answers ignored, so made-up nodes next to the target cannot
	// stall the lookup one timeout after another.
	sources []source

	storing  bool  // in the announce_peer or put round that follows the search
	awaiting int   // store queries outstanding
	anyone   bool  // add: take silent nodes too (a table of bad contacts)
	stored   int   // store acknowledgements
	storeErr error // the last error a node answered a store with
	stats    LookupStats
	trace    bool // a FindNode with Trace: every answer goes into the Result
}

type source struct {
	id         id.ID
	blame      int // its candidates that stalled or failed
	credit     int // its candidates that answered
	distrusted bool
}

// maxBlame is how many of a source's candidates may fail, while none
// answers, before it is distrusted.
const maxBlame = 2

type candState uint8

const (
	fresh candState = iota
	asked
	answered
	failed
)

type cand struct {
	info    krpc.NodeInfo
	state   candState
	stalled bool // every query to it passed its soft timeout: presumed gone
	tries   uint8
	waiting uint8  // queries to it still pending
	hop     int    // responses in the chain that led to this candidate
	via     int32  // index in lookup.sources of who listed it; -1 for seeds
	blamed  bool   // its failure was charged to via
	token   []byte // get_peers token, for announce
}

// startLookup begins an iterative lookup from the table's closest contacts
// and any seeds.
func (e *Engine) startLookup(now time.Time, s *opState, method krpc.Method, target id.ID, seeds []krpc.NodeInfo) {
	l := &lookup{op: s, started: now, method: method, target: target, need: e.lookupNeed(s.op)}
	if fn, ok := s.op.(FindNode); ok {
		l.trace = fn.Trace
	}
	if gp, ok := s.op.(GetPeers); ok && gp.Scrape {
		l.scrape = &Scrape{}
	}
	switch s.op.(type) {
	case KVPut, KVGet, KVListen, KVCas:
		l.few = true // it writes to, reads from or listens to its Replicas
	}
	s.lookup = l
	// Not into e.contacts: that scratch serves answers, which need only K,
	// and an idle engine (most of a simulator's) would keep twice that.
	for _, c := range e.table.Closest(target, e.cfg.K*2, nil) {
		l.add(e, krpc.NodeInfo{ID: c.ID, Addr: c.Addr}, 0, -1)
	}
	for _, n := range seeds {
		l.add(e, n, 0, -1)
	}
	if len(l.cands) == 0 {
		// Every contact failed lately (an overloaded network looks like
		// that): trying them, silent ones too, beats failing at once.
		l.anyone = true
		for _, b := range e.table.Buckets() {
			for _, c := range b.Contacts {
				l.add(e, krpc.NodeInfo{ID: c.ID, Addr: c.Addr}, 0, -1)
			}
		}
		l.anyone = false
	}
	if len(l.cands) == 0 {
		if _, ok := s.op.(KVListen); ok {
			l.done(now, e) // a listener keeps going, for now alone
			return
		}
		e.finish(now, s, ErrNoContacts)
		return
	}
	l.step(now, e)
}

// add inserts a candidate in distance order, ignoring duplicates, our own
// id and unusable addresses.
func (l *lookup) add(e *Engine, n krpc.NodeInfo, hop int, via int32) {
	if n.ID == e.self || !n.Addr.IsValid() || n.Addr.Port() == 0 || n.Addr.Addr().IsUnspecified() {
		return
	}
	if !l.anyone && e.silent.has(l.started, n.ID) {
		return // it just failed to answer every try of another lookup
	}
	if e.cfg.SecureIDs && !id.IsSecure(n.ID, n.Addr.Addr()) {
		return
	}
	i, found := slices.BinarySearchFunc(l.cands, n.ID, func(c cand, x id.ID) int {
		return id.CompareDistance(l.target, c.info.ID, x)
	})
	if found || i >= maxCandidates {
		return
	}
	// One address is one node: a reply listing many ids at one address
	// must not make us query it again and again. And past
	// MaxNodesPerIP, one IP is one node (libtorrent's
	// restrict_search_ips): a host with many ports and ids next to the
	// target gets one place among the candidates, so it can be at most
	// one of a key's replicas.
	perIP := e.cfg.MaxNodesPerIP
	if perIP > 0 && e.cfg.diversity().Exempt(n.Addr.Addr()) {
		perIP = 0
	}
	sameIP := 0
	for j := range l.cands {
		if l.cands[j].info.Addr == n.Addr {
			return
		}
		if perIP > 0 && l.cands[j].info.Addr.Addr().Unmap() == n.Addr.Addr().Unmap() {
			if sameIP++; sameIP >= perIP {
				e.drop(guard.DropNodeDiversity)
				return
			}
		}
	}
	l.cands = slices.Insert(l.cands, i, cand{info: n, hop: hop, via: via})
	if len(l.cands) > maxCandidates {
		if last := l.cands[len(l.cands)-1]; last.state != asked {
			l.cands = l.cands[:len(l.cands)-1]
		}
	}
}

func (l *lookup) find(x id.ID) *cand {
	i, found := slices.BinarySearchFunc(l.cands, x, func(c cand, x id.ID) int {
		return id.CompareDistance(l.target, c.info.ID, x)
	})
	if !found {
		return nil
	}
	return &l.cands[i]
}

// lookupNeed is how many of the closest candidates must answer before a
// lookup of op ends. Kademlia's rule is all K, and a lookup that stores
// keeps it: announce_peer and put go to the K closest, each with the token
// it handed out; so does the lookup of our own id. A key-value operation writes to or reads from its
// Replicas closest, so it waits for those. Any other lookup reads, and
// ends once its Beta closest have answered (libp2p's Kademlia does the
// same): it no longer waits for the slowest of K round trips, nor for the
// soft timeouts of unreachable nodes among the K closest, which on the
// real network (NATs, firewalls) cost more than the round trips.
func (e *Engine) lookupNeed(op Op) int {
	switch op := op.(type) {
	case Announce, PutItem:
		return e.cfg.K
	case FindNode:
		// The lookup of our own id (joining, and refreshing our
		// neighbourhood) waits for all K closest as well: it is how they
		// learn of us, and they are the nodes we share replica sets with.
		// Ending it at Beta left a node unknown to some of its neighbours
		// until their next bucket refresh, so the two sides disagreed on
		// which nodes hold a key.
		if op.Target == e.self {
			return e.cfg.K
		}
	case KVPut, KVGet, KVListen, KVCas:
		return min(e.cfg.replicas(), e.cfg.K)
	}
	return min(e.cfg.Beta, e.cfg.K)
}

// step sends queries while there is room and ends the lookup when the
// need closest live candidates have answered.
func (l *lookup) step(now time.Time, e *Engine) {
	if l.storing {
		return
	}
	k := e.cfg.K
	// needMet: the need closest have answered; allMet: the K closest.
	live, needMet, allMet := 0, true, true
	open := 0 // live candidates up to here that have not answered
	for i := range l.cands {
		c := &l.cands[i]
		if c.state == failed || c.stalled && c.state == asked {
			// A stalled node does not hold the lookup up: the window
			// slides past it, and its answer still counts if it comes.
			continue
		}
		if live == k {
			break
		}
		live++
		switch c.state {
		case answered:
		case asked:
			open++
			allMet = false
			needMet = needMet && live > l.need
		case fresh:
			open++
			allMet = false
			needMet = needMet && live > l.need
			// The Alpha closest candidates that have not answered are
			// always asked, even when Alpha queries to farther ones are
			// in flight: a node closer than all of those should not wait
			// for them to answer.
			if l.inflight >= l.width(e) && open > e.cfg.Alpha {
				continue
			}
			if !l.ask(now, e, c) {
				c.state = failed
				continue
			}
			c.state = asked
			l.inflight++
		}
	}
	// The result lists K nodes that answered: once the need closest have,
	// nodes asked on the way there usually make up the rest.
	if allMet || needMet && (l.few || l.answered >= k) {
		l.done(now, e)
	}
}

// width is how many queries the lookup keeps in flight: Alpha while
// answers bring nodes closer to the target, then K. Once an answer brings
// nothing closer than the closest node known, the K closest are (nearly)
// the final ones, and asking the rest of them at once, as the Kademlia
// paper does, saves the ⌈K/α⌉ round trips of asking them α at a time.
func (l *lookup) width(e *Engine) int {
	if l.converged {
		return max(e.cfg.K, e.cfg.Alpha)
	}
	return e.cfg.Alpha
}

// ask sends c the lookup's query.
func (l *lookup) ask(now time.Time, e *Engine, c *cand) bool {
	m := e.newQuery(l.method)
	if l.method == krpc.MethodGetPeers {
		m.A.Has |= krpc.HasInfoHash
		m.A.InfoHash = l.target
		if gp, ok := l.op.op.(GetPeers); ok {
			m.A.Scrape, m.A.NoSeed = gp.Scrape, gp.NoSeed
			if gp.Scrape {
				m.A.Has |= krpc.HasScrape
			}
			if gp.NoSeed {
				m.A.Has |= krpc.HasNoSeed
			}
		}
	} else {
		m.A.Has |= krpc.HasTarget
		m.A.Target = l.target
	}
	if !e.sendQuery(now, c.info.Addr, c.info.ID, l.op.id, forOp) {
		return false
	}
	c.tries++
	c.waiting++
	l.stats.Queries++
	return true
}

// done ends the search phase: Announce and PutItem go on to store on the
// K closest nodes, every other lookup finishes.
func (l *lookup) done(now time.Time, e *Engine) {
	switch op := l.op.op.(type) {
	case Announce, PutItem:
		l.store(now, e)
	case KVPut, KVGet:
		e.kvReplicas(now, l.op, l)
	case KVCas:
		e.casReplicas(now, l.op, l)
	case KVListen:
		l.op.kv.(*listenOp).register(now, e, l)
	case GetItem:
		if l.item == nil {
			e.finish(now, l.op, ErrNotFound)
			return
		}
		e.finish(now, l.op, nil)
	default:
		_ = op
		e.finish(now, l.op, nil)
	}
}

// store sends announce_peer or put, with each node's token, to the K
// closest nodes that answered.
func (l *lookup) store(now time.Time, e *Engine) {
	l.storing = true
	n := 0
	for i := range l.cands {
		c := &l.cands[i]
		if c.state != answered {
			continue
		}
		if n == e.cfg.K {
			break
		}
		n++
		if c.token == nil {
			continue
		}
		switch op := l.op.op.(type) {
		case Announce:
			m := e.newQuery(krpc.MethodAnnouncePeer)
			m.A.Has |= krpc.HasInfoHash | krpc.HasToken | krpc.HasPort
			m.A.InfoHash = l.target
			m.A.Token = c.token
			m.A.Port = op.Port
			if op.ImpliedPort {
				m.A.Has |= krpc.HasImpliedPort
				m.A.ImpliedPort = true
			}
			if op.Seed {
				m.A.Has |= krpc.HasSeed
				m.A.Seed = true
			}
		case PutItem:
			m := e.newQuery(krpc.MethodPut)
			m.A.Has |= krpc.HasToken | krpc.HasV
			m.A.Token = c.token
			m.A.V = op.Item.V
			if op.Item.Mutable() {
				m.A.Has |= krpc.HasK | krpc.HasSig | krpc.HasSeq
				m.A.K, m.A.Sig, m.A.Seq = op.Item.K, op.Item.Sig, op.Item.Seq
				if len(op.Item.Salt) > 0 {
					m.A.Has |= krpc.HasSalt
					m.A.Salt = op.Item.Salt
				}
				if op.UseCAS {
					m.A.Has |= krpc.HasCAS
					m.A.CAS = op.CAS
				}
			}
		}
		if e.sendQuery(now, c.info.Addr, c.info.ID, l.op.id, forOp) {
			l.awaiting++
			l.stats.Queries++
		}
	}
	if l.awaiting == 0 {
		e.finish(now, l.op, ErrNotStored)
	}
}

func (l *lookup) response(now time.Time, e *Engine, p *pending, sender id.ID, m *krpc.Msg) {
	if l.storing {
		l.stats.Responses++
		l.stored++
		l.storeReturned(now, e)
		return
	}
	if p.method != l.method {
		return // a late answer to the one-hop attempt this lookup took over from
	}
	l.stats.Responses++
	c := l.find(p.nodeID)
	if c == nil {
		return
	}
	c.waiting--
	if c.state != asked {
		return // a retry's twin answered first, or the node had failed
	}
	if !c.stalled {
		l.inflight--
	}
	c.state = answered
	l.answered++
	if c.via >= 0 {
		l.sources[c.via].credit++
	}
	if len(m.R.Token) > 0 {
		c.token = append([]byte(nil), m.R.Token...)
	}
	if get, ok := l.op.op.(GetItem); ok && m.R.Has&krpc.HasV != 0 {
		if l.takeItem(m, get.Salt) && l.item.K == nil {
			e.finish(now, l.op, nil) // an immutable item is final: stop here
			return
		}
	}
	hop := c.hop + 1
	if l.trace {
		ns := m.R.Nodes
		if e.cfg.IPv6 {
			ns = m.R.Nodes6
		}
		s := &l.op.result
		s.Trace = TraceHop(s.Trace, Hop{Node: c.info, Depth: c.hop, RTT: now.Sub(p.sent)}, ns, e.cfg.K)
	}
	if l.scrape != nil {
		l.scrape.take(m)
	}
	for _, v := range m.R.Values {
		if _, dup := l.peerSeen[v]; dup || !v.IsValid() || v.Port() == 0 {
			continue
		}
		if l.peerSeen == nil {
			l.peerSeen = make(map[netip.AddrPort]struct{})
		}
		l.peerSeen[v] = struct{}{}
		l.peers = append(l.peers, v)
	}
	nodes := m.R.Nodes
	if e.cfg.IPv6 {
		nodes = m.R.Nodes6
	}
	closest := l.cands[0].info.ID
	if via := l.source(sender); !l.sources[via].distrusted {
		for _, n := range nodes {
			l.add(e, n, hop, via)
		}
	}
	l.converged = l.cands[0].info.ID == closest
	l.step(now, e)
}

func (l *lookup) stalled(now time.Time, e *Engine, p *pending) {
	if l.storing {
		return
	}
	c := l.find(p.nodeID)
	if c == nil || c.state != asked || c.stalled {
		return
	}
	// The first soft timeout retries once, since a lost datagram is far
	// more common than a dead node on most networks; the second marks the
	// node stalled so the lookup moves on. Either counts against the node
	// that listed it: a liar's made-up nodes all go quiet at once.
	if l.blame(c) {
		c = l.find(p.nodeID) // candidates were dropped: c moved
	}
	distrusted := c.via >= 0 && l.sources[c.via].distrusted
	if c.tries < maxTries && !distrusted && l.ask(now, e, c) {
		l.step(now, e)
		return
	}
	c.stalled = true
	l.inflight--
	if l.trace {
		l.op.result.Trace = TraceHop(l.op.result.Trace, Hop{Node: c.info, Depth: c.hop, Err: errStalled}, nil, 0)
	}
	l.step(now, e)
}

// source returns the index of node x in l.sources, adding it if new.
func (l *lookup) source(x id.ID) int32 {
	for i := range l.sources {
		if l.sources[i].id == x {
			return int32(i)
		}
	}
	l.sources = append(l.sources, source{id: x})
	return int32(len(l.sources) - 1)
}

// blame charges a candidate's silence to the node that listed it, and
// distrusts that node when its candidates fail and none answers.
// It reports whether it dropped candidates (moving those after them).
func (l *lookup) blame(c *cand) bool {
	if c.via < 0 || c.blamed {
		return false
	}
	c.blamed = true
	src := &l.sources[c.via]
	src.blame++
	if src.distrusted || src.blame < maxBlame || src.credit > 0 {
		return false
	}
	src.distrusted = true
	via := c.via
	l.cands = slices.DeleteFunc(l.cands, func(x cand) bool { return x.via == via && x.state == fresh })
	return true
}

func (l *lookup) failed(now time.Time, e *Engine, p *pending, err error) {
	if l.storing {
		if err == ErrTimeout {
			l.stats.Timeouts++
		} else {
			l.storeErr = err
		}
		l.storeReturned(now, e)
		return
	}
	if p.method != l.method {
		return
	}
	c := l.find(p.nodeID)
	if c == nil {
		return
	}
	c.waiting--
	if c.state != asked || c.waiting > 0 {
		return
	}
	l.stats.Timeouts++
	if !c.stalled {
		l.inflight--
	}
	c.state = failed
	if l.trace {
		l.op.result.Trace = TraceHop(l.op.result.Trace, Hop{Node: c.info, Depth: c.hop, Err: err.Error()}, nil, 0)
	}
	if err == ErrTimeout {
		l.blame(c) // c is not used after this
	}
	l.step(now, e)
}

func (l *lookup) storeReturned(now time.Time, e *Engine) {
	l.awaiting--
	if l.awaiting > 0 {
		return
	}
	switch {
	case l.stored > 0:
		e.finish(now, l.op, nil)
	case l.storeErr != nil:
		// Every node refused: say why (seq too old, CAS mismatch, ...).
		e.finish(now, l.op, fmt.Errorf("%w: %w", ErrNotStored, l.storeErr))
	default:
		e.finish(now, l.op, ErrNotStored)
	}
}

// takeItem verifies the item in a get response against the target and
// keeps it if it is the newest so far. It reports whether it kept it.
func (l *lookup) takeItem(m *krpc.Msg, salt []byte) bool {
	it := Item{V: m.R.V, K: m.R.K, Sig: m.R.Sig, Seq: m.R.Seq}
	if len(it.K) > 0 {
		it.Salt = salt
	}
	if it.Validate() != nil || it.Target() != l.target {
		return false // forged or corrupt: ignore it
	}
	if l.item != nil && it.Seq <= l.item.Seq {
		return false
	}
	it.V, it.K, it.Sig, it.Salt = bytes.Clone(it.V), bytes.Clone(it.K), bytes.Clone(it.Sig), bytes.Clone(it.Salt)
	l.item = &it
	return true
}

// fill writes the lookup's outcome into r.
func (l *lookup) fill(r *Result, k int) {
	r.Nodes = r.Nodes[:0]
	for i := range l.cands {
		c := &l.cands[i]
		if c.state != answered {
			continue
		}
		if len(r.Nodes) == 0 {
			l.stats.Hops = c.hop + 1
		}
		r.Nodes = append(r.Nodes, c.info)
		if len(r.Nodes) == k {
			break
		}
	}
	r.Peers = l.peers
	r.Item = l.item
	if l.scrape != nil {
		l.scrape.finish()
		r.Scrape = l.scrape
	}
	r.Stored = l.stored
	r.Stats = l.stats
}
