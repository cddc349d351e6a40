//go:build linux

// Package flood floods a real node over loopback UDP, one attack at a
// time, and reports what each costs: the node's heap and what it holds
// (peers, items, listeners, records, contacts, tracked sources), the
// bytes it sent per byte received, and the round-trip time an honest
// peer's pings see meanwhile. The floods are slow and need the machine's
// cores, so they run only with -flood:
//
//	go test -run TestFloods -flood -v ./bench/flood/
//
// The flooders send from 256 loopback addresses (127.1.0.0/24), which
// the node treats as public ones: TrustLoopback is off and DiverseLocal on.
package flood

import (
	"bytes"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	goruntime "runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/kademlia"
	"github.com/dhtkit/dhtkit/krpc"
	"github.com/dhtkit/dhtkit/runtime"
	"github.com/dhtkit/dhtkit/store"
)

var (
	flood    = flag.Bool("flood", false, "run the floods (slow)")
	duration = flag.Duration("flood.duration", 5*time.Second, "how long each flood lasts")
	rate     = flag.Int("flood.rate", 5000, "queries per second each flood sends (past Config.GlobalRate, 8192, every source gets its share, honest ones too)")
)

const sources = 256

type attack struct {
	name  string
	token bool // each source first asks get_peers for its token
	query func(rng *rand.Rand, token []byte) []byte
}

func msg(q krpc.Method, rng *rand.Rand, fill func(a *krpc.Args)) []byte {
	m := krpc.Msg{Y: krpc.Query, Q: q, T: []byte{byte(rng.Uint32()), byte(rng.Uint32())}}
	m.A.Has = krpc.HasID
	m.A.ID = id.FromString("flooder")
	if fill != nil {
		fill(&m.A)
	}
	return m.Append(nil)
}

func randomID(rng *rand.Rand) (x id.ID) {
	for i := range x {
		x[i] = byte(rng.Uint32())
	}
	return x
}

func x(m map[string]any) []byte {
	b, err := krpc.AppendValue(nil, m)
	if err != nil {
		panic(err)
	}
	return b
}

var popular = id.FromString("popular")

var attacks = []attack{
	{"get_peers (300 peers stored)", false, func(rng *rand.Rand, _ []byte) []byte {
		return msg(krpc.MethodGetPeers, rng, func(a *krpc.Args) { a.Has |= krpc.HasInfoHash; a.InfoHash = popular })
	}},
	{"sample_infohashes", false, func(rng *rand.Rand, _ []byte) []byte {
		return msg(krpc.MethodSampleInfohashes, rng, func(a *krpc.Args) { a.Has |= krpc.HasTarget; a.Target = randomID(rng) })
	}},
	{"dk_fetch without token (8 KB record)", false, func(rng *rand.Rand, _ []byte) []byte {
		return msg(krpc.MethodFetch, rng, func(a *krpc.Args) { a.Has |= krpc.HasX; a.X = x(map[string]any{"k": "big"}) })
	}},
	{"announce_peer, random infohashes", true, func(rng *rand.Rand, tok []byte) []byte {
		return msg(krpc.MethodAnnouncePeer, rng, func(a *krpc.Args) {
			a.Has |= krpc.HasInfoHash | krpc.HasToken | krpc.HasPort
			a.InfoHash, a.Token, a.Port = randomID(rng), tok, 1+rng.IntN(65535)
		})
	}},
	{"put, random items", true, func(rng *rand.Rand, tok []byte) []byte {
		v := fmt.Appendf(nil, "16:%016x", rng.Uint64())
		return msg(krpc.MethodPut, rng, func(a *krpc.Args) { a.Has |= krpc.HasToken | krpc.HasV; a.Token, a.V = tok, v })
	}},
	{"dk_store, random 1 KB records", true, func(rng *rand.Rand, tok []byte) []byte {
		rec := map[string]any{"k": fmt.Sprintf("flood-%016x", rng.Uint64()), "v": bytes.Repeat([]byte("v"), 1000),
			"t": int64((&store.Clock{}).Now(time.Now()).Time), "w": int64(rng.Uint64() >> 1)}
		return msg(krpc.MethodStore, rng, func(a *krpc.Args) {
			a.Has |= krpc.HasToken | krpc.HasX
			a.Token, a.X = tok, x(map[string]any{"recs": []any{rec}})
		})
	}},
	{"dk_listen, random keys", true, func(rng *rand.Rand, tok []byte) []byte {
		return msg(krpc.MethodListen, rng, func(a *krpc.Args) {
			a.Has |= krpc.HasToken | krpc.HasX
			a.Token, a.X = tok, x(map[string]any{"k": fmt.Sprintf("listen-%016x", rng.Uint64())})
		})
	}},
	{"Sybil ids (find_node, random ids)", false, func(rng *rand.Rand, _ []byte) []byte {
		m := krpc.Msg{Y: krpc.Query, Q: krpc.MethodFindNode, T: []byte{1, 2}}
		m.A.Has = krpc.HasID | krpc.HasTarget
		m.A.ID, m.A.Target = randomID(rng), randomID(rng)
		return m.Append(nil)
	}},
}

