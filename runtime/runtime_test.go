package runtime

import (
	"context"
	"encoding/binary"
	"errors"
	"maps"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/kademlia"
	"github.com/dhtkit/dhtkit/store"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// echoEngine is a minimal Engine: it answers every "q" datagram with an
// "r" datagram carrying the same bytes, and its Ping op sends a "q" and
// ends at the matching "r" or at its timeout. Its KVListen op runs until
// canceled and reports every "e" datagram as an event.
type echoEngine struct {
	timeout   time.Duration
	next      kademlia.OpID
	pending   map[kademlia.OpID]time.Time // op -> deadline
	listening map[kademlia.OpID]string    // KVListen op -> key
	ready     kademlia.Ready
	buf       []byte // backs every packet of ready: valid until the next call
	canceled  int
	closed    bool
}

func newEcho(timeout time.Duration) *echoEngine {
	return &echoEngine{timeout: timeout, pending: make(map[kademlia.OpID]time.Time), listening: make(map[kademlia.OpID]string)}
}

func (e *echoEngine) send(to netip.AddrPort, kind byte, body []byte) {
	start := len(e.buf)
	e.buf = append(e.buf, kind)
	e.buf = append(e.buf, body...)
	e.ready.Packets = append(e.ready.Packets, kademlia.Packet{To: to, Data: e.buf[start:len(e.buf):len(e.buf)]})
}

func (e *echoEngine) Receive(now time.Time, from netip.AddrPort, p []byte) {
	if len(p) == 0 {
		return
	}
	switch p[0] {
	case 'q':
		e.send(from, 'r', p[1:])
	case 'e':
		for _, op := range slices.Sorted(maps.Keys(e.listening)) {
			rec := store.Record{Key: e.listening[op], Value: slices.Clone(p[1:])}
			e.ready.Events = append(e.ready.Events, kademlia.Event{Op: op, Record: rec})
		}
	case 'r':
		if len(p) < 9 {
			return
		}
		op := kademlia.OpID(binary.BigEndian.Uint64(p[1:]))
		if _, ok := e.pending[op]; ok {
			delete(e.pending, op)
			e.ready.Results = append(e.ready.Results, kademlia.Result{Op: op, ID: id.FromString(from.String())})
		}
	}
}

func (e *echoEngine) Start(now time.Time, op kademlia.Op) kademlia.OpID {
	e.next++
	if l, ok := op.(kademlia.KVListen); ok && l.Key != "" && !e.closed {
		e.listening[e.next] = l.Key
		return e.next
	}
	p, ok := op.(kademlia.Ping)
	if !ok || e.closed {
		e.ready.Results = append(e.ready.Results, kademlia.Result{Op: e.next, Err: kademlia.ErrNoContacts})
		return e.next
	}
	e.pending[e.next] = now.Add(e.timeout)
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(e.next))
	e.send(p.Addr, 'q', b[:])
	return e.next
}

func (e *echoEngine) Cancel(now time.Time, op kademlia.OpID) {
	if _, ok := e.pending[op]; ok {
		delete(e.pending, op)
		e.canceled++
		e.ready.Results = append(e.ready.Results, kademlia.Result{Op: op, Err: kademlia.ErrCanceled})
	}
	if _, ok := e.listening[op]; ok {
		delete(e.listening, op)
		e.canceled++
		e.ready.Results = append(e.ready.Results, kademlia.Result{Op: op, Err: kademlia.ErrCanceled})
	}
}

func (e *echoEngine) Tick(now time.Time) {
	for op, d := range e.pending {
		if !now.Before(d) {
			delete(e.pending, op)
			e.ready.Results = append(e.ready.Results, kademlia.Result{Op: op, Err: kademlia.ErrTimeout})
		}
	}
}

func (e *echoEngine) Ready() kademlia.Ready {
	rd := e.ready
	e.ready = kademlia.Ready{Packets: e.ready.Packets[:0], Events: e.ready.Events[:0]}
	e.buf = e.buf[:0]
	return rd
}

func (e *echoEngine) Deadline() time.Time {
	var d time.Time
	for _, t := range e.pending {
		if d.IsZero() || t.Before(d) {
			d = t
		}
	}
	return d
}

func (e *echoEngine) Close(now time.Time) {
	e.closed = true
	for op := range e.pending {
		delete(e.pending, op)
		e.ready.Results = append(e.ready.Results, kademlia.Result{Op: op, Err: kademlia.ErrClosed})
	}
	for op := range e.listening {
		delete(e.listening, op)
		e.ready.Results = append(e.ready.Results, kademlia.Result{Op: op, Err: kademlia.ErrClosed})
	}
}

