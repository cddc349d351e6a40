package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/dhtkit/dhtkit"
	"github.com/dhtkit/dhtkit/interop"
	"github.com/dhtkit/dhtkit/seal"
)

// serveReady is what a server child prints on its first line of output.
type serveReady struct {
	Addr  string `json:"addr"`
	Table int    `json:"table"` // routing entries after priming
	Error string `json:"error,omitempty"`
}

// serve runs one server in this process until standard input closes. It
// primes the server by making it ping every seed, so that its find_node
// and get_peers answers carry nodes.
func serve(kind string, seeds []netip.AddrPort) error {
	var (
		addr  netip.AddrPort
		table int
		stop  func()
	)
	switch kind {
	case "echo":
		conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			return err
		}
		go echo(conn)
		addr, stop = conn.LocalAddr().(*net.UDPAddr).AddrPort(), func() { conn.Close() }
	case "anacrolix":
		s, _, err := interop.StartAnacrolix("127.0.0.1:0")
		if err != nil {
			return err
		}
		var wg sync.WaitGroup
		for _, a := range seeds {
			wg.Add(1)
			go func() { defer wg.Done(); s.Ping(net.UDPAddrFromAddrPort(a)) }()
		}
		wg.Wait()
		addr, table, stop = interop.AnacrolixAddr(s), s.NumNodes(), s.Close
	case "dhtkit", "dhtkit-private", "dhtkit-sealed":
		n, err := dhtkit.Listen(context.Background(), dhtkitConfig(kind))
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		var wg sync.WaitGroup
		for _, a := range seeds {
			wg.Add(1)
			go func() { defer wg.Done(); n.Ping(ctx, a) }()
		}
		wg.Wait()
		cancel()
		for _, b := range n.Routing() {
			table += len(b.Contacts)
		}
		addr, stop = n.Addr(), func() { n.Close() }
	default:
		return fmt.Errorf("unknown server kind %q (echo, dhtkit, dhtkit-private, dhtkit-sealed, anacrolix)", kind)
	}
	defer stop()
	if err := json.NewEncoder(os.Stdout).Encode(serveReady{Addr: addr.String(), Table: table}); err != nil {
		return err
	}
	io.Copy(io.Discard, os.Stdin)
	return nil
}

// dhtkitConfig is the configuration of the dhtkit server kind: Mainline,
// or the private network loadNetwork without ("dhtkit-private") or with
// ("dhtkit-sealed") the network key in keyEnv.
func dhtkitConfig(kind string) dhtkit.Config {
	cfg := dhtkit.DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.Network = dhtkit.Mainline
	if kind != "dhtkit" {
		cfg.Network = loadNetwork
	}
	if kind == "dhtkit-sealed" {
		cfg.NetworkKey = os.Getenv(keyEnv)
	}
	// One generator on one IP: lift the limits, as for libtorrent and
	// anacrolix, but only by raising them, so that every answer still
	// pays for the limiter's and the byte budgets' bookkeeping.
	cfg.Kademlia.RateLimit, cfg.Kademlia.RateBurst = 1e9, 1e9
	cfg.Kademlia.GlobalRate, cfg.Kademlia.RateBytes, cfg.Kademlia.GlobalBytes = 1e9, 1<<40, 1<<40
	cfg.Logger = slog.New(slog.DiscardHandler)
	return cfg
}

// echo is the floor: a bare Go UDP server that sends every datagram back.
func echo(conn *net.UDPConn) {
	buf := make([]byte, 64<<10)
	for {
		n, from, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		conn.WriteToUDPAddrPort(buf[:n], from)
	}
}

// server is a server under test running in a child process.
type server struct {
	name  string
	addr  netip.AddrPort
	pid   int
	table int
	close func()
}

