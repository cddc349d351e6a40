package replica_test

// The replication layer's tests against both engines: one in-memory
// network with virtual time drives Kademlia or Chord through the driver
// contract they share (Receive, Start, Tick, Ready, Deadline), and the
// same tests run on each. No sockets, no sleeps.

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/chord"
	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/internal/enginetest"
	"github.com/dhtkit/dhtkit/kademlia"
	"github.com/dhtkit/dhtkit/krpc"
	"github.com/dhtkit/dhtkit/store"
)

// scaled reports whether the tests run at scale (-scale, the flag of the
// package's internal tests, which share the test binary).
func scaled() bool {
	f := flag.Lookup("scale")
	return f != nil && f.Value.String() == "true"
}

// engine is the driver contract both protocol engines implement.
type engine interface {
	Receive(now time.Time, from netip.AddrPort, p []byte)
	Start(now time.Time, op kademlia.Op) kademlia.OpID
	Tick(now time.Time)
	Ready() kademlia.Ready
	Deadline() time.Time
	ID() id.ID
	Store() store.Store
	Cancel(now time.Time, op kademlia.OpID)
	Listeners() int
}

// nodeConfig is what a test sets of a node, whatever its protocol.
type nodeConfig struct {
	replicas  int
	alone     bool
	bootstrap []netip.AddrPort
	store     store.Store // nil: the engine's own, in memory
	downFor   time.Duration
}

// protocol makes engines of one protocol and knows where its records
// belong.
type protocol struct {
	name string
	make func(cfg nodeConfig, rnd io.Reader, now time.Time) engine
	// replicas returns the n live nodes that should hold target.
	replicas func(live []*node, target id.ID, n int) []*node
}

var protocols = []protocol{
	{
		name: "kademlia",
		make: func(c nodeConfig, rnd io.Reader, now time.Time) engine {
			return kademlia.New(kademlia.Config{Network: "test", Rand: rnd, Replicas: c.replicas, Alone: c.alone, Bootstrap: c.bootstrap, Store: c.store, DownFor: c.downFor}, now)
		},
		replicas: func(live []*node, t id.ID, n int) []*node {
			live = slices.Clone(live)
			slices.SortFunc(live, func(a, b *node) int { return id.CompareDistance(t, a.e.ID(), b.e.ID()) })
			return live[:min(n, len(live))]
		},
	},
	{
		name: "chord",
		make: func(c nodeConfig, rnd io.Reader, now time.Time) engine {
			return chord.New(chord.Config{Network: "test", Rand: rnd, Replicas: c.replicas, Alone: c.alone, Bootstrap: c.bootstrap, Store: c.store, DownFor: c.downFor}, now)
		},
		replicas: func(live []*node, t id.ID, n int) []*node {
			live = slices.Clone(live)
			// Ring order from t: the successor of t first.
			slices.SortFunc(live, func(a, b *node) int {
				return id.Compare(id.RingDistance(t, a.e.ID()), id.RingDistance(t, b.e.ID()))
			})
			return live[:min(n, len(live))]
		},
	},
}

// forEach runs a test against each protocol.
func forEach(t *testing.T, test func(t *testing.T, p protocol)) {
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) { test(t, p) })
	}
}

type node struct {
	addr    netip.AddrPort
	e       engine
	results map[kademlia.OpID]kademlia.Result
	events  []heard // of its KVListen operations, values copied
	// listening counts the Listening events of each KVListen.
	listening map[kademlia.OpID]int
	down      bool
}

// heard is an event and when the node handed it out.
type heard struct {
	kademlia.Event
	at time.Time
}

func (nd *node) Engine() enginetest.Engine { return nd.e }
func (nd *node) Addr() netip.AddrPort      { return nd.addr }
func (nd *node) IsDown() bool              { return nd.down }

func (nd *node) Drain(now time.Time, send func(netip.AddrPort, []byte)) {
	rd := nd.e.Ready()
	for _, p := range rd.Packets {
		send(p.To, p.Data)
	}
	for _, r := range rd.Results {
		nd.results[r.Op] = r
	}
	for _, ev := range rd.Events {
		if ev.Listening {
			if nd.listening == nil {
				nd.listening = make(map[kademlia.OpID]int)
			}
			nd.listening[ev.Op]++
			continue
		}
		ev.Record.Value = bytes.Clone(ev.Record.Value)
		nd.events = append(nd.events, heard{ev, now})
	}
}

