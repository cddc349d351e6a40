package interop

import (
	"bufio"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

//go:embed ltnode.py
var ltnodeScript string

// Python is the interpreter that runs libtorrent: Debian's, since
// python3-libtorrent installs its module for it (a python3 found first on
// PATH, e.g. from pyenv, does not see it). DHTKIT_PYTHON overrides it.
func Python() string {
	if p := os.Getenv("DHTKIT_PYTHON"); p != "" {
		return p
	}
	return "/usr/bin/python3"
}

// ErrNoLibtorrent says that python3-libtorrent is not installed.
var ErrNoLibtorrent = errors.New("libtorrent not available: install Debian's python3-libtorrent (apt-get install -y python3-libtorrent)")

// LibtorrentVersion returns libtorrent's version, or an error wrapping
// ErrNoLibtorrent when the Python module cannot be imported.
func LibtorrentVersion() (string, error) {
	out, err := exec.Command(Python(), "-c", "import libtorrent; print(libtorrent.__version__)").Output()
	if err != nil {
		return "", fmt.Errorf("%w: %s: %v", ErrNoLibtorrent, Python(), err)
	}
	return strings.TrimSpace(string(out)), nil
}

// LTNode is a libtorrent session with its DHT on 127.0.0.1, in a child
// process running ltnode.py (see that file for the settings loopback needs
// and the commands it takes).
type LTNode struct {
	Addr netip.AddrPort
	ID   [20]byte

	cmd  *exec.Cmd
	mu   sync.Mutex // serializes Call
	in   io.WriteCloser
	out  *bufio.Scanner
	done chan struct{}
}

// StartLibtorrent starts a libtorrent node. args go to ltnode.py, e.g.
// "--seeds", "127.0.0.1:P,..." or "--bench".
func StartLibtorrent(args ...string) (*LTNode, error) {
	if _, err := LibtorrentVersion(); err != nil {
		return nil, err
	}
	cmd := exec.Command(Python(), append([]string{"-c", ltnodeScript}, args...)...)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("libtorrent: %w", err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("libtorrent: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("libtorrent: start %s: %w", Python(), err)
	}
	n := &LTNode{cmd: cmd, in: in, out: bufio.NewScanner(out), done: make(chan struct{})}
	n.out.Buffer(make([]byte, 0, 64<<10), 16<<20)
	go func() { cmd.Wait(); close(n.done) }()

	var ready struct {
		Ready bool   `json:"ready"`
		Port  uint16 `json:"port"`
		ID    string `json:"id"`
	}
	if err := n.read(&ready, 30*time.Second); err != nil {
		n.Close()
		return nil, fmt.Errorf("libtorrent: start: %w", err)
	}
	id, err := hex.DecodeString(ready.ID)
	if err != nil || len(id) != 20 {
		n.Close()
		return nil, fmt.Errorf("libtorrent: bad node id %q", ready.ID)
	}
	copy(n.ID[:], id)
	n.Addr = netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), ready.Port)
	return n, nil
}

// PID is the child process's id, for reading its CPU time.
func (n *LTNode) PID() int { return n.cmd.Process.Pid }

// read decodes the next line of output into v.
func (n *LTNode) read(v any, timeout time.Duration) error {
	type line struct {
		b   []byte
		err error
	}
	ch := make(chan line, 1)
	go func() {
		if n.out.Scan() {
			ch <- line{b: append([]byte(nil), n.out.Bytes()...)}
			return
		}
		err := n.out.Err()
		if err == nil {
			err = io.ErrUnexpectedEOF
		}
		ch <- line{err: err}
	}()
	select {
	case l := <-ch:
		if l.err != nil {
			return fmt.Errorf("reading ltnode.py: %w", l.err)
		}
		if err := json.Unmarshal(l.b, v); err != nil {
			return fmt.Errorf("decoding %q: %w", l.b, err)
		}
		return nil
	case <-time.After(timeout):
		// The read goroutine ends when Close kills the process.
		return fmt.Errorf("ltnode.py: no answer in %v", timeout)
	}
}

