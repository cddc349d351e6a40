// Package runtime drives a sans-I/O protocol engine over a real UDP socket
// with the wall clock: the blocking, concurrent world on one side, the
// engine's single-threaded state machine on the other.
//
// One mutex serializes every call on the engine. A reader goroutine reads
// datagrams in batches (recvmmsg on Linux), hands the whole batch to the
// engine under the lock and writes every reply in one batch (sendmmsg)
// before it lets go, so a busy server costs two system calls per batch,
// not two per datagram, and allocates nothing per packet. A timer goroutine
// calls Tick at the engine's Deadline. Callers start operations under the
// lock and wait, without it, for their Result, which is delivered from
// whichever Ready call produced it. An engine with a durable store hands
// its group commits out (Ready.Commit): a goroutine of their own writes
// and syncs each batch without the lock, and the engine acknowledges its
// writes only once it is handed back. Events (Ready.Events) go to the
// channel of their operation's Watch, which never blocks the loop.
package runtime

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	goruntime "runtime"
	"sync"
	"time"

	"github.com/dhtkit/dhtkit/kademlia"
	"github.com/dhtkit/dhtkit/replica"
	"github.com/dhtkit/dhtkit/seal"
)

// Engine is the protocol engine the runtime drives; *kademlia.Engine is
// one. The runtime never calls it from two goroutines at once.
type Engine interface {
	Receive(now time.Time, from netip.AddrPort, packet []byte)
	Start(now time.Time, op kademlia.Op) kademlia.OpID
	Cancel(now time.Time, op kademlia.OpID)
	Tick(now time.Time)
	Ready() kademlia.Ready
	Deadline() time.Time
	Close(now time.Time)
}

// asyncCommitter is an engine that can group-commit off the runtime's
// lock (kademlia and chord engines with a durable store): Ready hands out
// a Batch, which the runtime runs on a goroutine of its own, without the
// lock, so that the node keeps reading datagrams and answering while the
// disk syncs; the engine acknowledges the batch's writes only once
// Committed hands it back, after its fsync.
type asyncCommitter interface {
	AsyncCommits()
	Committed(now time.Time, b *replica.Batch)
}

// Options tunes a Runtime. Zero values take the defaults.
type Options struct {
	Logger *slog.Logger // nil: slog.Default()
	// Batch is the number of datagrams one system call reads or writes (32).
	Batch int
	// MaxPacket is the largest datagram accepted (kademlia.MaxDatagram:
	// the key-value methods carry records of several KiB). Longer ones
	// are dropped. With a Sealer, seal.Overhead is added to the default.
	MaxPacket int
	// Sealer, when set, seals every datagram sent and opens every datagram
	// received, dropping, unanswered, what it cannot open (a private
	// network with a network key). The engine sees only opened payloads.
	Sealer *seal.Sealer
}

// Stats are the runtime's own counters.
type Stats struct {
	PacketsIn  uint64
	PacketsOut uint64
	ReadCalls  uint64 // batches read: PacketsIn/ReadCalls is the mean batch
	WriteCalls uint64 // batches written
	// EventsDropped counts events a slow Watch consumer lost: the oldest
	// of its queue, to make room for the newest.
	EventsDropped uint64
	// Oversize counts datagrams dropped because they were longer than
	// Options.MaxPacket: a peer that sends them is misconfigured or
	// hostile, and a count says so where a silent drop would not.
	Oversize uint64
	// Commit counts the group commits of a durable store the runtime
	// ran (each a store write: one log append and one fdatasync, however
	// many writes it holds) by how long they took, from the store
	// write's start to its return, and CommitRecords the records they
	// held. A durable node's write latency is mostly these.
	Commit        Histogram
	CommitRecords uint64
}

// Histogram counts durations in buckets whose upper bounds are
// HistogramBounds, the last one unbounded, and keeps their sum. The zero
// value is empty.
type Histogram struct {
	Counts [len(HistogramBounds) + 1]uint64
	Sum    time.Duration
}

// HistogramBounds are the upper bounds of a Histogram's buckets: 0.25 ms
// to 1 s, doubling, as a disk's sync ranges from a fast SSD's to a
// saturated disk's.
var HistogramBounds = [...]time.Duration{
	250 * time.Microsecond, 500 * time.Microsecond, time.Millisecond, 2 * time.Millisecond,
	4 * time.Millisecond, 8 * time.Millisecond, 16 * time.Millisecond, 32 * time.Millisecond,
	64 * time.Millisecond, 128 * time.Millisecond, 256 * time.Millisecond, 512 * time.Millisecond,
	time.Second,
}