// network is the shared in-memory network with virtual time
// (enginetest.Net), delivering a batch of datagrams before each Ready as
// the UDP runtime does, with one protocol's nodes on it.
type network struct {
	*enginetest.Net[*node]
	p protocol
	// tap, when set, sees every datagram sent.
	tap func(from, to netip.AddrPort, data []byte)
}

// partition cuts the network into the given sides; none heals it.
func (n *network) partition(sides ...[]*node) {
	n.Cut = nil
	if len(sides) == 0 {
		return
	}
	side := make(map[netip.AddrPort]int)
	for i, s := range sides {
		for _, nd := range s {
			side[nd.addr] = i
		}
	}
	n.Cut = func(from, to netip.AddrPort) bool { return side[from] != side[to] }
}

func newNetwork(t testing.TB, p protocol, seed uint64) *network {
	n := &network{Net: enginetest.NewNet[*node](t, seed, kademlia.MaxDatagram), p: p}
	n.Batch = true
	n.Drop = func(from, to netip.AddrPort, data []byte) bool {
		if n.tap != nil {
			n.tap(from, to, data)
		}
		return false
	}
	return n
}

func (n *network) add(cfg nodeConfig) *node {
	return n.Add(&node{addr: n.NextAddr(), e: n.p.make(cfg, n.NewRand(), n.Now), results: make(map[kademlia.OpID]kademlia.Result)})
}

// build starts size nodes, each joining through the first, and lets the
// network settle.
func (n *network) build(size int, cfg nodeConfig) {
	first := n.add(cfg)
	for range size - 1 {
		c := cfg
		c.bootstrap = []netip.AddrPort{first.addr}
		n.add(c)
	}
	n.Run(2 * time.Minute)
}

func (n *network) do(nd *node, op kademlia.Op) kademlia.Result {
	n.T.Helper()
	o := nd.e.Start(n.Now, op)
	n.Flush(nd)
	if !n.RunUntil(10*time.Minute, func() bool { _, ok := nd.results[o]; return ok }) {
		n.T.Fatalf("%T did not finish within 10 virtual minutes", op)
	}
	return nd.results[o]
}

func (n *network) live() []*node {
	var out []*node
	for _, nd := range n.Order {
		if !nd.down {
			out = append(out, nd)
		}
	}
	return out
}

// holders returns the live nodes whose store holds key.
func (n *network) holders(key string) []*node {
	var out []*node
	for _, nd := range n.live() {
		if _, ok, _ := nd.e.Store().Get(key); ok {
			out = append(out, nd)
		}
	}
	return out
}

func TestEnginesPutGetDelete(t *testing.T) {
	forEach(t, func(t *testing.T, p protocol) {
		n := newNetwork(t, p, 1)
		n.build(12, nodeConfig{replicas: 3})
		a, b := n.Order[2], n.Order[9]
		r := n.do(a, kademlia.KVPut{Key: "greeting", Value: []byte("hello")})
		if r.Err != nil || r.Acks < 2 {
			t.Fatalf("put: acks %d, %v", r.Acks, r.Err)
		}
		n.Run(time.Second)
		want := p.replicas(n.live(), id.FromString("greeting"), 3)
		if got := n.holders("greeting"); len(got) != 3 || !enginetest.SameSet(got, want) {
			t.Errorf("the value is on %d nodes, want exactly its 3 replicas", len(got))
		}
		g := n.do(b, kademlia.KVGet{Key: "greeting"})
		if g.Err != nil || g.Record == nil || string(g.Record.Value) != "hello" || g.Partial || g.Version != r.Version {
			t.Fatalf("get: %+v, partial %v, %v", g.Record, g.Partial, g.Err)
		}
		if d := n.do(b, kademlia.KVPut{Key: "greeting", Delete: true}); d.Err != nil {
			t.Fatalf("delete: %v", d.Err)
		}
		if g := n.do(a, kademlia.KVGet{Key: "greeting"}); !errors.Is(g.Err, kademlia.ErrNotFound) {
			t.Fatalf("get after delete: %v, want ErrNotFound", g.Err)
		}
		// A replica that lost its copy is repaired by the next read.
		r2 := n.do(a, kademlia.KVPut{Key: "read-repaired", Value: []byte("v")})
		n.Run(time.Second)
		lost := p.replicas(n.live(), id.FromString("read-repaired"), 3)[1]
		if err := lost.e.Store().Remove("read-repaired", r2.Version); err != nil {
			t.Fatal(err)
		}
		n.do(b, kademlia.KVGet{Key: "read-repaired"})
		n.Run(time.Second)
		if _, ok, _ := lost.e.Store().Get("read-repaired"); !ok {
			t.Error("a get did not repair the replica that had lost the value")
		}
	})
}

