package runtime

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/kademlia"
)

// sendEvents makes the echo engine behind r report n events, "0" to
// n-1, and waits until it has.
func sendEvents(t *testing.T, r *Runtime, e *echoEngine, n int) {
	t.Helper()
	c := listen(t)
	defer c.Close()
	var before uint64
	r.Inspect(func() { before = r.stats.PacketsIn })
	for i := range n {
		if _, err := c.WriteToUDPAddrPort([]byte(fmt.Sprint("e", i)), r.Addr()); err != nil {
			t.Fatal(err)
		}
		// One at a time, so that none is lost to the socket buffer.
		for got := false; !got; {
			r.Inspect(func() { got = r.stats.PacketsIn > before+uint64(i) })
			if !got {
				time.Sleep(100 * time.Microsecond)
			}
		}
	}
}

func TestWatchDeliversEvents(t *testing.T) {
	r, e := start(t, time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := r.Watch(ctx, kademlia.KVListen{Key: "k"})
	if err != nil {
		t.Fatal(err)
	}
	sendEvents(t, r, e, 3)
	for i := range 3 {
		ev := <-ch
		if ev.Record.Key != "k" || string(ev.Record.Value) != fmt.Sprint(i) {
			t.Fatalf("event %d: %+v", i, ev.Record)
		}
	}
	cancel()
	if _, open := <-ch; open {
		t.Fatal("an event after cancel")
	}
	r.Inspect(func() {
		if e.canceled != 1 || len(e.listening) != 0 {
			t.Errorf("engine saw %d cancels and has %d listeners, want 1 and 0", e.canceled, len(e.listening))
		}
	})
}

// TestWatchSlowConsumer checks that a consumer that reads nothing does not
// hold the engine up, and that it loses the oldest events, not the newest.
func TestWatchSlowConsumer(t *testing.T) {
	r, e := start(t, time.Hour)
	ch, err := r.Watch(context.Background(), kademlia.KVListen{Key: "k"})
	if err != nil {
		t.Fatal(err)
	}
	const n = 3 * WatchBuffer
	sendEvents(t, r, e, n) // returns only if the loop kept running
	// The loop still answers while the consumer sleeps.
	if _, err := r.Do(context.Background(), kademlia.Ping{Addr: r.Addr()}); err != nil {
		t.Fatalf("ping while a watcher lags: %v", err)
	}
	if got := r.Stats().EventsDropped; got != n-WatchBuffer {
		t.Errorf("%d events dropped, want %d", got, n-WatchBuffer)
	}
	for i := n - WatchBuffer; i < n; i++ {
		if ev := <-ch; string(ev.Record.Value) != fmt.Sprint(i) {
			t.Fatalf("read %q, want %d: the newest events are kept, in order", ev.Record.Value, i)
		}
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, open := <-ch; open {
		t.Fatal("the channel is open after Close")
	}
	if _, err := r.Watch(context.Background(), kademlia.KVListen{Key: "k"}); !errors.Is(err, kademlia.ErrClosed) {
		t.Errorf("Watch after Close: %v, want ErrClosed", err)
	}
}

func TestWatchFailsAtOnce(t *testing.T) {
	r, _ := start(t, time.Hour)
	// The echo engine refuses everything but Ping and KVListen of a key.
	if _, err := r.Watch(context.Background(), kademlia.KVListen{}); !errors.Is(err, kademlia.ErrNoContacts) {
		t.Errorf("Watch of a failing op: %v, want its error", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := r.Watch(ctx, kademlia.KVListen{Key: "k"}); !errors.Is(err, context.Canceled) {
		t.Errorf("Watch with an ended context: %v", err)
	}
}