// Observe counts d.
func (h *Histogram) Observe(d time.Duration) {
	i := 0
	for i < len(HistogramBounds) && d > HistogramBounds[i] {
		i++
	}
	h.Counts[i]++
	h.Sum += d
}

// Count is how many durations h counted.
func (h *Histogram) Count() uint64 {
	var n uint64
	for _, c := range h.Counts {
		n += c
	}
	return n
}

// Runtime runs one engine on one UDP socket.
type Runtime struct {
	conn *net.UDPConn
	bc   batchConn
	addr netip.AddrPort
	log  *slog.Logger

	mu      sync.Mutex // guards everything below and every call on eng
	eng     Engine
	async   asyncCommitter // eng, when it commits off the lock; else nil
	closed  bool
	waiters map[kademlia.OpID]chan kademlia.Result
	watches map[kademlia.OpID]*watch
	out     []message
	armed   time.Time // the deadline the timer is set for; zero: none
	timer   *time.Timer
	stats   Stats

	sealer  *seal.Sealer
	sender  [20]byte // the authenticated sender of the datagram being received
	hasSend bool
	arena   []byte              // the sealed datagrams of one flush
	dropLog map[error]time.Time // when each kind of drop was last logged

	// kick asks the timer loop to flush: Do starts an operation and
	// leaves its Ready to that flush (or to any other that comes first),
	// so that operations started together by several callers go out in
	// one Ready, where the engine batches their writes to each replica.
	// kicked: a flush is asked for and has not happened yet.
	kick   chan struct{}
	kicked bool

	done      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// New starts driving eng over conn. The runtime owns both from now on:
// Close closes the engine and the socket.
func New(conn *net.UDPConn, eng Engine, opts Options) *Runtime {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Batch <= 0 {
		opts.Batch = 32
	}
	if opts.MaxPacket <= 0 {
		opts.MaxPacket = kademlia.MaxDatagram
		if opts.Sealer != nil {
			opts.MaxPacket += seal.Overhead
		}
	}
	r := &Runtime{
		conn:    conn,
		bc:      newBatchConn(conn, opts.Batch),
		log:     opts.Logger,
		eng:     eng,
		waiters: make(map[kademlia.OpID]chan kademlia.Result),
		watches: make(map[kademlia.OpID]*watch),
		out:     make([]message, 0, opts.Batch),
		timer:   time.NewTimer(time.Hour),
		done:    make(chan struct{}),
		kick:    make(chan struct{}, 1),
		sealer:  opts.Sealer,
		dropLog: make(map[error]time.Time),
	}
	r.timer.Stop()
	if ac, ok := eng.(asyncCommitter); ok {
		ac.AsyncCommits()
		r.async = ac
	}
	if ua, ok := conn.LocalAddr().(*net.UDPAddr); ok {
		r.addr = unmap(ua.AddrPort())
	}
	r.mu.Lock()
	r.armLocked(time.Now(), false)
	r.mu.Unlock()
	r.wg.Add(2)
	go r.readLoop(opts.Batch, opts.MaxPacket)
	go r.timerLoop()
	return r
}

// Addr is the socket's local address.
func (r *Runtime) Addr() netip.AddrPort { return r.addr }

// resultChans recycles the channels Do waits on: one fewer allocation
// (two, with the buffer) per operation.
var resultChans = sync.Pool{New: func() any { return make(chan kademlia.Result, 1) }}

// Do starts op and waits for its Result. The error is the Result's Err, or
// ctx's error if ctx ends first, in which case the operation is canceled.
func (r *Runtime) Do(ctx context.Context, op kademlia.Op) (kademlia.Result, error) {
	if err := ctx.Err(); err != nil {
		return kademlia.Result{Err: err}, err
	}
	ch := resultChans.Get().(chan kademlia.Result)
	now := time.Now()
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return kademlia.Result{Err: kademlia.ErrClosed}, kademlia.ErrClosed
	}
	opID := r.eng.Start(now, op)
	r.waiters[opID] = ch
	if !r.kicked {
		r.kicked = true
		select {
		case r.kick <- struct{}{}:
		default: // a kick is pending already (another flush took its work)
		}
	}
	r.mu.Unlock()

	select {
	case res := <-ch:
		// Drained, and out of r.waiters (delivery removes it before it
		// sends): nobody else holds it.
		resultChans.Put(ch)
		return res, res.Err
	case <-ctx.Done():
	}

	now = time.Now()
	r.mu.Lock()
	if _, pending := r.waiters[opID]; pending && !r.closed {
		r.eng.Cancel(now, opID)
		r.flushLocked(now)
	}
	delete(r.waiters, opID)
	r.mu.Unlock()
	res := kademlia.Result{Op: opID}
	select {
	case res = <-ch:
		if res.Err == nil {
			return res, nil // it finished before the cancel took
		}
	default:
	}
	res.Err = ctx.Err()
	return res, res.Err
}