// TestEnginesHonestQuorum: the write quorum counts from the configured
// replicas. A node alone refuses a put with ErrQuorum, writing nothing,
// unless it was asked to be a network of one; a get that hears fewer
// replicas than the read quorum is partial.
func TestEnginesHonestQuorum(t *testing.T) {
	forEach(t, func(t *testing.T, p protocol) {
		n := newNetwork(t, p, 2)
		solo := n.add(nodeConfig{replicas: 3})
		r := n.do(solo, kademlia.KVPut{Key: "k", Value: []byte("v")})
		if !errors.Is(r.Err, kademlia.ErrQuorum) || !strings.Contains(r.Err.Error(), "found 1 of the 3 replicas") {
			t.Fatalf("put alone, not asked to be: %v, want ErrQuorum naming 1 of 3", r.Err)
		}
		if keys, _ := solo.e.Store().Stats(); keys != 0 {
			t.Fatalf("a refused put left %d records", keys)
		}
		one := newNetwork(t, p, 3)
		alone := one.add(nodeConfig{replicas: 3, alone: true})
		if r := one.do(alone, kademlia.KVPut{Key: "k", Value: []byte("v")}); r.Err != nil || r.Acks != 1 {
			t.Fatalf("put on a network of one, as asked: acks %d, %v", r.Acks, r.Err)
		}
		// Of 5 nodes, 4 die: the one left finds no quorum and refuses, it
		// was not asked to be alone; its reads are partial.
		m := newNetwork(t, p, 4)
		m.build(5, nodeConfig{replicas: 3})
		if r := m.do(m.Order[0], kademlia.KVPut{Key: "k", Value: []byte("v")}); r.Err != nil {
			t.Fatalf("put with every node up: %v", r.Err)
		}
		m.Run(time.Second)
		for _, nd := range m.Order[1:] {
			nd.down = true
		}
		m.Run(2 * time.Minute)
		if g := m.do(m.Order[0], kademlia.KVGet{Key: "k"}); g.Err == nil && !g.Partial {
			t.Errorf("get with 1 of 5 nodes up answered as complete")
		}
		if r := m.do(m.Order[0], kademlia.KVPut{Key: "k2", Value: []byte("v")}); !errors.Is(r.Err, kademlia.ErrQuorum) {
			t.Errorf("put with 1 of 5 nodes up: %v, want ErrQuorum", r.Err)
		}
	})
}

