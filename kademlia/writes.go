package kademlia

import (
	"time"

	"github.com/dhtkit/dhtkit/store"
)

// Key-value writes are group-committed: a write that another node (or a
// local put) waits on is queued, and Ready commits every write queued
// since the last Ready in one store transaction — one fsync for a whole
// batch of datagrams — before it hands out the acknowledgements. So a
// replica acknowledges only what is durable ("persist first, then send"),
// and a node with a data directory is not limited to one write per disk
// flush.

// pendingWrite is a queued write and what to do once its fate is known:
// done gets one error per record (nil: the store holds it, or a newer
// version of it).
type pendingWrite struct {
	recs []store.Record
	done func(now time.Time, errs []error)
}

func (e *Engine) queueWrite(now time.Time, recs []store.Record, done func(time.Time, []error)) {
	e.writes = append(e.writes, pendingWrite{recs: recs, done: done})
	e.writesAt = now
}

// commitWrites commits the queued writes and runs their callbacks.
func (e *Engine) commitWrites() {
	if len(e.writes) == 0 {
		return
	}
	writes := e.writes
	e.writes = nil
	var all []store.Record
	for _, w := range writes {
		all = append(all, w.recs...)
	}
	st := e.kvStore()
	applied, batchErr := st.PutAll(all)
	for i, ok := range applied { // on an error, the records stored before it
		if ok {
			e.changed(e.writesAt, all[i])
		}
	}
	for _, w := range writes {
		errs := make([]error, len(w.recs))
		if batchErr != nil {
			// A limit or the disk refused the batch: one at a time, so
			// that every write learns its own fate and the others land.
			for i, r := range w.recs {
				var ok bool
				ok, errs[i] = st.Put(r)
				if ok {
					e.changed(e.writesAt, r)
				}
			}
		}
		w.done(e.writesAt, errs)
	}
}