func listen(t testing.TB) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func start(t testing.TB, timeout time.Duration) (*Runtime, *echoEngine) {
	t.Helper()
	e := newEcho(timeout)
	r := New(listen(t), e, Options{})
	t.Cleanup(func() { r.Close() })
	return r, e
}

func TestPing(t *testing.T) {
	a, _ := start(t, 5*time.Second)
	b, _ := start(t, 5*time.Second)
	for range 10 {
		res, err := a.Do(context.Background(), kademlia.Ping{Addr: b.Addr()})
		if err != nil {
			t.Fatalf("ping: %v", err)
		}
		if want := id.FromString(b.Addr().String()); res.ID != want {
			t.Fatalf("ping answered by %v, want %v", res.ID, want)
		}
	}
	st := b.Stats()
	if st.PacketsIn != 10 || st.PacketsOut != 10 {
		t.Errorf("server stats %+v, want 10 packets each way", st)
	}
}

func TestTimeoutFiresFromDeadline(t *testing.T) {
	a, _ := start(t, 30*time.Millisecond)
	dead := listen(t)
	addr := dead.LocalAddr().(*net.UDPAddr).AddrPort()
	dead.Close()
	_, err := a.Do(context.Background(), kademlia.Ping{Addr: addr})
	if !errors.Is(err, kademlia.ErrTimeout) {
		t.Fatalf("ping of a closed port: %v, want ErrTimeout", err)
	}
}

func TestContextCancelsOp(t *testing.T) {
	a, e := start(t, time.Hour)
	silent := listen(t) // receives, never answers
	defer silent.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err := a.Do(ctx, kademlia.Ping{Addr: silent.LocalAddr().(*net.UDPAddr).AddrPort()})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want context.DeadlineExceeded", err)
	}
	a.Inspect(func() {
		if e.canceled != 1 || len(e.pending) != 0 {
			t.Errorf("engine saw %d cancels and has %d pending ops, want 1 and 0", e.canceled, len(e.pending))
		}
	})
}