// startChild runs this program's serve command for kind.
func startChild(kind string, seeds []netip.AddrPort) (*server, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	ss := make([]string, len(seeds))
	for i, s := range seeds {
		ss[i] = s.String()
	}
	cmd := newCmd(exe, "serve", "-kind", kind, "-seeds", strings.Join(ss, ","))
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	stop := func() { in.Close(); cmd.Wait() }
	var r serveReady
	if err := json.NewDecoder(bufio.NewReader(out)).Decode(&r); err != nil {
		stop()
		return nil, fmt.Errorf("%s server did not start: %w", kind, err)
	}
	addr, err := netip.ParseAddrPort(r.Addr)
	if err != nil {
		stop()
		return nil, fmt.Errorf("%s server: %w", kind, err)
	}
	return &server{name: kind, addr: addr, pid: cmd.Process.Pid, table: r.Table, close: stop}, nil
}

// startLibtorrent starts ltnode.py in bench mode, seeded with seeds.
func startLibtorrent(seeds []netip.AddrPort) (*server, error) {
	ss := make([]string, len(seeds))
	for i, s := range seeds {
		ss[i] = s.String()
	}
	n, err := interop.StartLibtorrent("--bench", "--seeds", strings.Join(ss, ","))
	if err != nil {
		return nil, err
	}
	return &server{name: "libtorrent", addr: n.Addr, pid: n.PID(), close: func() { n.Close() }}, nil
}

// contacts are loopback sockets that answer every query with their id, the
// routing entries the servers are primed with. They stay up during the
// run so that servers that check on their contacts get answers.
type contacts struct {
	conns []*net.UDPConn
	addrs []netip.AddrPort
}

func startContacts(n int, nk netKey) (*contacts, error) {
	c := new(contacts)
	for range n {
		conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			c.close()
			return nil, err
		}
		var self [20]byte
		rand.Read(self[:])
		c.conns = append(c.conns, conn)
		c.addrs = append(c.addrs, conn.LocalAddr().(*net.UDPAddr).AddrPort())
		go answer(conn, self, nk)
	}
	return c, nil
}

func (c *contacts) close() {
	for _, conn := range c.conns {
		conn.Close()
	}
}

// answer replies to every query on conn with a bare response carrying self
// (and a token, for get_peers).
func answer(conn *net.UDPConn, self [20]byte, nk netKey) {
	buf := make([]byte, 64<<10)
	var sealer *seal.Sealer
	if nk.ring != nil {
		sealer = seal.New(nk.ring, self, seal.Config{})
	}
	for {
		n, from, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		p := buf[:n]
		sealed := false
		if sealer != nil && len(p) > 0 && p[0] != 'd' {
			if p, _, err = sealer.Open(p, time.Now()); err != nil {
				continue
			}
			sealed = true
		}
		t, ok := txid(p)
		if !ok || !strings.Contains(string(p), "1:y1:q") {
			continue
		}
		nw := ""
		if strings.Contains(string(p), "2:nw") {
			// A private network's node: answer in its network.
			nw = fmt.Sprintf("2:nw%d:%s", len(loadNetwork), loadNetwork)
		}
		reply := fmt.Appendf(nil, "d%s1:rd2:id20:%s5:token4:abcde1:t%d:%s1:y1:re", nw, self[:], len(t), t)
		if sealed {
			reply = sealer.Seal(nil, reply, time.Now())
		}
		conn.WriteToUDPAddrPort(reply, from)
	}
}

// txid returns the transaction id of a KRPC message found by its key; good
// enough for the simple messages servers send to contacts.
func txid(p []byte) ([]byte, bool) {
	s := string(p)
	i := strings.LastIndex(s, "1:t")
	if i < 0 {
		return nil, false
	}
	j := i + 3
	n := 0
	for ; j < len(p) && p[j] >= '0' && p[j] <= '9'; j++ {
		n = n*10 + int(p[j]-'0')
	}
	if j >= len(p) || p[j] != ':' || n == 0 || j+1+n > len(p) {
		return nil, false
	}
	return p[j+1 : j+1+n], true
}
