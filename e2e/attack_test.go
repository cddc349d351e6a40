package e2e

import (
	"bytes"
	"crypto/rand"
	"crypto/sha1"
	"encoding/binary"
	"encoding/json"
	"errors"
	"net"
	"net/netip"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/krpc"
)

// The attack suite: an attacker on the nodes' network, without the
// network key, crafts KRPC datagrams with package krpc and sends them to
// real `dhtkit node` processes. With a key every attack gets no answer and
// changes nothing; without one, TestAttacksWithoutKey shows what the
// README's warning says an attacker can do.

// attacker is a host that can reach the nodes' UDP ports and knows the
// network's name, but not its key.
type attacker struct {
	t    *testing.T
	conn *net.UDPConn
	id   [20]byte
	tid  uint16
}

func newAttacker(t *testing.T) *attacker {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	a := &attacker{t: t, conn: conn}
	rand.Read(a.id[:])
	return a
}

// query builds a query of the default private network, "dhtkit".
func (a *attacker) query(m krpc.Method, args krpc.Args) []byte {
	a.tid++
	var q krpc.Msg
	q.Y, q.Q = krpc.Query, m
	q.T = binary.BigEndian.AppendUint16(nil, a.tid)
	q.Net = []byte("dhtkit")
	if args.Has&krpc.HasID == 0 {
		args.Has |= krpc.HasID
		args.ID = a.id
	}
	q.A = args
	return q.Append(nil)
}

func (a *attacker) send(to string, pkt []byte) {
	a.t.Helper()
	if _, err := a.conn.WriteToUDPAddrPort(pkt, netip.MustParseAddrPort(to)); err != nil {
		a.t.Fatal(err)
	}
}

// ask sends a query and returns the answer, or nil after 5 s.
func (a *attacker) ask(to string, m krpc.Method, args krpc.Args) *krpc.Msg {
	a.t.Helper()
	pkt := a.query(m, args)
	tid := pkt[bytes.Index(pkt, []byte("1:t2:"))+5:][:2]
	a.send(to, pkt)
	deadline := time.Now().Add(5 * time.Second)
	buf := make([]byte, 65536)
	for {
		a.conn.SetReadDeadline(deadline)
		n, err := a.conn.Read(buf)
		if err != nil {
			return nil
		}
		var r krpc.Msg
		if r.Decode(buf[:n]) == nil && bytes.Equal(r.T, tid) {
			return &r
		}
	}
}

// silence fails if any datagram reaches the attacker within wait.
func (a *attacker) silence(wait time.Duration) {
	a.t.Helper()
	buf := make([]byte, 65536)
	a.conn.SetReadDeadline(time.Now().Add(wait))
	if n, from, err := a.conn.ReadFromUDPAddrPort(buf); err == nil {
		a.t.Errorf("%v answered the attacker: %q", from, buf[:min(n, 200)])
	}
}

// recordX is the "x" payload of a dk_store or dk_notify: rec is a record as
// dhtkit's wire carries it (kademlia/kvwire.go).
func recordX(key string, value []byte, deleted bool, ahead time.Duration) []byte {
	rec := map[string]any{
		"k": key,
		"t": int64(uint64(time.Now().Add(ahead).UnixMilli()) << 16),
		"w": int64(0x7fffffffffffffff), // wins every tie
		"e": time.Now().Add(time.Hour).UnixMilli(),
	}
	if deleted {
		rec["d"] = 1
	} else {
		rec["v"] = append([]byte{0}, value...) // kind 0: the value inline (value.go)
	}
	b, err := krpc.AppendValue(nil, map[string]any{"recs": []any{rec}})
	if err != nil {
		panic(err)
	}
	return b
}

func xArgs(x []byte) krpc.Args { return krpc.Args{Has: krpc.HasX, X: x} }

func target(s string) [20]byte {
	var t [20]byte
	copy(t[:], s)
	return t
}

