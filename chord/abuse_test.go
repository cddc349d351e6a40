package chord

import (
	"bytes"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/guard"
	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/kademlia"
	"github.com/dhtkit/dhtkit/krpc"
	"github.com/dhtkit/dhtkit/replica"
	"github.com/dhtkit/dhtkit/store"
)

// attacker and victim are addresses no test node has: RFC 5737's
// documentation ranges, labels only (nothing leaves memory).
var (
	attacker = netip.MustParseAddrPort("203.0.113.7:4000")
	victim   = netip.MustParseAddrPort("198.51.100.9:6881")
)

// TestAmplificationUnproven sends each of dhtkit's methods to a Chord node
// from a source that never proved it receives at its address, and
// measures reply bytes over query bytes: at most guard.MaxAmplification
// (3×), the same rule and code as Kademlia's. With the token of that
// small answer, the same query gets the full answer.
func TestAmplificationUnproven(t *testing.T) {
	net := newTestNet(t, 31)
	net.build(3, Config{})
	net.Run(30 * time.Second)
	big := bytes.Repeat([]byte("v"), 8<<10)
	for i := range 40 {
		if r := net.do(net.Order[0], kademlia.KVPut{Key: fmt.Sprintf("k%02d", i), Value: big}); r.Err != nil {
			t.Fatalf("put: %v", r.Err)
		}
	}
	net.Run(time.Second)
	target := net.Order[1]
	entries := replica.AppendRequest(nil, replica.Request{Prefix: replica.Root, Entries: true})
	cases := []struct {
		name string
		q    string
		x    []byte
	}{
		{"dk_fetch of a large value", "dk_fetch", replica.AppendFetch(nil, "k00")},
		{"dk_fetch of many keys", "dk_fetch", replica.AppendFetch(nil, "k01", "k02", "k03", "k04")},
		{"dk_sync entries of the whole store", replica.Method, entries},
		{"dk_store", "dk_store", replica.AppendRecords(nil, []store.Record{{Key: "forged", Value: []byte("x"), Version: store.Version{Time: uint64(net.Now.UnixMilli()) << 16, Writer: 1}}})},
		{"dk_load", "dk_load", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			q := query(c.q, c.x)
			back := net.Inject(target, attacker, q)
			out := 0
			for _, b := range back {
				out += len(b)
			}
			if ratio := float64(out) / float64(len(q)); ratio > guard.MaxAmplification {
				t.Fatalf("%d reply bytes for a %d-byte query: %.1f×, over %d×", out, len(q), ratio, guard.MaxAmplification)
			} else {
				t.Logf("%d reply bytes for a %d-byte query: %.2f×", out, len(q), ratio)
			}
			if c.q == "dk_load" {
				return // small enough to answer in full
			}
			// Asked to prove itself, with a token.
			var m krpc.Msg
			if len(back) != 1 || m.Decode(back[0]) != nil || !replica.IsAgain(&m) {
				t.Fatalf("want one answer asking again with a token, got %q", back)
			}
			tok := bytes.Clone(m.R.Token)
			again := net.Inject(target, attacker, queryTok(c.q, c.x, tok))
			if c.q == "dk_store" {
				net.Flush(target) // the answer waits for the commit
				if _, ok, _ := target.e.kvStore().Get("forged"); !ok {
					t.Fatal("a write with a valid token was not stored")
				}
				return
			}
			if len(again) != 1 || m.Decode(again[0]) != nil || m.Y != krpc.Response || replica.IsAgain(&m) {
				t.Fatalf("with a token, want the answer, got %q", again)
			}
			if len(again[0]) <= guard.MaxAmplification*len(q) {
				t.Fatalf("the full answer (%d bytes) is no larger than the bound: the case tests nothing", len(again[0]))
			}
		})
	}
	if got := target.e.Stats().Drops[guard.DropUnproven]; got == 0 {
		t.Error("no reply counted as dropped for lack of proof")
	}
	if _, ok, _ := target.e.kvStore().Get("forged"); !ok {
		t.Error("the tokened write is gone")
	}
}

// TestByteBudgetChord floods a Chord node with ring lookups from one
// spoofed address: the replies to it stop at the source's byte budget
// (RateBytes, burst twice that), and the rest are dropped and counted.
func TestByteBudgetChord(t *testing.T) {
	net := newTestNet(t, 32)
	net.build(5, Config{Guard: guard.Config{RateLimit: -1, RateBytes: 4 << 10}})
	net.Run(30 * time.Second)
	target := net.Order[2]
	sent := 0
	for i := range 500 {
		x := encodeX(nil, map[string]any{"t": fmt.Sprintf("%020d", i)}) // a 20-byte target
		for _, b := range net.Inject(target, victim, query(methodFindSuccessor, x)) {
			sent += len(b)
		}
	}
	if limit := 2 * (4 << 10); sent > limit {
		t.Fatalf("%d bytes sent to the victim within one virtual instant, over the burst of %d", sent, limit)
	}
	if sent == 0 {
		t.Fatal("nothing answered: the budget should allow a burst")
	}
	if got := target.e.Stats().Drops[guard.DropByteBudget]; got == 0 {
		t.Error("no reply counted as over the byte budget")
	}
}

