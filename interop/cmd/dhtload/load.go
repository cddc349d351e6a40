package main

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dhtkit/dhtkit/seal"
)

// Methods measured, in table order.
var methods = []string{"ping", "find_node", "get_peers"}

// variants is the number of distinct targets pre-encoded per socket.
const variants = 256

// lostAfter is when an unanswered query is given up and replaced, so that
// lost packets do not shrink the window.
const lostAfter = 250 * time.Millisecond

// encodeQuery returns a bencoded query of method from id with target (for
// find_node and get_peers) and the offset of its 2-byte transaction id.
// Queries carry ro=1 (BEP 43) so that servers answer without adding the
// generator's sockets to their routing tables.
func encodeQuery(method string, self, target [20]byte) ([]byte, int) {
	return encodeNetQuery(method, "", self, target)
}

// encodeNetQuery is encodeQuery for the private network named netName
// ("": Mainline, no "nw" key).
func encodeNetQuery(method, netName string, self, target [20]byte) ([]byte, int) {
	var b bytes.Buffer
	b.WriteString("d1:ad2:id20:")
	b.Write(self[:])
	switch method {
	case "find_node":
		b.WriteString("6:target20:")
		b.Write(target[:])
	case "get_peers":
		b.WriteString("9:info_hash20:")
		b.Write(target[:])
	}
	b.WriteString("e")
	if netName != "" {
		fmt.Fprintf(&b, "2:nw%d:%s", len(netName), netName)
	}
	fmt.Fprintf(&b, "1:q%d:%s2:roi1e1:t2:", len(method), method)
	off := b.Len()
	b.WriteString("\x00\x001:y1:qe")
	return b.Bytes(), off
}

// counts are one socket's tallies; the measuring goroutine reads them with
// atomic loads.
type counts struct {
	sent     atomic.Int64
	answered atomic.Int64 // responses (or, for an echo server, echoes) to a query in flight
	errors   atomic.Int64 // KRPC error replies
	lost     atomic.Int64 // queries given up after lostAfter
	withNode atomic.Int64 // answers that carry a "nodes" string
	nodeB    atomic.Int64 // bytes of "nodes" strings in those answers
}

// worker keeps window queries in flight on one connected socket.
type worker struct {
	conn   *net.UDPConn
	window int
	echo   bool
	pkts   [][]byte // pre-encoded, transaction id at off
	off    int
	c      counts

	next   uint16             // next transaction id
	oldest uint16             // oldest id possibly in flight
	sentAt [1 << 16]time.Time // zero: not in flight
	flight int
	v      int // next variant

	sealer *seal.Sealer // with a network key: seals queries, opens answers
	sbuf   []byte
}

func newWorker(to netip.AddrPort, method string, window int, echo bool, nk netKey) (*worker, error) {
	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(to))
	if err != nil {
		return nil, fmt.Errorf("dial %v: %w", to, err)
	}
	conn.SetReadBuffer(4 << 20)
	conn.SetWriteBuffer(4 << 20)
	w := &worker{conn: conn, window: window, echo: echo}
	var self [20]byte
	rand.Read(self[:])
	if nk.ring != nil {
		w.sealer = seal.New(nk.ring, self, seal.Config{})
	}
	for range variants {
		var target [20]byte
		rand.Read(target[:])
		p, off := encodeNetQuery(method, nk.name, self, target)
		w.pkts = append(w.pkts, p)
		w.off = off
	}
	return w, nil
}

func (w *worker) send(now time.Time) {
	t := w.next
	w.next++
	p := w.pkts[w.v]
	w.v = (w.v + 1) % len(w.pkts)
	p[w.off], p[w.off+1] = byte(t>>8), byte(t)
	if !w.sentAt[t].IsZero() {
		w.flight-- // an old query still marked in flight: given up
	}
	if w.sealer != nil {
		// Sealed per send: the server drops a datagram it has seen.
		w.sbuf = w.sealer.Seal(w.sbuf[:0], p, now)
		p = w.sbuf
	}
	if _, err := w.conn.Write(p); err != nil {
		// ECONNREFUSED from an earlier ICMP or a full buffer: the query is lost.
		w.c.lost.Add(1)
		return
	}
	w.sentAt[t] = now
	w.flight++
	w.c.sent.Add(1)
}

// expire gives up queries in flight for longer than lostAfter, oldest first.
func (w *worker) expire(now time.Time) {
	for w.oldest != w.next {
		at := w.sentAt[w.oldest]
		if !at.IsZero() {
			if now.Sub(at) < lostAfter {
				return
			}
			w.sentAt[w.oldest] = time.Time{}
			w.flight--
			w.c.lost.Add(1)
		}
		w.oldest++
	}
}

func (w *worker) fill(now time.Time) {
	for w.flight < w.window {
		w.send(now)
	}
}

// run loops until stop is closed.
func (w *worker) run(stop <-chan struct{}) {
	buf := make([]byte, 64<<10)
	now := time.Now()
	w.fill(now)
	tick := now
	w.conn.SetReadDeadline(now.Add(50 * time.Millisecond))
	for {
		n, err := w.conn.Read(buf)
		now = time.Now()
		if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) && !isRefused(err) {
			return
		}
		if n > 0 {
			w.receive(buf[:n], now)
		}
		if now.Sub(tick) >= 50*time.Millisecond || err != nil {
			select {
			case <-stop:
				return
			default:
			}
			tick = now
			w.expire(now)
			w.conn.SetReadDeadline(now.Add(50 * time.Millisecond))
		}
		w.fill(now)
	}
}