// keyedStatus is the part of /v1/status a network key adds.
type keyedStatus struct {
	NetworkKey *struct {
		IDs           []string `json:"ids"`
		Opened        uint64   `json:"opened"`
		Undecryptable uint64   `json:"undecryptable"`
		Replayed      uint64   `json:"replayed"`
		Stale         uint64   `json:"stale"`
	} `json:"network_key"`
}

func (c *cluster) keyStatus(n *node) keyedStatus {
	c.t.Helper()
	var st keyedStatus
	if err := c.getJSON(n, "/v1/status", &st); err != nil {
		c.t.Fatal(err)
	}
	if st.NetworkKey == nil {
		c.t.Fatalf("%s reports no network key", n.name)
	}
	return st
}

// makeKey runs `dhtkit network-key FILE`.
func makeKey(t *testing.T, path string) {
	t.Helper()
	if out, err := exec.Command(bin, "network-key", path).CombinedOutput(); err != nil {
		t.Fatalf("dhtkit network-key: %v %s", err, out)
	}
}

// every attack of issue 10, at every node.
func allAttacks(a *attacker, c *cluster) (sent int) {
	for i, n := range c.nodes {
		other := c.nodes[(i+1)%len(c.nodes)]
		var otherID [20]byte
		if b, err := hexID(other.id); err == nil {
			otherID = b
		}
		for _, pkt := range [][]byte{
			a.query(krpc.MethodPing, krpc.Args{}),
			a.query(krpc.MethodFindNode, krpc.Args{Has: krpc.HasTarget, Target: target("anything")}),
			a.query(krpc.MethodGetPeers, krpc.Args{Has: krpc.HasInfoHash, InfoHash: target("greeting")}),
			a.query(krpc.MethodGet, krpc.Args{Has: krpc.HasTarget, Target: target("greeting")}),
			a.query(krpc.MethodStore, xArgs(recordX("greeting", []byte("pwned"), false, time.Second))),
			a.query(krpc.MethodStore, krpc.Args{Has: krpc.HasX | krpc.HasToken, Token: []byte("12345678"),
				X: recordX("greeting", []byte("pwned"), false, time.Second)}),
			a.query(krpc.MethodStore, xArgs(recordX("greeting", nil, true, 2*time.Second))),
			a.query(krpc.MethodStore, xArgs(recordX("future", []byte("x"), false, 59*time.Second))),
			a.query(krpc.MethodFetch, xArgs(mustX(map[string]any{"k": "greeting"}))),
			a.query(krpc.MethodSync, xArgs(mustX(map[string]any{"d": int64(0), "b": []any{[]any{int64(0), int64(1)}}}))),
			a.query(krpc.MethodListen, xArgs(mustX(map[string]any{"k": "greeting"}))),
			a.query(krpc.MethodNotify, xArgs(recordX("greeting", []byte("pwned"), false, time.Second))),
			a.query(krpc.MethodBye, krpc.Args{Has: krpc.HasID, ID: otherID}),
			// Sealed-looking garbage: dhtkit's version byte, random rest.
			append([]byte{0xd1}, randomBytes(100)...),
		} {
			a.send(n.udp, pkt)
			sent++
		}
	}
	return sent
}

