package main

import (
	"context"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit"
	"github.com/dhtkit/dhtkit/interop"
	"github.com/dhtkit/dhtkit/krpc"
)

// The pre-encoded queries are valid KRPC with the fields each method
// needs, and patching the transaction id changes only it.
func TestEncodeQuery(t *testing.T) {
	var self, target [20]byte
	self[0], target[19] = 1, 2
	for _, tc := range []struct {
		method string
		want   krpc.Method
	}{
		{"ping", krpc.MethodPing},
		{"find_node", krpc.MethodFindNode},
		{"get_peers", krpc.MethodGetPeers},
	} {
		p, off := encodeQuery(tc.method, self, target)
		p[off], p[off+1] = 0xab, 0xcd
		var m krpc.Msg
		if err := m.Decode(p); err != nil {
			t.Fatalf("%s: %q: %v", tc.method, p, err)
		}
		if m.Y != krpc.Query || m.Q != tc.want || string(m.T) != "\xab\xcd" || !m.RO || m.A.ID != self {
			t.Errorf("%s: decoded %+v", tc.method, m)
		}
		if tc.method == "find_node" && m.A.Target != target || tc.method == "get_peers" && m.A.InfoHash != target {
			t.Errorf("%s: target not carried: %+v", tc.method, m.A)
		}
		if tid, ok := txid(p); !ok || string(tid) != "\xab\xcd" {
			t.Errorf("%s: txid = %q, %v", tc.method, tid, ok)
		}
	}
}

func TestNodesLen(t *testing.T) {
	for in, want := range map[string]int{"208:xx": 208, "0:": 0, "12": 0, "x:": 0} {
		if got := nodesLen([]byte(in)); got != want {
			t.Errorf("nodesLen(%q) = %d, want %d", in, got, want)
		}
	}
}

// TestProcCPU: the process's CPU time, as procCPU reads it, grows while
// the process burns CPU. It spins until it does rather than for a fixed
// wall time: on a busy machine (load average 10-40) 50 ms of wall time
// can give the process less than the one clock tick /proc counts in.
func TestProcCPU(t *testing.T) {
	before, err := procCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	after := before
	for deadline := time.Now().Add(2 * time.Minute); after <= before && time.Now().Before(deadline); {
		for end := time.Now().Add(20 * time.Millisecond); time.Now().Before(end); {
		}
		if after, err = procCPU(os.Getpid()); err != nil {
			t.Fatal(err)
		}
	}
	if after <= before {
		t.Fatalf("CPU time went from %v to %v while the process spun for 2 minutes", before, after)
	}
	if _, err := procCPU(-1); err == nil {
		t.Fatal("procCPU(-1) succeeded")
	}
}

// A short run against an in-process echo server and an anacrolix server
// primed with contacts counts answers, and find_node answers carry nodes.
func TestRunLoad(t *testing.T) {
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	go echo(conn)
	cfg := loadConfig{Sockets: 2, Window: 4, Warmup: 50 * time.Millisecond, Duration: 200 * time.Millisecond}
	r := loadUntilAnswered(t, conn.LocalAddr().(*net.UDPAddr).AddrPort(), "ping", true, cfg)
	if r.Answered == 0 || r.Errors != 0 {
		t.Fatalf("echo: %+v", r)
	}

	cs, err := startContacts(100, netKey{})
	if err != nil {
		t.Fatal(err)
	}
	defer cs.close()
	s, _, err := interop.StartAnacrolix("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, a := range cs.addrs {
		if res := s.Ping(net.UDPAddrFromAddrPort(a)); res.Err != nil {
			t.Fatalf("anacrolix ping contact %v: %v", a, res.Err)
		}
	}
	addr := interop.AnacrolixAddr(s)
	// anacrolix fills find_node answers from a few buckets only, so how
	// many nodes it returns depends on the random ids: some, not always 8.
	got := waitPrimed(addr, 5*time.Second, netKey{})
	if got == 0 {
		t.Fatal("anacrolix find_node answers carry no nodes")
	}
	r = loadUntilAnswered(t, addr, "find_node", false, cfg)
	// Bare counts the whole run's answers without nodes, read after the
	// workers stopped: exact, where Answered and WithNodes, read while
	// they run, may be a moment apart.
	if r.Answered == 0 || r.Bare != 0 || r.NodesPer < 1 {
		t.Fatalf("anacrolix find_node: %+v", r)
	}
}

// loadUntilAnswered runs the load of cfg, twice as long each time, until
// the server answered during the measured part: on a busy machine the
// generator's goroutines may not run at all for 200 ms. Every run must
// be free of errors.
func loadUntilAnswered(t *testing.T, to netip.AddrPort, method string, echo bool, cfg loadConfig) loadResult {
	t.Helper()
	for {
		r, err := runLoad(to, os.Getpid(), method, echo, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if r.Answered > 0 || r.Errors != 0 || cfg.Duration >= 30*time.Second {
			return r
		}
		t.Logf("%s: no answer in %v (a busy machine?); measuring again for longer", method, cfg.Duration)
		cfg.Duration *= 2
	}
}

// The sealed rows: a dhtkit node with a network key, primed with contacts
// that answer sealed queries, answers the generator's sealed queries, and
// its find_node answers carry nodes; a generator without the key gets
// nothing.
func TestRunLoadSealed(t *testing.T) {
	nk, cleanup, err := newNetKey()
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	cs, err := startContacts(20, nk)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.close()
	n, err := dhtkit.Listen(context.Background(), dhtkitConfig("dhtkit-sealed"))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, a := range cs.addrs {
		if _, err := n.Ping(ctx, a); err != nil {
			t.Fatalf("sealed ping of contact %v: %v", a, err)
		}
	}
	if got := waitPrimed(n.Addr(), 5*time.Second, nk); got == 0 {
		t.Fatal("sealed find_node answers carry no nodes")
	}
	lc := loadConfig{Sockets: 2, Window: 4, Warmup: 50 * time.Millisecond, Duration: 200 * time.Millisecond, Net: nk}
	r, err := runLoad(n.Addr(), os.Getpid(), "find_node", false, lc)
	if err != nil {
		t.Fatal(err)
	}
	// The two counters are read a moment apart: compare them loosely.
	if r.Answered == 0 || r.WithNodes < r.Answered*9/10 || r.NodesPer < 1 {
		t.Fatalf("sealed find_node: %+v", r)
	}
	lc.Net = netKey{name: loadNetwork} // the network's name, not its key
	if r, err = runLoad(n.Addr(), os.Getpid(), "ping", false, lc); err != nil || r.Answered != 0 {
		t.Fatalf("without the key: %+v, %v; want no answer", r, err)
	}
}