var (
	keyT     = []byte("1:t2:")
	keyR     = []byte("1:y1:r")
	keyE     = []byte("1:y1:e")
	keyQ     = []byte("1:y1:q")
	keyNodes = []byte("5:nodes")
)

func (w *worker) receive(p []byte, now time.Time) {
	if w.sealer != nil {
		var err error
		if p, _, err = w.sealer.Open(p, now); err != nil {
			return
		}
	}
	i := bytes.LastIndex(p, keyT)
	if i < 0 || i+len(keyT)+2 > len(p) {
		return
	}
	t := uint16(p[i+5])<<8 | uint16(p[i+6])
	if w.sentAt[t].IsZero() {
		return // late, duplicate or not ours
	}
	w.sentAt[t] = time.Time{}
	w.flight--
	switch {
	case bytes.Contains(p, keyR), w.echo && bytes.Contains(p, keyQ):
		w.c.answered.Add(1)
		if j := bytes.Index(p, keyNodes); j >= 0 {
			w.c.withNode.Add(1)
			w.c.nodeB.Add(int64(nodesLen(p[j+len(keyNodes):])))
		}
	case bytes.Contains(p, keyE):
		w.c.errors.Add(1)
	}
}

// nodesLen reads the length prefix of the string that follows "5:nodes".
func nodesLen(p []byte) int {
	n := 0
	for _, c := range p {
		if c == ':' {
			return n
		}
		if c < '0' || c > '9' {
			return 0
		}
		n = n*10 + int(c-'0')
	}
	return 0
}

// loadResult is one measurement: one server, one method.
type loadResult struct {
	Method    string
	Seconds   float64
	Sent      int64
	Answered  int64
	Errors    int64
	Lost      int64
	WithNodes int64
	NodesPer  float64 // IPv4 contacts per answer that carries nodes
	// Bare: answers of the whole run, warm-up included, that carried no
	// nodes; read after the workers stopped, so exact.
	Bare   int64
	CPU    time.Duration
	GenCPU time.Duration
	RSS    int64 // server resident set after the run, bytes
}

func (r loadResult) Rate() float64 { return float64(r.Answered) / r.Seconds }

// CPUPerAnswer is the server's CPU time per answered query.
func (r loadResult) CPUPerAnswer() time.Duration {
	if r.Answered == 0 {
		return 0
	}
	return r.CPU / time.Duration(r.Answered)
}

type loadConfig struct {
	Sockets  int
	Window   int
	Warmup   time.Duration
	Duration time.Duration
	Net      netKey // the server's private network and key, if any
}

// runLoad measures one method against the server at to, whose process is
// pid (0: do not read its CPU).
func runLoad(to netip.AddrPort, pid int, method string, echo bool, cfg loadConfig) (loadResult, error) {
	ws := make([]*worker, cfg.Sockets)
	for i := range ws {
		w, err := newWorker(to, method, cfg.Window, echo, cfg.Net)
		if err != nil {
			return loadResult{}, err
		}
		defer w.conn.Close()
		ws[i] = w
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, w := range ws {
		wg.Add(1)
		go func() { defer wg.Done(); w.run(stop) }()
	}
	time.Sleep(cfg.Warmup)

	snap := func() (c [5]int64) {
		for _, w := range ws {
			c[0] += w.c.sent.Load()
			c[1] += w.c.answered.Load()
			c[2] += w.c.errors.Load()
			c[3] += w.c.lost.Load()
			c[4] += w.c.withNode.Load()
		}
		return c
	}
	cpu := func() (time.Duration, error) {
		if pid == 0 {
			return 0, nil
		}
		return procCPU(pid)
	}
	cpu0, err := cpu()
	if err != nil {
		close(stop)
		wg.Wait()
		return loadResult{}, err
	}
	gen0, _ := procCPU(os.Getpid())
	c0, t0 := snap(), time.Now()
	time.Sleep(cfg.Duration)
	c1, t1 := snap(), time.Now()
	cpu1, err := cpu()
	gen1, _ := procCPU(os.Getpid())
	close(stop)
	wg.Wait()
	if err != nil {
		return loadResult{}, err
	}
	r := loadResult{
		Method:    method,
		Seconds:   t1.Sub(t0).Seconds(),
		Sent:      c1[0] - c0[0],
		Answered:  c1[1] - c0[1],
		Errors:    c1[2] - c0[2],
		Lost:      c1[3] - c0[3],
		WithNodes: c1[4] - c0[4],
		CPU:       cpu1 - cpu0,
		GenCPU:    gen1 - gen0,
	}
	// Contacts per answer over the whole run, warm-up included: read after
	// the workers stopped, the two counters agree.
	var answered, withNodes, nodeBytes int64
	for _, w := range ws {
		answered += w.c.answered.Load()
		withNodes += w.c.withNode.Load()
		nodeBytes += w.c.nodeB.Load()
	}
	r.Bare = answered - withNodes
	if withNodes > 0 {
		r.NodesPer = float64(nodeBytes) / 26 / float64(withNodes)
	}
	if pid != 0 {
		r.RSS, _ = procRSS(pid)
	}
	return r, nil
}
