package replica

import (
	"time"

	"github.com/dhtkit/dhtkit/store"
)

// Key-value writes are group-committed: a write that another node (or a
// local put) waits on is queued, and Commit, which the engine calls from
// Ready, commits every write queued since the last one in one store
// transaction (one fsync for a whole batch of datagrams) before the
// acknowledgements go out. So a replica acknowledges only what is durable
// ("persist first, then send"), and a node with a data directory is not
// limited to one write per disk flush.

// Commits is the queue of writes waiting for the next commit. The zero
// value is empty and ready to use.
type Commits struct {
	writes []pendingWrite
	at     time.Time
}

// pendingWrite is a queued write and what to do once its fate is known:
// done gets one error per record (nil: the store holds it, or a newer
// version of it).
type pendingWrite struct {
	recs []store.Record
	done func(now time.Time, errs []error)
}

// Queue queues recs; done learns their fate at the next Commit.
func (c *Commits) Queue(now time.Time, recs []store.Record, done func(time.Time, []error)) {
	c.writes = append(c.writes, pendingWrite{recs: recs, done: done})
	c.at = now
}

// Len is the number of writes waiting.
func (c *Commits) Len() int { return len(c.writes) }

// Commit stores every queued record in st, in one PutAll when it can,
// calls changed for each record the store applied, and then each write's
// done.
func (c *Commits) Commit(st store.Store, changed func(time.Time, store.Record)) {
	if len(c.writes) == 0 {
		return
	}
	writes, at := c.writes, c.at
	c.writes = nil
	var all []store.Record
	for _, w := range writes {
		all = append(all, w.recs...)
	}
	applied, batchErr := st.PutAll(all)
	for i, ok := range applied { // on an error, the records stored before it
		if ok {
			changed(at, all[i])
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
					changed(at, r)
				}
			}
		}
		w.done(at, errs)
	}
}