// TestTokenHandshakeOnPut checks that a writer the replicas never heard
// from still writes: its dk_store is answered with a token (nothing
// stored), and asked again with it.
func TestTokenHandshakeOnPut(t *testing.T) {
	net := newTestNet(t, 33)
	net.build(40, Config{})
	net.Run(time.Minute)
	asked := uint64(0)
	for i := range 20 {
		key := fmt.Sprintf("hs-%d", i)
		w := net.Order[i]
		if r := net.do(w, kademlia.KVPut{Key: key, Value: []byte(key)}); r.Err != nil {
			t.Fatalf("put %s from %v: %v", key, w.addr, r.Err)
		}
		if r := net.do(net.Order[39-i], kademlia.KVGet{Key: key}); r.Err != nil || r.Record == nil || string(r.Record.Value) != key {
			t.Fatalf("get %s: %v", key, r.Err)
		}
	}
	for _, tn := range net.Order {
		asked += tn.e.Stats().Drops[guard.DropUnproven]
	}
	if asked == 0 {
		t.Fatal("no write or read needed a token: the test does not exercise the handshake")
	}
	t.Logf("%d answers asked for a token", asked)
}

// TestForgedLeaveIgnored sends a node a goodbye that claims its
// successor's id from another address, naming a successor list of the
// forger's: the node keeps its successor and its list, and remembers the
// successor still. The successor's own goodbye, from its address, is
// taken (TestLeaverIsNotProbed).
func TestForgedLeaveIgnored(t *testing.T) {
	n := newTestNet(t, 41)
	n.build(5, Config{})
	if !n.RunUntil(5*time.Minute, func() bool { return n.listErrors() == 0 }) {
		t.Fatalf("setup: %d nodes have a wrong list", n.listErrors())
	}
	a := n.Order[0]
	succ, _ := a.e.ring.successor()
	before := slices.Clone(a.e.Successors())
	fake := krpc.NodeInfo{ID: id.AddPow2(succ.ID, 3), Addr: attacker}
	m := krpc.Msg{T: []byte("tt"), Y: krpc.Query, Net: []byte("test")}
	setMethod(&m, mLeave)
	m.A.Has = krpc.HasID | krpc.HasX
	m.A.ID = succ.ID
	m.A.X = encodeNeighbors(nil, neighbors{succs: []krpc.NodeInfo{fake}}, succ.ID)
	n.Inject(a, attacker, m.Append(nil))
	if after := a.e.Successors(); !sameIDs(before, after) {
		t.Fatalf("a forged goodbye changed the successor list from %v to %v", before, after)
	}
	if _, ok := a.e.ring.addrOf(succ.ID); !ok {
		t.Fatal("a forged goodbye made the node forget its successor")
	}
}

// TestForgedNotifyPushesNothing sends a node a ch_notify from a forged
// source (a victim's address) claiming an id just before the node, so
// that it claims nearly all of the node's range. The node takes the
// claim, as Chord does, but hands the range's records to no one until
// that address answers it: no dk_store reaches the victim. What the
// node itself sends there at once is its answer, the predecessor check
// and a hint (hint.go), a few small datagrams, as for any ring method
// (the per-source byte budgets bound those). Before, the hand-over sent
// the range's records at once, up to replica.PushWindow datagrams of
// them.
func TestForgedNotifyPushesNothing(t *testing.T) {
	n := newTestNet(t, 43)
	n.build(5, Config{})
	if !n.RunUntil(5*time.Minute, func() bool { return n.listErrors() == 0 }) {
		t.Fatalf("setup: %d nodes have a wrong list", n.listErrors())
	}
	big := bytes.Repeat([]byte("v"), 1<<10)
	for i := range 60 {
		if r := n.do(n.Order[i%5], kademlia.KVPut{Key: fmt.Sprintf("k%02d", i), Value: big}); r.Err != nil {
			t.Fatalf("put: %v", r.Err)
		}
	}
	n.Run(time.Second)
	a := n.Order[0]
	pred, _ := a.e.Predecessor()
	forged := a.e.ID()
	forged[id.Len-1]-- // between the predecessor and the node, unless they are 1 apart
	held := 0
	_ = a.e.kvStore().Each(func(rec store.Record) bool {
		if id.Between(rec.Target(), pred.ID, forged) {
			held++
		}
		return true
	})
	if held < 5 {
		t.Fatalf("setup: the node holds %d records of the range the forged id claims", held)
	}
	m := krpc.Msg{T: []byte("nn"), Y: krpc.Query, Net: []byte("test")}
	setMethod(&m, mNotify)
	m.A.Has = krpc.HasID
	m.A.ID = forged
	q := m.Append(nil)
	fromA, fromAn, stores, all := 0, 0, 0, 0
	start := n.Now
	seen := func(from netip.AddrPort, data []byte) {
		var got krpc.Msg
		if got.Decode(data) == nil && methodOf(&got) == mStore {
			stores++
		}
		if from == a.addr && n.Now.Sub(start) < time.Second {
			fromA += len(data)
			fromAn++
		}
		all += len(data)
	}
	n.Drop = func(from, to netip.AddrPort, data []byte) bool {
		if to != attacker {
			return false
		}
		seen(from, data)
		return true
	}
	for _, b := range n.Inject(a, attacker, q) {
		seen(a.addr, b)
	}
	n.Run(30 * time.Second)
	if stores > 0 {
		t.Fatalf("%d dk_store datagrams reached the forged address", stores)
	}
	if fromAn > 4 || fromA > 4*128 {
		t.Fatalf("the node sent the forged address %d datagrams, %d bytes, within a second of a %d-byte ch_notify; want at most 4 small ones", fromAn, fromA, len(q))
	}
	t.Logf("a %d-byte forged ch_notify claiming %d records: the node sent %d datagrams, %d bytes there within a second, no records; the ring's probes of the lost address %d bytes in 30 s", len(q), held, fromAn, fromA, all-fromA)
}