// Inspect runs f while no other goroutine uses the engine, so that f may
// read the engine's state (routing table, counters).
func (r *Runtime) Inspect(f func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f()
}

// Sender returns the node id the network key's envelope authenticated for
// the datagram the engine is receiving, and false outside of Receive or
// without a network key. Only the engine, during Receive, may call it: it
// reads state the runtime's lock guards.
func (r *Runtime) Sender() ([20]byte, bool) { return r.sender, r.hasSend }

// Stats returns the runtime's counters.
func (r *Runtime) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stats
}

// Close ends every pending operation with kademlia.ErrClosed, closes the
// engine and the socket, and returns once the runtime's goroutines have
// exited.
func (r *Runtime) Close() error {
	var err error
	r.closeOnce.Do(func() {
		// Close the socket first: it wakes a reader blocked in a read, and
		// a writer blocked on a full send buffer, which holds the lock.
		err = r.conn.Close()
		now := time.Now()
		r.mu.Lock()
		r.closed = true
		r.eng.Close(now)
		rd := r.eng.Ready() // a closed engine hands out no Commit
		r.eventsLocked(rd.Events)
		r.dispatchLocked(rd.Results)
		for op, ch := range r.waiters {
			ch <- kademlia.Result{Op: op, Err: kademlia.ErrClosed}
			delete(r.waiters, op)
		}
		for op := range r.watches {
			r.endWatchLocked(op, kademlia.ErrClosed)
		}
		r.timer.Stop()
		r.mu.Unlock()
		close(r.done)
		r.wg.Wait()
	})
	return err
}

func (r *Runtime) readLoop(batch, maxPacket int) {
	defer r.wg.Done()
	// Each buffer has one byte to spare: a datagram that fills it was
	// longer than maxPacket (the kernel truncated it) and is counted as
	// oversize, not handed to the engine.
	size := maxPacket + 1
	ms := make([]message, batch)
	buf := make([]byte, batch*size)
	for i := range ms {
		ms[i].buf = buf[i*size : (i+1)*size : (i+1)*size]
	}
	for {
		n, err := r.bc.readBatch(ms)
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				r.log.Error("runtime: reading from the socket failed; the node stops receiving", "addr", r.addr, "err", err)
			}
			return
		}
		now := time.Now()
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			return
		}
		r.stats.ReadCalls++
		r.stats.PacketsIn += uint64(n)
		for i := range n {
			if ms[i].n > maxPacket {
				r.stats.Oversize++
				continue
			}
			p := ms[i].buf[:ms[i].n]
			if r.sealer != nil {
				var err error
				if p, r.sender, err = r.sealer.Open(p, now); err != nil {
					r.dropped(now, ms[i].addr, err)
					continue
				}
				r.hasSend = true
			}
			r.eng.Receive(now, ms[i].addr, p)
			r.hasSend = false
		}
		r.flushLocked(now)
		r.mu.Unlock()
	}
}

func (r *Runtime) timerLoop() {
	defer r.wg.Done()
	for {
		ticked := false
		select {
		case <-r.done:
			return
		case <-r.timer.C:
			ticked = true
		case <-r.kick:
			// Let the callers that are runnable start theirs first.
			goruntime.Gosched()
		}
		now := time.Now()
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			return
		}
		if ticked {
			r.armed = time.Time{}
			r.eng.Tick(now)
		}
		r.flushLockedTick(now, ticked)
		r.mu.Unlock()
	}
}

