package replica

import (
	"time"

	"github.com/dhtkit/dhtkit/store"
)

// Key-value writes are group-committed: a write that another node (or a
// local put) waits on is queued, and the engine's Ready commits every
// write queued since the last commit in one store transaction (one fsync
// for a whole batch of datagrams) before the acknowledgements go out. So
// a replica acknowledges only what is durable ("persist first, then
// send"), and a node with a data directory is not limited to one write
// per disk flush.
//
// An engine driven by a real clock and socket (package runtime) commits
// off its lock (Async): Ready hands the due writes out as a Batch, the
// driver runs it (the store write and its fsync) on a goroutine of its
// own while the engine goes on serving, and hands it back (Finish), and
// only then do the writes' callbacks run and their acknowledgements go
// out. Writes that arrive while a batch is out wait for the next one:
// they share its fsync, whatever the window.

// Commits is the queue of writes waiting for the next commit. The zero
// value is empty and ready to use.
type Commits struct {
	// Window, when positive, holds a commit until its oldest write has
	// waited that long, so that the writes arriving meanwhile share its
	// fsync (BENCHMARKS.md, "Group commit window", chose the default).
	// Zero commits at every Ready: the writes of one batch of datagrams.
	Window time.Duration
	// Async makes Take, not Commit, the way due writes leave the queue:
	// at most one Batch is out at a time, and Due is false meanwhile.
	Async bool

	writes []pendingWrite
	at     time.Time
	first  time.Time // when the oldest waiting write was queued
	now    time.Time // the latest time the engine was handed (Now)

	out  *Batch // the batch a driver is committing (Async); nil: none
	free *Batch // a finished batch, kept so that a commit allocates nothing
}

// pendingWrite is a queued write and what to do once its fate is known:
// done gets, per record, the error the store refused it with (nil: the
// store holds it, or a newer version of it) and whether the store took
// it (false without an error: it held an equal or newer version, or the
// record had expired).
type pendingWrite struct {
	recs []store.Record
	done Done
}

// Done is told the fate of a queued write's records, by record: errs[j]
// and applied[j] as pendingWrite says. It must not keep the slices: they
// are reused.
type Done func(now time.Time, errs []error, applied []bool)

// Batch is a group of queued writes taken out to be committed. Run, which
// touches only the batch and its store, may run on any goroutine; the
// rest belongs to the engine.
type Batch struct {
	st      store.Store
	at      time.Time // when its latest write was queued
	writes  []pendingWrite
	all     []store.Record // every record of writes, in order
	applied []bool         // by record of all: the store applied it
	errs    []error        // by record of all: why the store refused it
}

// Queue queues recs; done learns their fate at the commit that stores
// them.
func (c *Commits) Queue(now time.Time, recs []store.Record, done Done) {
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
// are some, no batch is out, and the window (if any) of the oldest has
// passed.
func (c *Commits) Due() bool {
	return len(c.writes) > 0 && c.out == nil && (c.Window <= 0 || !c.now.Before(c.first.Add(c.Window)))
}

// Deadline is when the window of the oldest waiting write ends, for the
// engine's Deadline; false when nothing waits for a window (or a batch is
// out: its return is what the writes wait for).
func (c *Commits) Deadline() (time.Time, bool) {
	if len(c.writes) == 0 || c.Window <= 0 || c.out != nil {
		return time.Time{}, false
	}
	return c.first.Add(c.Window), true
}

// Len is the number of writes waiting.
func (c *Commits) Len() int { return len(c.writes) }

// Commit commits every queued write to st at once, on the caller's
// goroutine, even with a batch out (an engine closing), calls changed for
// each record the store applied, and then each write's done.
func (c *Commits) Commit(st store.Store, changed func(time.Time, store.Record)) {
	if len(c.writes) == 0 {
		return
	}
	b := c.take(st)
	b.Run()
	c.finish(b.at, b, changed)
}

// Flush commits the queued writes and runs their callbacks, or, with
// Async, hands the due ones out as a Batch for the driver (Take): the
// engine's Ready calls it when they are Due, and its Close, with Async
// turned off, to settle what waits before its operations end.
func (c *Commits) Flush(st store.Store, changed func(time.Time, store.Record)) *Batch {
	if c.Async {
		return c.Take(st)
	}
	c.Commit(st, changed)
	return nil
}

// Take hands out the due writes as a Batch for the driver to Run and give
// back with Finish; nil when none are due or a batch is already out.
func (c *Commits) Take(st store.Store) *Batch {
	if !c.Due() {
		return nil
	}
	c.out = c.take(st)
	return c.out
}

// Finish ends a batch from Take once it has Run: changed for each record
// the store applied, then each write's done, at now, the engine's time
// (Now). Writes their callbacks queue wait for the next batch.
func (c *Commits) Finish(now time.Time, b *Batch, changed func(time.Time, store.Record)) {
	c.Now(now)
	if c.out == b {
		c.out = nil
	}
	c.finish(now, b, changed)
}

// take moves the queued writes into a batch.
func (c *Commits) take(st store.Store) *Batch {
	b := c.free
	if b == nil {
		b = &Batch{}
	}
	c.free = nil
	// A done may queue writes of its own: they go to the batch's old slice.
	b.st, b.at = st, c.at
	b.writes, c.writes = c.writes, b.writes[:0]
	for _, w := range b.writes {
		b.all = append(b.all, w.recs...)
	}
	return b
}

// Len is the number of records in the batch.
func (b *Batch) Len() int { return len(b.all) }

// Run stores the batch's records, in one PutAll when it can. It returns
// once the store holds them (on disk, for a durable store).
func (b *Batch) Run() {
	n := len(b.all)
	if cap(b.applied) < n || cap(b.errs) < n {
		b.applied, b.errs = make([]bool, n), make([]error, n)
	}
	b.applied, b.errs = b.applied[:n], b.errs[:n]
	clear(b.applied)
	clear(b.errs)
	applied, err := b.st.PutAll(b.all)
	copy(b.applied, applied) // on an error, the records stored before it
	if err == nil {
		return
	}
	// A limit or the disk refused the batch: one record at a time, so that
	// every write learns its own fate and the others land.
	for i, r := range b.all {
		var ok bool
		ok, b.errs[i] = b.st.Put(r)
		b.applied[i] = b.applied[i] || ok
	}
}

// finish reports a batch's fates and keeps the batch for reuse.
func (c *Commits) finish(now time.Time, b *Batch, changed func(time.Time, store.Record)) {
	for i, ok := range b.applied {
		if ok {
			changed(now, b.all[i])
		}
	}
	off := 0
	for _, w := range b.writes {
		n := len(w.recs)
		w.done(now, b.errs[off:off+n:off+n], b.applied[off:off+n:off+n])
		off += n
	}
	// Keep no values or callbacks alive until the next commit.
	clear(b.writes)
	clear(b.all)
	clear(b.errs)
	clear(b.applied)
	b.writes, b.all, b.st = b.writes[:0], b.all[:0], nil
	c.free = b
}