func TestFloods(t *testing.T) {
	if !*flood {
		t.Skip("floods run with -flood (see the package doc)")
	}
	for _, a := range attacks {
		t.Run(a.name, func(t *testing.T) { run(t, a) })
	}
}

func bind(t *testing.T, ip netip.Addr) *net.UDPConn {
	c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, 0)))
	if err != nil {
		t.Fatalf("binding %v: %v", ip, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func heap() uint64 {
	goruntime.GC()
	var ms goruntime.MemStats
	goruntime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

func run(t *testing.T, a attack) {
	cfg := kademlia.DefaultConfig()
	cfg.Network = "mainline"
	cfg.DiverseLocal = true // the flooders' 127.1.0.x stand for public addresses
	// A small store, so that a 3 s flood reaches its bound (1 GiB by
	// default: the bound is the same code at any size).
	const maxBytes = 8 << 20
	st := store.NewMemory(store.Config{MaxBytes: maxBytes})
	cfg.Store = st
	eng := kademlia.New(cfg, time.Now())
	conn := bind(t, netip.MustParseAddr("127.0.0.1"))
	rt := runtime.New(conn, eng, runtime.Options{})
	defer rt.Close()
	target := rt.Addr()

	// What an amplifier wants: 300 peers for one infohash, 2000 other
	// infohashes, an 8 KB record, a full routing table.
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 300 {
		c := bind(t, netip.AddrFrom4([4]byte{127, 3, byte(i >> 8), byte(i)}))
		tok := token(t, c, target, rng)
		c.WriteToUDPAddrPort(msg(krpc.MethodAnnouncePeer, rng, func(a *krpc.Args) {
			a.Has |= krpc.HasInfoHash | krpc.HasToken | krpc.HasPort
			a.InfoHash, a.Token, a.Port = popular, tok, 6881
		}), target)
		if i < 100 {
			for range 20 {
				c.WriteToUDPAddrPort(msg(krpc.MethodAnnouncePeer, rng, func(a *krpc.Args) {
					a.Has |= krpc.HasInfoHash | krpc.HasToken | krpc.HasPort
					a.InfoHash, a.Token, a.Port = randomID(rng), tok, 6881
				}), target)
			}
		}
	}
	if _, err := st.Put(store.Record{Key: "big", Value: bytes.Repeat([]byte("v"), 8000), Version: (&store.Clock{Writer: 1}).Now(time.Now())}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // let the setup's datagrams land

	// The flooders and their tokens.
	conns := make([]*net.UDPConn, sources)
	toks := make([][]byte, sources)
	for i := range conns {
		conns[i] = bind(t, netip.AddrFrom4([4]byte{127, 1, 0, byte(i)}))
		if a.token {
			toks[i] = token(t, conns[i], target, rng)
		}
		go drain(conns[i])
	}

	var before kademlia.Stats
	rt.Inspect(func() { before = eng.Stats() })
	heap0 := heap()

	// The honest peer pings every 20 ms throughout.
	stop := make(chan struct{})
	var rtts []time.Duration
	var sent atomic.Int64
	var lost int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		rtts, lost = pinger(t, target, stop, &sent)
	}()

	// The flood.
	period := time.Second / time.Duration(*rate)
	end := time.Now().Add(*duration)
	n := 0
	for next := time.Now(); time.Now().Before(end); next = next.Add(period) {
		if d := time.Until(next); d > 0 {
			time.Sleep(d)
		}
		i := n % sources
		conns[i].WriteToUDPAddrPort(a.query(rng, toks[i]), target)
		n++
	}
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()

	heap1 := heap()
	var after kademlia.Stats
	var held kademlia.Held
	rt.Inspect(func() { after = eng.Stats(); held = eng.Held() })
	keys, sbytes := st.Stats()
	in, out := after.BytesIn-before.BytesIn, after.BytesOut-before.BytesOut
	slices.Sort(rtts)
	pct := func(p float64) time.Duration {
		if len(rtts) == 0 {
			return 0
		}
		return rtts[min(len(rtts)-1, int(p*float64(len(rtts))))]
	}
	var drops []string
	for _, r := range kademlia.DropReasons() {
		if d := after.Drops[r] - before.Drops[r]; d > 0 {
			drops = append(drops, fmt.Sprintf("%s=%d", r, d))
		}
	}
	t.Logf("%d queries in %v: %d B in, %d B out (%.2f×); heap %+.1f MiB (%.1f MiB); holds %+v, store %d keys %d B; "+
		"honest ping p50 %v p99 %v, %d of %d lost; drops %v",
		n, *duration, in, out, float64(out)/float64(max(in, 1)), (float64(heap1)-float64(heap0))/(1<<20), float64(heap1)/(1<<20),
		held, keys, sbytes, pct(0.5).Round(10*time.Microsecond), pct(0.99).Round(10*time.Microsecond), lost, sent.Load(), drops)
	if held.Swarms > cfg.MaxInfohashes || held.Items > cfg.MaxItems || held.Listeners > cfg.MaxListeners ||
		held.Sources > 1<<16 || sbytes > maxBytes {
		t.Errorf("a bound broke: %+v", held)
	}
}

// token asks the node for c's token.
func token(t *testing.T, c *net.UDPConn, target netip.AddrPort, rng *rand.Rand) []byte {
	q := msg(krpc.MethodGetPeers, rng, func(a *krpc.Args) { a.Has |= krpc.HasInfoHash; a.InfoHash = popular })
	buf := make([]byte, kademlia.MaxDatagram)
	for range 5 {
		c.WriteToUDPAddrPort(q, target)
		c.SetReadDeadline(time.Now().Add(time.Second))
		n, _, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			continue
		}
		var m krpc.Msg
		if m.Decode(buf[:n]) == nil && m.R.Has&krpc.HasToken != 0 {
			c.SetReadDeadline(time.Time{})
			return bytes.Clone(m.R.Token)
		}
	}
	t.Fatal("no token")
	return nil
}

func drain(c *net.UDPConn) {
	buf := make([]byte, kademlia.MaxDatagram)
	for {
		if _, _, err := c.ReadFromUDPAddrPort(buf); err != nil && !isTimeout(err) {
			return
		}
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// pinger pings target every 20 ms from 127.0.0.200 until stop, and
// returns the round-trip times and the pings never answered.
func pinger(t *testing.T, target netip.AddrPort, stop chan struct{}, sent *atomic.Int64) ([]time.Duration, int64) {
	c := bind(t, netip.MustParseAddr("127.0.0.200"))
	var mu sync.Mutex
	at := map[uint16]time.Time{}
	var rtts []time.Duration
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			c.SetReadDeadline(time.Now().Add(2 * time.Second))
			n, _, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			var m krpc.Msg
			if m.Decode(buf[:n]) != nil || len(m.T) != 2 {
				continue
			}
			tid := uint16(m.T[0])<<8 | uint16(m.T[1])
			mu.Lock()
			if t0, ok := at[tid]; ok {
				rtts = append(rtts, time.Since(t0))
				delete(at, tid)
			}
			mu.Unlock()
		}
	}()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for tid := uint16(0); ; tid++ {
		select {
		case <-stop:
			<-done
			return rtts, int64(len(at))
		case <-tick.C:
		}
		m := krpc.Msg{Y: krpc.Query, Q: krpc.MethodPing, T: []byte{byte(tid >> 8), byte(tid)}}
		m.A.Has, m.A.ID = krpc.HasID, id.FromString("honest")
		mu.Lock()
		at[tid] = time.Now()
		mu.Unlock()
		sent.Add(1)
		c.WriteToUDPAddrPort(m.Append(nil), target)
	}
}