// flushLocked applies the engine's Ready: it sends the packets, delivers
// the results and sets the timer for the engine's next deadline.
func (r *Runtime) flushLocked(now time.Time) { r.flushLockedTick(now, false) }

func (r *Runtime) flushLockedTick(now time.Time, ticked bool) {
	r.kicked = false // this flush hands out what Do started
	rd := r.eng.Ready()
	if rd.Commit != nil && !r.closed {
		r.wg.Add(1)
		go r.commit(rd.Commit)
	}
	if len(rd.Packets) > 0 && !r.closed {
		out := r.out[:0]
		if r.sealer == nil {
			for _, p := range rd.Packets {
				out = append(out, message{buf: p.Data, n: len(p.Data), addr: p.To})
			}
		} else {
			out = r.sealLocked(now, out, rd.Packets)
		}
		if err := r.bc.writeBatch(out); err != nil && !isClosed(err) {
			r.log.Warn("runtime: writing to the socket failed", "addr", r.addr, "err", err)
		}
		r.stats.WriteCalls++
		r.stats.PacketsOut += uint64(len(out))
		clear(out) // keep no reference to the engine's buffers
		r.out = out[:0]
	}
	r.eventsLocked(rd.Events)
	r.dispatchLocked(rd.Results)
	r.armLocked(now, ticked)
}

// commit runs a group commit the engine handed out (at most one is out
// at a time) without the lock, then hands it back: only then does the
// engine acknowledge its writes, so nothing is acknowledged before it is
// on disk.
func (r *Runtime) commit(b *replica.Batch) {
	defer r.wg.Done()
	records := b.Len()
	start := time.Now()
	b.Run()
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stats.CommitRecords += uint64(records)
	r.stats.Commit.Observe(now.Sub(start))
	if r.closed {
		return // the engine finished the waiting operations with ErrClosed
	}
	r.async.Committed(now, b)
	r.flushLocked(now)
}

func (r *Runtime) dispatchLocked(results []kademlia.Result) {
	for _, res := range results {
		if ch, ok := r.waiters[res.Op]; ok {
			delete(r.waiters, res.Op)
			ch <- res // buffered: never blocks
		}
		if _, ok := r.watches[res.Op]; ok {
			r.endWatchLocked(res.Op, res.Err)
		}
	}
}

// armLocked sets the timer for the engine's deadline if it is earlier than
// the one already set. A later deadline leaves the timer alone: it fires
// early, Tick does nothing, and the timer is set again; that is cheaper
// than resetting the timer on every batch.
func (r *Runtime) armLocked(now time.Time, ticked bool) {
	if r.closed {
		return
	}
	d := r.eng.Deadline()
	if d.IsZero() || (!r.armed.IsZero() && !d.Before(r.armed)) {
		return
	}
	delay := d.Sub(now)
	if ticked && delay <= 0 {
		// The engine still wants a Tick right after one: do not spin.
		delay = time.Millisecond
	}
	r.armed = d
	r.timer.Reset(max(delay, 0))
}

// sealLocked seals packets into r.arena, one buffer for the whole flush
// that is reused by the next, and appends them to out.
func (r *Runtime) sealLocked(now time.Time, out []message, packets []kademlia.Packet) []message {
	size := 0
	for _, p := range packets {
		size += len(p.Data) + seal.Overhead
	}
	if cap(r.arena) < size {
		r.arena = make([]byte, 0, size)
	}
	a := r.arena[:0]
	for _, p := range packets {
		off := len(a)
		a = r.sealer.Seal(a, p.Data, now)
		out = append(out, message{buf: a[off:len(a):len(a)], n: len(a) - off, addr: p.To})
	}
	return out
}

// dropped logs a datagram the sealer refused, at most once a minute for
// each cause: a peer with another key or none keeps sending, and an
// attacker can send much more.
func (r *Runtime) dropped(now time.Time, from netip.AddrPort, err error) {
	if last, ok := r.dropLog[err]; ok && now.Sub(last) < time.Minute {
		return
	}
	r.dropLog[err] = now
	r.log.Warn("runtime: dropped a datagram (counted in the seal stats; logged once a minute per cause)", "from", from, "err", err)
}

func isClosed(err error) bool { return errors.Is(err, net.ErrClosed) }