func mustX(v any) []byte {
	b, err := krpc.AppendValue(nil, v)
	if err != nil {
		panic(err)
	}
	return b
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func hexID(s string) ([20]byte, error) {
	var id [20]byte
	if len(s) != 40 {
		return id, errors.New("not a node id")
	}
	for i := range id {
		var v byte
		for _, ch := range s[2*i : 2*i+2] {
			v <<= 4
			switch {
			case ch >= '0' && ch <= '9':
				v |= byte(ch - '0')
			case ch >= 'a' && ch <= 'f':
				v |= byte(ch - 'a' + 10)
			default:
				return id, errors.New("not a node id")
			}
		}
		id[i] = v
	}
	return id, nil
}

// greetingTrio starts the attacks' target: three meshed nodes, with a
// network key (its file returned) when keyed, holding "greeting" = hello.
func greetingTrio(t *testing.T, keyed bool) (c *cluster, key string) {
	t.Helper()
	c = newCluster(t, 3)
	if keyed {
		key = filepath.Join(c.dir, "network.key")
		makeKey(t, key)
		c.flags = []string{"--network-key", key}
	}
	seed := c.add("")
	c.add("", seed)
	c.add("", seed)
	c.waitMesh(20 * time.Second)
	if err := c.put(seed, "greeting", []byte("hello")); err != nil {
		t.Fatal(err)
	}
	return c, key
}

// TestAttacksWithNetworkKey: a 3-node network with a key; an attacker
// without it sends every attack of issue 10 to every node (forged
// dk_store, tombstone, dk_fetch, dk_sync, dk_bye, find_node, ...), then
// replays datagrams it captured on the path between two members. Nothing
// answers, nothing changes, and the nodes count what they dropped.
func TestAttacksWithNetworkKey(t *testing.T) {
	t.Parallel()
	c, key := greetingTrio(t, true)
	before := make([]int, len(c.nodes))
	for i, n := range c.nodes {
		before[i] = c.status(n).Routing.Nodes
	}

	a := newAttacker(t)
	sent := allAttacks(a, c)
	a.silence(3 * time.Second)

	for i, n := range c.nodes {
		if got, err := c.get(n, "greeting"); err != nil || string(got) != "hello" {
			t.Errorf("%s: greeting is %q, %v after the attacks; want hello", n.name, got, err)
		}
		if _, err := c.get(n, "future"); !isStatus(err, 404) {
			t.Errorf("%s: the forged key \"future\" exists: %v", n.name, err)
		}
		if got := c.status(n).Routing.Nodes; got != before[i] {
			t.Errorf("%s: %d contacts after the forged dk_bye, %d before", n.name, got, before[i])
		}
		if ks := c.keyStatus(n).NetworkKey; ks.Undecryptable == 0 {
			t.Errorf("%s: counted no undecryptable datagram", n.name)
		}
	}
	var total uint64
	for _, n := range c.nodes {
		total += c.keyStatus(n).NetworkKey.Undecryptable
	}
	if total < uint64(sent) {
		t.Errorf("the nodes counted %d undecryptable datagrams of the %d sent", total, sent)
	}
	// The owner's writes still land, and the clock was not dragged: a
	// write now is read back.
	if err := c.put(c.nodes[1], "greeting", []byte("hello again")); err != nil {
		t.Fatal(err)
	}
	if got, err := c.get(c.nodes[2], "greeting"); err != nil || string(got) != "hello again" {
		t.Errorf("the owner's write after the attacks: %q, %v", got, err)
	}

	t.Run("replay", func(t *testing.T) { replayCaptured(t, c, key) })
}

// relay sits on the path between a member and the network (the position
// of anyone who sees the traffic): it forwards datagrams between one
// client and one server and keeps a copy of each.
type relay struct {
	conn   *net.UDPConn
	server netip.AddrPort

	mu       sync.Mutex
	client   netip.AddrPort
	captured []capturedDatagram
}

type capturedDatagram struct {
	to   netip.AddrPort
	data []byte
}

func newRelay(t *testing.T, server string) *relay {
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	r := &relay{conn: conn, server: netip.MustParseAddrPort(server)}
	go func() {
		buf := make([]byte, 65536)
		for {
			n, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			r.mu.Lock()
			to := r.server
			if from == r.server {
				to = r.client
			} else {
				r.client = from
			}
			r.captured = append(r.captured, capturedDatagram{to, bytes.Clone(buf[:n])})
			r.mu.Unlock()
			if to.IsValid() {
				conn.WriteToUDPAddrPort(buf[:n], to)
			}
		}
	}()
	return r
}

func (r *relay) addr() string { return r.conn.LocalAddr().String() }

// replayCaptured starts a fourth member that reaches the first one through
// a relay, makes it put, get and delete through that path, then replays
// every captured datagram to its destination, from the relay's address
// (the original source) and from another socket. Every replay is dropped
// and counted as one: nothing answers, and the value stays deleted.
func replayCaptured(t *testing.T, c *cluster, key string) {
	seed := c.nodes[0]
	r := newRelay(t, seed.udp)
	far := c.add("", &node{udp: r.addr()})
	c.waitMesh(30 * time.Second)
	if err := c.put(far, "captured", []byte("v1")); err != nil {
		t.Fatal(err)
	}
	if got, err := c.get(far, "captured"); err != nil || string(got) != "v1" {
		t.Fatalf("get through the relay: %q, %v", got, err)
	}
	if _, stderr, code := c.cli(far, "del", "captured"); code != 0 {
		t.Fatalf("del: %s", stderr)
	}
	r.mu.Lock()
	captured := append([]capturedDatagram(nil), r.captured...)
	client := r.client
	r.mu.Unlock()
	r.conn.Close()
	if len(captured) < 4 || client.String() != far.udp {
		t.Fatalf("captured %d datagrams (client %v, far %s): the member did not talk through the relay", len(captured), client, far.udp)
	}
	for _, d := range captured {
		if bytes.Contains(d.data, []byte("v1")) && bytes.Contains(d.data, []byte("captured")) {
			t.Fatal("a captured datagram shows the key and value in clear")
		}
	}
	drops := func() map[string]uint64 {
		m := map[string]uint64{}
		for _, n := range []*node{seed, far} {
			ks := c.keyStatus(n).NetworkKey
			m[n.udp] = ks.Replayed + ks.Stale
		}
		return m
	}
	before := drops()
	// From the original source address: the relay's port, now ours.
	relayAddr := r.conn.LocalAddr().(*net.UDPAddr)
	var same *net.UDPConn
	var err error
	for range 50 {
		if same, err = net.ListenUDP("udp4", relayAddr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("rebinding the relay's address: %v", err)
	}
	defer same.Close()
	other := newAttacker(t)
	want := map[string]uint64{}
	for _, d := range captured {
		if _, err := same.WriteToUDPAddrPort(d.data, d.to); err != nil {
			t.Fatal(err)
		}
		other.send(d.to.String(), d.data)
		want[d.to.String()] += 2
	}
	other.silence(3 * time.Second)
	_, err = waitFor(10*time.Second, func() error {
		after := drops()
		for addr, w := range want {
			if got := after[addr] - before[addr]; got != w {
				return errors.New(addr + ": replays dropped so far do not match the replays sent")
			}
		}
		return nil
	})
	if err != nil {
		after := drops()
		t.Errorf("%v: sent %v replays, dropped before %v, after %v", err, want, before, after)
	}
	// The replayed put did not bring the deleted value back.
	for _, n := range c.nodes {
		if got, err := c.get(n, "captured"); !isStatus(err, 404) {
			t.Errorf("%s: the deleted key is back after the replays: %q, %v", n.name, got, err)
		}
	}
	// Nothing arrived at the original source address either (the
	// members no longer send to the relay's address once far left it:
	// only answers to replays could).
	same.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 65536)
	for {
		n, from, err := same.ReadFromUDPAddrPort(buf)
		if err != nil {
			break
		}
		// Members still ping the relay address they knew far by; those
		// are queries of their own, sealed, and no answer to a replay can
		// be told from them without the key. The counters above are the
		// proof; here we only check nothing arrives in clear.
		if n > 0 && buf[0] == 'd' {
			t.Errorf("%v sent a clear datagram to the replayer: %q", from, buf[:min(n, 200)])
		}
	}
}

// TestAttacksWithoutKey: the same network without a key. An attacker who
// reaches the ports learns the members, reads values, lists the keys,
// overwrites and deletes: what the README's warning says.
func TestAttacksWithoutKey(t *testing.T) {
	t.Parallel()
	c, _ := greetingTrio(t, false)
	a := newAttacker(t)
	n := c.nodes[1]

	// It learns the members.
	r := a.ask(n.udp, krpc.MethodFindNode, krpc.Args{Has: krpc.HasTarget, Target: target("anything")})
	if r == nil || len(r.R.Nodes) < 2 {
		t.Fatalf("find_node: %+v, want the other members", r)
	}
	// It reads a value.
	r = a.ask(n.udp, krpc.MethodFetch, xArgs(mustX(map[string]any{"k": "greeting"})))
	if r == nil || !bytes.Contains(r.R.X, []byte("hello")) {
		t.Fatalf("dk_fetch: %+v, want the value", r)
	}
	// It lists the keys that exist.
	// dk_keys buckets keys by the top 10 bits of their hashes; a digest
	// that differs from the node's makes it list the bucket.
	tg := sha1.Sum([]byte("greeting"))
	bucket := int64(tg[0])<<2 | int64(tg[1]>>6)
	r = a.ask(n.udp, krpc.MethodKeys, xArgs(mustX(map[string]any{"d": int64(10), "b": []any{[]any{bucket, int64(1)}}})))
	if r == nil || !bytes.Contains(r.R.X, []byte("greeting")) {
		t.Fatalf("dk_keys: %+v, want the key names", r)
	}
	// It gets a write token from get_peers and overwrites the value on
	// every replica.
	for _, m := range c.nodes {
		tok := a.ask(m.udp, krpc.MethodGetPeers, krpc.Args{Has: krpc.HasInfoHash, InfoHash: target("x")})
		if tok == nil || len(tok.R.Token) == 0 {
			t.Fatalf("%s: no token", m.name)
		}
		r := a.ask(m.udp, krpc.MethodStore, krpc.Args{Has: krpc.HasX | krpc.HasToken, Token: tok.R.Token,
			X: recordX("greeting", []byte("pwned"), false, time.Second)})
		if r == nil || r.Y != krpc.Response {
			t.Fatalf("%s: forged dk_store: %+v", m.name, r)
		}
	}
	for _, m := range c.nodes {
		if got, err := c.get(m, "greeting"); err != nil || string(got) != "pwned" {
			t.Errorf("%s: greeting is %q, %v; the forged write should have won (no key)", m.name, got, err)
		}
	}
	// It deletes.
	for _, m := range c.nodes {
		tok := a.ask(m.udp, krpc.MethodGetPeers, krpc.Args{Has: krpc.HasInfoHash, InfoHash: target("x")})
		a.ask(m.udp, krpc.MethodStore, krpc.Args{Has: krpc.HasX | krpc.HasToken, Token: tok.R.Token,
			X: recordX("greeting", nil, true, 2*time.Second)})
	}
	for _, m := range c.nodes {
		if _, err := c.get(m, "greeting"); !isStatus(err, 404) {
			t.Errorf("%s: greeting survived a forged tombstone: %v", m.name, err)
		}
	}
	// A version 59 s ahead is accepted (within the minute of skew), but no
	// longer drags the replica's clock: the owner's next write, from a
	// node whose clock is the same, still wins.
	tok := a.ask(n.udp, krpc.MethodGetPeers, krpc.Args{Has: krpc.HasInfoHash, InfoHash: target("x")})
	a.ask(n.udp, krpc.MethodStore, krpc.Args{Has: krpc.HasX | krpc.HasToken, Token: tok.R.Token,
		X: recordX("other", []byte("x"), false, 59*time.Second)})
	for i := range 5 {
		if err := c.put(n, "owned", []byte{byte('0' + i)}); err != nil {
			t.Fatalf("the owner's write %d after a forged future version: %v", i, err)
		}
	}
	// What a network key would have said: a keyless node has no
	// network_key in its status.
	var st map[string]json.RawMessage
	if err := c.getJSON(n, "/v1/status", &st); err != nil {
		t.Fatal(err)
	}
	if _, ok := st["network_key"]; ok {
		t.Error("a keyless node reports a network key")
	}
}