func TestCloseEndsPendingOps(t *testing.T) {
	e := newEcho(time.Hour)
	r := New(listen(t), e, Options{})
	silent := listen(t)
	defer silent.Close()
	errs := make(chan error, 4)
	for range cap(errs) {
		go func() {
			_, err := r.Do(context.Background(), kademlia.Ping{Addr: silent.LocalAddr().(*net.UDPAddr).AddrPort()})
			errs <- err
		}()
	}
	// Wait until every op is pending in the engine.
	for n := 0; n < cap(errs); {
		r.Inspect(func() { n = len(e.pending) })
		time.Sleep(time.Millisecond)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	for range cap(errs) {
		if err := <-errs; !errors.Is(err, kademlia.ErrClosed) {
			t.Errorf("pending op ended with %v, want ErrClosed", err)
		}
	}
	if _, err := r.Do(context.Background(), kademlia.Ping{Addr: r.Addr()}); !errors.Is(err, kademlia.ErrClosed) {
		t.Errorf("Do after Close: %v, want ErrClosed", err)
	}
	if err := r.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestBatches sends a runtime bursts of datagrams, some too long to
// accept, and checks that every acceptable one is answered, in batches.
func TestBatches(t *testing.T) {
	r := New(listen(t), newEcho(time.Hour), Options{Batch: 8, MaxPacket: 64})
	defer r.Close()
	c := listen(t)
	defer c.Close()
	const bursts, burst = 10, 40 // a burst fits the default socket buffers
	longp := make([]byte, 100)
	longp[0] = 'q'
	buf := make([]byte, 256)
	for b := range uint32(bursts) {
		want := make(map[uint32]bool)
		for i := b * burst; i < (b+1)*burst; i++ {
			if i%10 == 0 {
				c.WriteToUDPAddrPort(longp, r.Addr())
			}
			var p [5]byte
			p[0] = 'q'
			binary.BigEndian.PutUint32(p[1:], i)
			c.WriteToUDPAddrPort(p[:], r.Addr())
			want[i] = true
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		for len(want) > 0 {
			k, _, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				t.Fatalf("burst %d: %d replies missing: %v; stats %+v", b, len(want), err, r.Stats())
			}
			if k != 5 || buf[0] != 'r' {
				t.Fatalf("unexpected reply %q", buf[:k])
			}
			delete(want, binary.BigEndian.Uint32(buf[1:]))
		}
	}
	st := r.Stats()
	n, long := uint64(bursts*burst), uint64(bursts*burst/10)
	if st.PacketsIn != n+long || st.PacketsOut != n || st.Oversize != long {
		t.Errorf("stats %+v: want %d packets in, %d of them oversize and dropped, %d out", st, n+long, long, n)
	}
}

// BenchmarkServe measures the runtime's cost per datagram answered: a
// client sends batches of queries over loopback to an echo engine (whose
// own work is negligible) and reads the replies. The figure includes the
// client's system calls too; it is an upper bound on the server's.
func BenchmarkServe(b *testing.B) {
	srv := New(listen(b), newEcho(time.Hour), Options{})
	defer srv.Close()
	c := listen(b)
	defer c.Close()
	c.SetReadBuffer(1 << 20)
	bc := newBatchConn(c, 32)
	const window = 32
	out := make([]message, window)
	in := make([]message, window)
	for i := range out {
		out[i] = message{buf: []byte("q1234567"), n: 8, addr: srv.Addr()}
		in[i].buf = make([]byte, 64)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for sent := 0; sent < b.N; {
		k := min(window, b.N-sent)
		if err := bc.writeBatch(out[:k]); err != nil {
			b.Fatal(err)
		}
		sent += k
		for got := 0; got < k; {
			c.SetReadDeadline(time.Now().Add(2 * time.Second))
			m, err := bc.readBatch(in)
			if err != nil {
				b.Fatalf("after %d of %d: %v", got, k, err)
			}
			got += m
		}
	}
	b.StopTimer()
	st := srv.Stats()
	if st.ReadCalls > 0 {
		b.ReportMetric(float64(st.PacketsIn)/float64(st.ReadCalls), "pkts/read")
	}
}

// TestBatchConns checks both batchConn implementations, the system's
// (recvmmsg/sendmmsg on Linux) and the portable one, against each other.
func TestBatchConns(t *testing.T) {
	impls := []struct {
		name string
		new  func(*net.UDPConn) batchConn
	}{
		{"system", func(c *net.UDPConn) batchConn { return newBatchConn(c, 4) }},
		{"single", func(c *net.UDPConn) batchConn { return singleConn{c} }},
	}
	for _, w := range impls {
		for _, r := range impls {
			t.Run(w.name+"->"+r.name, func(t *testing.T) {
				wc, rc := listen(t), listen(t)
				defer wc.Close()
				defer rc.Close()
				from, to := wc.LocalAddr().(*net.UDPAddr).AddrPort(), rc.LocalAddr().(*net.UDPAddr).AddrPort()
				unreachable := netip.MustParseAddrPort("[::1]:9") // IPv6 on an IPv4 socket: skipped
				out := []message{
					{buf: []byte("one"), n: 3, addr: to},
					{buf: []byte("xx"), n: 2, addr: unreachable},
					{buf: []byte("two!"), n: 4, addr: to},
					{buf: []byte("three"), n: 5, addr: to},
					{buf: []byte("four"), n: 4, addr: to},
					{buf: []byte("five"), n: 4, addr: to},
				}
				if err := w.new(wc).writeBatch(out); err != nil {
					t.Fatal(err)
				}
				in := make([]message, 4)
				for i := range in {
					in[i].buf = make([]byte, 16)
				}
				var got []string
				rb := r.new(rc)
				rc.SetReadDeadline(time.Now().Add(5 * time.Second))
				for len(got) < 5 {
					n, err := rb.readBatch(in)
					if err != nil {
						t.Fatalf("after %q: %v", got, err)
					}
					for _, m := range in[:n] {
						if m.addr != from {
							t.Errorf("datagram from %v, want %v", m.addr, from)
						}
						got = append(got, string(m.buf[:m.n]))
					}
				}
				if want := []string{"one", "two!", "three", "four", "five"}; !slices.Equal(got, want) {
					t.Errorf("read %q, want %q", got, want)
				}
			})
		}
	}
}

// TestOversizeCounted sends a datagram one byte longer than the runtime
// accepts, then a small one: the first is counted in Stats.Oversize and
// never reaches the engine, the second is echoed.
func TestOversizeCounted(t *testing.T) {
	r, _ := start(t, 5*time.Second)
	c := listen(t)
	defer c.Close()
	big := make([]byte, kademlia.MaxDatagram+1)
	big[0] = 'q'
	if _, err := c.WriteToUDPAddrPort(big, r.Addr()); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WriteToUDPAddrPort([]byte("qsmall"), r.Addr()); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 2*kademlia.MaxDatagram)
	n, _, err := c.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatalf("no echo of the small datagram: %v", err)
	}
	if got := string(buf[:n]); got != "rsmall" {
		t.Fatalf("echo %q, want %q: the oversize datagram reached the engine", got, "rsmall")
	}
	if st := r.Stats(); st.Oversize != 1 || st.PacketsIn != 2 {
		t.Fatalf("stats %+v, want Oversize 1 of PacketsIn 2", st)
	}
}
