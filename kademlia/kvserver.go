package kademlia

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/dhtkit/dhtkit/guard"
	"github.com/dhtkit/dhtkit/krpc"
	"github.com/dhtkit/dhtkit/replica"
	"github.com/dhtkit/dhtkit/routing"
	"github.com/dhtkit/dhtkit/store"
)

// trusted reports whether a write may come from `from`: it carries a
// token we issued to that IP, comes from a node of our table that has
// answered us at that very address (replicas pushing to each other, a
// leaving node handing over), or arrived sealed with the network key
// (Config.Sender: only a holder of the key seals, and the seal's replay
// window keeps a captured datagram from being sent again from elsewhere).
// Either way the source address is not spoofed.
func (e *Engine) trusted(from netip.AddrPort, q *krpc.Msg) bool {
	if q.A.Has&krpc.HasToken != 0 && e.tokens.Valid(from.Addr(), q.A.Token) {
		return true
	}
	if e.sealed() {
		return true
	}
	return e.contact(from, q)
}

// sealed reports whether the datagram being handled was sealed with the
// network key.
func (e *Engine) sealed() bool {
	if e.cfg.Sender == nil {
		return false
	}
	_, ok := e.cfg.Sender()
	return ok
}

// contact reports whether q comes from a routing contact that answered a
// query of ours at that very address: with random transaction ids, proof
// that the address is its own.
func (e *Engine) contact(from netip.AddrPort, q *krpc.Msg) bool {
	c, ok := e.table.Get(q.A.ID)
	return ok && c.Addr == from && c.Responded && c.State != routing.Bad
}

// storeErrCode maps a store error to the KRPC code a writer sees, so that
// the writer can tell the refusals apart (RemoteError.Is maps them back).
func storeErrCode(err error) int {
	switch {
	case errors.Is(err, store.ErrTooLarge):
		return krpc.CodeTooBig
	case errors.Is(err, store.ErrCapacity):
		return codeCapacity
	case errors.Is(err, store.ErrQuota):
		return codeQuota
	case errors.Is(err, store.ErrFull):
		return codeDiskFull
	case errors.Is(err, store.ErrRefused):
		return codeRefused
	}
	return krpc.CodeServer
}

// Error codes of dhtkit's own methods, beyond BEP 5's and BEP 44's.
const (
	codeCapacity = 250 // the replica stores all it may (store.ErrCapacity)
	codeQuota    = 251 // the writer's quota is used up (store.ErrQuota)
	codeDiskFull = 252 // the replica's disk is full (store.ErrFull)
	codeRefused  = 254 // the store's admission rule refused it (store.ErrRefused: owner keys)
)

// handleStore answers dk_store: it applies each record (newest version
// wins) and says, per record, whether we now hold it or something newer.
func (e *Engine) handleStore(now time.Time, from netip.AddrPort, q, r *krpc.Msg) bool {
	// Not a replica before not trusted: a one-hop writer told the first
	// looks up the true replica, told the second it asks for a token and
	// writes here again (putrest.go), which a non-replica should not get.
	if e.notReplica(now, from, q) {
		return false
	}
	if !e.trusted(from, q) {
		e.replyError(now, from, q.T, krpc.CodeProtocol, "dk_store: bad token")
		return false
	}
	recs, own, each, err := replica.ParseStoreEach(q.A.X)
	if err == nil && each && len(recs) > maxStoreBatch {
		// Each record costs a look at the table: bounded per datagram.
		err = fmt.Errorf("%w: %d records to check, at most %d", replica.ErrBadRecord, len(recs), maxStoreBatch)
	}
	if err == nil && e.cfg.Sender != nil && own {
		// A direct write ("o": the sender's own): under a network key,
		// its writer is the authenticated sender.
		if s, ok := e.cfg.Sender(); ok {
			for i := range recs {
				if err = store.CheckWriter(recs[i].Version, q.A.ID, s); err != nil {
					break
				}
			}
		}
	}
	if err != nil {
		e.replyError(now, from, q.T, krpc.CodeProtocol, "dk_store: "+err.Error())
		return false
	}
	if each {
		e.storeEach(now, from, q, recs)
		return false // answered at the commit
	}
	// The records queued, filtered in place (recs is this message's own
	// and read no more), and their positions in recs: nil while that is
	// every one, so that a put's write allocates neither.
	var idx []int
	valid := recs[:0]
	for i := range recs {
		if err := e.clock.Observe(now, recs[i].Version); err != nil {
			if len(recs) == 1 {
				e.replyError(now, from, q.T, krpc.CodeProtocol, "dk_store: "+err.Error())
				return false
			}
			if idx == nil {
				idx = make([]int, len(valid), len(recs))
				for j := range idx {
					idx[j] = j
				}
			}
			continue
		}
		recs[i].Source = e.writer(from, q, &recs[i])
		if idx != nil {
			idx = append(idx, i)
		}
		valid = append(valid, recs[i])
	}
	// The answer waits for the commit Ready makes of every write queued
	// meanwhile: it acknowledges only what is durable.
	tid, n := bytes.Clone(q.T), len(recs)
	e.queueWrite(now, valid, func(now time.Time, errs []error, applied []bool) {
		if n == 1 && len(errs) == 1 && errs[0] != nil {
			e.replyError(now, from, tid, storeErrCode(errs[0]), "dk_store: "+errs[0].Error())
			return
		}
		var held []replica.Held
		if own {
			held = replica.Superseded(e.kvStore(), valid, idx, errs, applied)
		}
		m := e.newResponse(from, tid)
		m.R.Has |= krpc.HasX
		e.xbuf = replica.AppendAcks(e.xbuf[:0], n, idx, errs, held)
		m.R.X = e.xbuf
		e.send(from)
	})
	return false // answered at the commit
}