// Call sends one command and decodes the answer into resp. An answer with
// an "error" field is returned as an error.
func (n *LTNode) Call(req map[string]any, resp any) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	b, err := json.Marshal(req)
	if err != nil {
		return err
	}
	if _, err := n.in.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("libtorrent %v: %w", req["cmd"], err)
	}
	var raw json.RawMessage
	if err := n.read(&raw, 60*time.Second); err != nil {
		return fmt.Errorf("libtorrent %v: %w", req["cmd"], err)
	}
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(raw, &e) == nil && e.Error != "" {
		return fmt.Errorf("libtorrent %v: %s", req["cmd"], e.Error)
	}
	if resp == nil {
		return nil
	}
	return json.Unmarshal(raw, resp)
}

// AddNode makes libtorrent contact addr (it sends a query and adds the node
// when it answers).
func (n *LTNode) AddNode(addr netip.AddrPort) error {
	return n.Call(map[string]any{"cmd": "add_node", "addr": addr.String()}, nil)
}

// GetPeers runs libtorrent's get_peers lookup and returns the peers of the
// first response that carries any (none after timeout).
func (n *LTNode) GetPeers(ih [20]byte, timeout time.Duration) ([]netip.AddrPort, error) {
	var r struct {
		Peers []string `json:"peers"`
	}
	err := n.Call(map[string]any{"cmd": "get_peers", "ih": hex.EncodeToString(ih[:]), "timeout": timeout.Seconds()}, &r)
	if err != nil {
		return nil, err
	}
	return parseAddrs(r.Peers)
}

// Announce adds a torrent with infohash ih and forces its DHT announce of
// the session's port, which it returns.
func (n *LTNode) Announce(ih [20]byte) (port int, err error) {
	var r struct {
		Port int `json:"port"`
	}
	err = n.Call(map[string]any{"cmd": "announce", "ih": hex.EncodeToString(ih[:])}, &r)
	return r.Port, err
}

// LTContact is a routing table entry of a libtorrent node.
type LTContact struct {
	ID   string `json:"id"`
	Addr string `json:"addr"`
}

// LiveNodes returns libtorrent's routing table.
func (n *LTNode) LiveNodes() ([]LTContact, error) {
	var r struct {
		Nodes []LTContact `json:"nodes"`
	}
	err := n.Call(map[string]any{"cmd": "live_nodes"}, &r)
	return r.Nodes, err
}

// LTAnnounce is an announce_peer that a libtorrent node accepted.
type LTAnnounce struct {
	IH   string `json:"ih"`
	IP   string `json:"ip"`
	Port int    `json:"port"`
}

// Seen returns the packets libtorrent's DHT sent and received so far,
// counted by "in"/"out", kind and method (e.g. "in q find_node", "out r"),
// and the announces it accepted.
func (n *LTNode) Seen() (map[string]int, []LTAnnounce, error) {
	var r struct {
		Seen      map[string]int `json:"seen"`
		Announces []LTAnnounce   `json:"announces"`
	}
	err := n.Call(map[string]any{"cmd": "seen"}, &r)
	return r.Seen, r.Announces, err
}

// SampleInfohashes sends a BEP 51 query to addr and returns the responder's
// count of infohashes and its samples.
func (n *LTNode) SampleInfohashes(addr netip.AddrPort, target [20]byte) (num int, samples []string, err error) {
	var r struct {
		Num     int      `json:"num"`
		Samples []string `json:"samples"`
	}
	err = n.Call(map[string]any{"cmd": "sample", "addr": addr.String(), "target": hex.EncodeToString(target[:])}, &r)
	return r.Num, r.Samples, err
}

// Close ends the child process.
func (n *LTNode) Close() error {
	n.in.Close()
	select {
	case <-n.done:
	case <-time.After(5 * time.Second):
		n.cmd.Process.Kill()
		<-n.done
	}
	return nil
}

func parseAddrs(ss []string) ([]netip.AddrPort, error) {
	out := make([]netip.AddrPort, 0, len(ss))
	for _, s := range ss {
		ap, err := netip.ParseAddrPort(s)
		if err != nil {
			return nil, fmt.Errorf("libtorrent returned a bad address: %w", err)
		}
		out = append(out, ap)
	}
	return out, nil
}