// TestEnginesPartitionQuorum: 6 nodes, 3 replicas, split 2|4 and 3|3.
// Each side knows the nodes of the other exist (they are in its table,
// bad or not), so a key's replica set is the same seen from both sides:
// the side that holds a majority of it acknowledges a put, the other
// refuses it with ErrQuorum, writing nothing, and its reads are partial.
// Kademlia only: Chord forgets a successor that fails (see the quorum
// rule in docs/architecture.md).
func TestEnginesPartitionQuorum(t *testing.T) {
	p := protocols[0]
	for _, split := range []int{2, 3} {
		t.Run(fmt.Sprintf("%d|%d", split, 6-split), func(t *testing.T) {
			n := newNetwork(t, p, 10+uint64(split))
			n.build(6, nodeConfig{replicas: 3})
			sides := [][]*node{n.Order[:split], n.Order[split:]}
			n.partition(sides...)
			n.Run(time.Minute)
			acked, refused := 0, 0
			for k := range 24 {
				key := fmt.Sprintf("key-%d", k)
				set := p.replicas(n.Order, id.FromString(key), 3)
				in := make([]int, 2)
				for s, side := range sides {
					for _, x := range set {
						if slices.Contains(side, x) {
							in[s]++
						}
					}
				}
				for s, side := range sides {
					w := side[k%len(side)]
					r := n.do(w, kademlia.KVPut{Key: key, Value: []byte{byte(s)}})
					if in[s] >= 2 {
						if r.Err != nil || r.Acks < 2 {
							t.Fatalf("%s: side %d holds %d of its 3 replicas, put: acks %d, %v", key, s, in[s], r.Acks, r.Err)
						}
						acked++
						continue
					}
					if !errors.Is(r.Err, kademlia.ErrQuorum) || !strings.Contains(r.Err.Error(), fmt.Sprintf("found %d of the 3 replicas", in[s])) {
						t.Fatalf("%s: side %d holds %d of its 3 replicas, put: %v, want ErrQuorum naming %d of 3", key, s, in[s], r.Err, in[s])
					}
					refused++
					for _, x := range side {
						if _, ok, _ := x.e.Store().Get(key); ok {
							t.Fatalf("%s: a refused put left a record on %v", key, x.addr)
						}
					}
				}
				for s, side := range sides {
					g := n.do(side[0], kademlia.KVGet{Key: key})
					switch {
					case in[s] < 2 && g.Err == nil && !g.Partial:
						t.Fatalf("%s: side %d holds %d of its 3 replicas, get answered as complete", key, s, in[s])
					case in[s] >= 2 && (g.Err != nil || g.Partial || g.Record == nil || !bytes.Equal(g.Record.Value, []byte{byte(s)})):
						t.Fatalf("%s: side %d holds %d of its 3 replicas, get: %+v, want its own write, complete", key, s, in[s], g)
					}
				}
			}
			if acked != 24 || refused != 24 {
				t.Fatalf("%d puts acknowledged, %d refused, want one side each for each of 24 keys", acked, refused)
			}
		})
	}
}

// TestEnginesOneDown: 3 nodes, 3 replicas, one dead: every put is still
// acknowledged by the 2 of 3 left, and every get is complete.
func TestEnginesOneDown(t *testing.T) {
	forEach(t, func(t *testing.T, p protocol) {
		n := newNetwork(t, p, 21)
		n.build(3, nodeConfig{replicas: 3})
		n.Order[2].down = true
		n.Run(time.Minute)
		for k := range 10 {
			key := fmt.Sprintf("one-down-%d", k)
			w := n.Order[k%2]
			if r := n.do(w, kademlia.KVPut{Key: key, Value: []byte("v")}); r.Err != nil || r.Acks != 2 {
				t.Fatalf("%s: put with 2 of 3 up: acks %d, %v", key, r.Acks, r.Err)
			}
			if g := n.do(n.Order[1-k%2], kademlia.KVGet{Key: key}); g.Err != nil || g.Partial || g.Record == nil {
				t.Fatalf("%s: get with 2 of 3 up: %+v", key, g)
			}
		}
	})
}

