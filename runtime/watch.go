package runtime

import (
	"context"
	"time"

	"github.com/dhtkit/dhtkit/kademlia"
)

// WatchBuffer is how many events a Watch consumer may fall behind before
// the oldest are dropped.
const WatchBuffer = 16

// watch is the subscriber of one operation's events.
type watch struct {
	ch    chan kademlia.Event
	ended chan struct{} // closed with ch, when the watch ends
	err   error         // why it ended
}

// Watch starts op, an operation that reports events until it is canceled
// (kademlia.KVListen), and returns the channel its events arrive on. The
// channel is closed when ctx ends (the operation is canceled then), when
// the operation ends by itself, or when the runtime closes. If op fails at
// once (an invalid key, say), Watch returns its error.
//
// The engine loop never waits for a consumer: one that falls WatchBuffer
// events behind loses the oldest queued event for each new one
// (Stats.EventsDropped). A KVListen's events are versions of one key,
// newest last, so a slow consumer skips versions but still reads the
// newest.
func (r *Runtime) Watch(ctx context.Context, op kademlia.Op) (<-chan kademlia.Event, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	now := time.Now()
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, kademlia.ErrClosed
	}
	opID := r.eng.Start(now, op)
	w := &watch{ch: make(chan kademlia.Event, WatchBuffer), ended: make(chan struct{})}
	r.watches[opID] = w
	r.flushLocked(now)
	if _, running := r.watches[opID]; !running {
		r.mu.Unlock()
		if w.err != nil {
			return nil, w.err
		}
		return w.ch, nil // ended at once, without error: closed already
	}
	r.wg.Add(1) // Close waits for it; it ends when the watch does
	r.mu.Unlock()
	go func() {
		defer r.wg.Done()
		select {
		case <-w.ended:
			return
		case <-ctx.Done():
		}
		now := time.Now()
		r.mu.Lock()
		defer r.mu.Unlock()
		if _, running := r.watches[opID]; running && !r.closed {
			r.eng.Cancel(now, opID)
			r.flushLocked(now)
		}
		r.endWatchLocked(opID, ctx.Err())
	}()
	return w.ch, nil
}

// eventsLocked hands each event to its operation's watch without blocking.
func (r *Runtime) eventsLocked(events []kademlia.Event) {
	for _, ev := range events {
		w, ok := r.watches[ev.Op]
		if !ok {
			continue
		}
		select {
		case w.ch <- ev:
		default:
			// Full: drop the oldest. Only this goroutine sends, under
			// r.mu, so there is room for ev afterwards.
			select {
			case <-w.ch:
				r.stats.EventsDropped++
			default:
			}
			w.ch <- ev
		}
	}
}

// endWatchLocked closes op's watch, if it still runs.
func (r *Runtime) endWatchLocked(op kademlia.OpID, err error) {
	w, ok := r.watches[op]
	if !ok {
		return
	}
	delete(r.watches, op)
	w.err = err
	close(w.ch)
	close(w.ended)
}
