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
	// Window, when positive, holds a commit until its oldest write has
	// waited that long, so that the writes arriving meanwhile share its
	// fsync (BENCHMARKS.md, "Group commit window", chose the default).
	// Zero commits at every Ready: the writes of one batch of datagrams.
	Window time.Duration

	writes []pendingWrite
	at     time.Time
	first  time.Time // when the oldest waiting write was queued
	now    time.Time // the latest time the engine was handed (Now)

	// Scratch reused from one commit to the next, so that a commit costs
	// no allocation of its own: the writes being committed (swapped with
	// writes), all their records, and the errors handed to done.
	spare []pendingWrite
	all   []store.Record
	errs  []error
}

// pendingWrite is a queued write and what to do once its fate is known:
// done gets one error per record (nil: the store holds it, or a newer
// version of it).
type pendingWrite struct {
	recs []store.Record
	done func(now time.Time, errs []error)
}

// Queue queues recs; done learns their fate at the next Commit. done must
// not keep the slice of errors it is handed: it is reused.
func (c *Commits) Queue(now time.Time, recs []store.Record, done func(time.Time, []error)) {
	if len(c.writes) == 0 {
		c.first = now
	}
	c.writes = append(c.writes, pendingWrite{recs: recs, done: done})
	c.at = now
	c.Now(now)
}

// Now tells the queue the time of the engine's latest event, by which Due
// judges the window.
func (c *Commits) Now(now time.Time) {
	if now.After(c.now) {
		c.now = now
	}
}

// Due reports whether the queued writes are to be committed now: there
// are some, and the window (if any) of the oldest has passed.
func (c *Commits) Due() bool {
	return len(c.writes) > 0 && (c.Window <= 0 || !c.now.Before(c.first.Add(c.Window)))
}

// Deadline is when the window of the oldest waiting write ends, for the
// engine's Deadline; false when nothing waits for a window.
func (c *Commits) Deadline() (time.Time, bool) {
	if len(c.writes) == 0 || c.Window <= 0 {
		return time.Time{}, false
	}
	return c.first.Add(c.Window), true
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
	// A done may queue writes of its own: they go to the other slice.
	c.writes = c.spare[:0]
	all := c.all[:0]
	for _, w := range writes {
		all = append(all, w.recs...)
	}
	applied, batchErr := st.PutAll(all)
	for i, ok := range applied { // on an error, the records stored before it
		if ok {
			changed(at, all[i])
		}
	}
	clear(all) // keep no values alive until the next commit
	c.all = all[:0]
	for _, w := range writes {
		if cap(c.errs) < len(w.recs) {
			c.errs = make([]error, len(w.recs))
		}
		errs := c.errs[:len(w.recs)]
		clear(errs)
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
	clear(writes)
	c.spare = writes[:0]
}