// handleFetch answers dk_fetch with the records asked for, by key ("k"),
// keys ("ks") or target ("h"), as many as fit one datagram
// (replica.Fetch, as Chord's), or a batch of one-hop reads key by key
// (fetchbatch.go).
func (e *Engine) handleFetch(now time.Time, from netip.AddrPort, q, r *krpc.Msg) bool {
	if e.notReplica(now, from, q) {
		return false
	}
	var x []byte
	keys, each, err := replica.ParseFetchEach(q.A.X, maxFetchBatch)
	switch {
	case each && err == nil:
		x = e.fetchEach(now, keys)
	case !each:
		x, err = replica.ServeFetch(now, e.kvStore(), e.xbuf[:0], q.A.X, maxPayload)
	}
	if err != nil {
		e.replyError(now, from, q.T, krpc.CodeProtocol, "dk_fetch: "+err.Error())
		return false
	}
	e.xbuf = x
	r.R.Has |= krpc.HasX
	r.R.X = x
	return true
}

// handleSync answers dk_sync, the replication layer's tree exchange
// (package replica): hashes of a prefix's children, or a page of its
// entries, one datagram at most. Only a node whose address is proven (a
// contact that answered us there, or a token) is answered: an answer is
// larger than its query.
func (e *Engine) handleSync(now time.Time, from netip.AddrPort, q, r *krpc.Msg) bool {
	if !e.trusted(from, q) {
		e.replyError(now, from, q.T, krpc.CodeProtocol, "dk_sync: unknown node")
		return false
	}
	out, err := e.syncTree().Serve(now, e.xbuf[:0], q.A.X)
	if err != nil {
		e.replyError(now, from, q.T, krpc.CodeProtocol, "dk_sync: "+err.Error())
		return false
	}
	e.xbuf = out
	r.R.Has |= krpc.HasX
	r.R.X = out
	return true
}

// writer is the per-source quota key a stored record is charged to: the
// writer the node can verify. A record the sender wrote itself (its
// version's writer is the sender's id), or any record from a sender that
// is not a table contact which answered us at this address, is charged to
// the source address (IPv4, or IPv6 /64), token or not. A record a replica
// relays (sync, hand-over, read repair: another node wrote it) is charged
// to the writer its version names, never to the relay, which otherwise
// runs out of quota for everyone else's writes. Loopback is not charged
// when Config.TrustLoopback is set.
func (e *Engine) writer(from netip.AddrPort, q *krpc.Msg, rec *store.Record) string {
	if e.limiter.Exempt(from.Addr()) {
		return ""
	}
	if rec.Version.Writer != store.WriterID(q.A.ID) && e.contact(from, q) {
		return fmt.Sprintf("writer:%016x", rec.Version.Writer)
	}
	return guard.SourceKey(from.Addr()).String()
}

// quotaSource is the per-source quota key of a writer's address: none for
// loopback, where every node and client of a local cluster shares one
// address and a per-IP quota would cap the whole cluster.
func quotaSource(addr string) string {
	if addr == "" {
		return "" // no error to allocate
	}
	if a, err := netip.ParseAddr(addr); err == nil && a.IsLoopback() {
		return ""
	}
	return addr
}