// TestEnginesRepairAtScale: 5 nodes, 3 replicas, 5000 keys (100,000 with
// -scale); one node dies; every key is back on its 3 live
// replicas within 2 minutes, every datagram within MaxDatagram. Then,
// with nothing to repair, the dk_sync traffic of a sync interval does not
// grow with the data held.
func TestEnginesRepairAtScale(t *testing.T) {
	keys := 5000
	if scaled() {
		keys = 100000
	}
	forEach(t, func(t *testing.T, p protocol) {
		n := newNetwork(t, p, 5)
		n.build(5, nodeConfig{replicas: 3})
		val := make([]byte, 100)
		batches := make(map[*node][]store.Record)
		name := func(i int) string { return fmt.Sprintf("key-%07d", i) }
		for i := range keys {
			r := store.Record{Key: name(i), Value: val, Version: store.Version{Time: uint64(n.Now.UnixMilli()) << 16, Writer: uint64(i + 1)}}
			for _, nd := range p.replicas(n.Order, id.FromString(r.Key), 3) {
				batches[nd] = append(batches[nd], r)
			}
		}
		for nd, recs := range batches {
			if _, err := nd.e.Store().PutAll(recs); err != nil {
				t.Fatal(err)
			}
		}
		short := func() int {
			c := 0
			for i := range keys {
				for _, nd := range p.replicas(n.live(), id.FromString(name(i)), 3) {
					if _, ok, _ := nd.e.Store().Get(name(i)); !ok {
						c++
						break
					}
				}
			}
			return c
		}
		n.Order[2].down = true
		start := n.Now
		for {
			n.Run(5 * time.Second)
			if short() == 0 {
				break
			}
			if n.Now.Sub(start) > 2*time.Minute {
				t.Fatalf("2 minutes after the kill, %d of %d keys lack a copy on their 3 live replicas", short(), keys)
			}
		}
		t.Logf("%d keys back on their 3 live replicas %v after the kill", keys, n.Now.Sub(start))

		n.Run(time.Minute)
		syncBytes := 0
		asked := make(map[string]bool)
		n.tap = func(from, to netip.AddrPort, data []byte) {
			var m krpc.Msg
			if m.Decode(data) != nil {
				return
			}
			switch {
			case m.Y == krpc.Query && m.Q == krpc.MethodSync:
				asked[from.String()+string(m.T)] = true
				syncBytes += len(data)
			case m.Y != krpc.Query && asked[to.String()+string(m.T)]:
				syncBytes += len(data)
			}
		}
		n.Run(15 * time.Second) // one SyncInterval
		n.tap = nil
		var held int64
		for _, nd := range n.live() {
			_, b := nd.e.Store().Stats()
			held += b
		}
		t.Logf("in sync, one interval: %d bytes of dk_sync for %d bytes held (%.2e)", syncBytes, held, float64(syncBytes)/float64(held))
		// About 700 bytes a pair of replicas that agree, a few KiB where
		// their ranges are not prefix-aligned (Chord), whatever they hold.
		if pairs := 4 * 3; syncBytes == 0 || syncBytes > pairs*8192 {
			t.Errorf("an idle interval sent %d bytes of dk_sync, want at most 8 KiB for each of %d pairs", syncBytes, pairs)
		}
	})
}

// counting is a store that counts its writes.
type counting struct {
	store.Store
	puts, putAlls, records int
}

func (c *counting) Put(r store.Record) (bool, error) { c.puts++; return c.Store.Put(r) }
func (c *counting) PutAll(rs []store.Record) ([]bool, error) {
	c.putAlls++
	c.records += len(rs)
	return c.Store.PutAll(rs)
}

// TestEnginesGroupCommit: writes that arrive together are committed
// together, one PutAll (one fsync on disk) for the batch, and each is
// acknowledged only after that commit.
func TestEnginesGroupCommit(t *testing.T) {
	forEach(t, func(t *testing.T, p protocol) {
		n := newNetwork(t, p, 6)
		counted := make([]*counting, 3)
		first := n.add(nodeConfig{replicas: 3})
		for i := range counted {
			counted[i] = &counting{Store: store.NewMemory(store.Config{})}
			n.add(nodeConfig{replicas: 3, store: counted[i], bootstrap: []netip.AddrPort{first.addr}})
		}
		n.Run(2 * time.Minute)
		for _, c := range counted {
			*c = counting{Store: c.Store}
		}
		// 40 puts started in the same instant through the first node.
		ops := make(map[kademlia.OpID]bool)
		for i := range 40 {
			ops[first.e.Start(n.Now, kademlia.KVPut{Key: fmt.Sprint("batch-", i), Value: []byte("v")})] = true
		}
		n.Flush(first)
		n.RunUntil(time.Minute, func() bool {
			for op := range ops {
				if _, ok := first.results[op]; !ok {
					return false
				}
			}
			return true
		})
		for op := range ops {
			if r, ok := first.results[op]; !ok || r.Err != nil {
				t.Fatalf("put %d: done %v, %v", op, ok, r.Err)
			}
		}
		for i, c := range counted {
			if c.puts != 0 {
				t.Errorf("replica %d stored %d writes one by one", i, c.puts)
			}
			if c.records > 0 && c.putAlls*4 > c.records {
				t.Errorf("replica %d committed %d records in %d commits: not grouped", i, c.records, c.putAlls)
			}
		}
	})
}
