package chord

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/krpc"
	"github.com/dhtkit/dhtkit/replica"
)

// query encodes a query of method name with payload x (nil: none) in
// network "test".
func query(name string, x []byte) []byte { return queryTok(name, x, nil) }

// queryTok is query with a write token (nil: none).
func queryTok(name string, x, tok []byte) []byte {
	m := krpc.Msg{T: []byte("tt"), Y: krpc.Query, QName: []byte(name), Net: []byte("test")}
	m.Q = krpc.ParseMethod(m.QName)
	m.A.Has = krpc.HasID
	m.A.ID = id.FromString("asker")
	if x != nil {
		m.A.Has |= krpc.HasX
		m.A.X = x
	}
	if tok != nil {
		m.A.Has |= krpc.HasToken
		m.A.Token = tok
	}
	return m.Append(nil)
}

func TestMalformedInputDropped(t *testing.T) {
	net := newTestNet(t, 21)
	net.build(5, Config{})
	a := net.Order[0]
	from := netip.MustParseAddrPort("127.0.0.200:6881")
	tok := a.e.tokens.Issue(from.Addr(), nil) // a write must prove its source
	cases := []struct {
		name  string
		data  []byte
		reply bool // an error reply is expected
	}{
		{"empty", nil, false},
		{"garbage", []byte("\x00\xffnot bencode"), false},
		{"list", []byte("le"), false},
		{"foreign network", []byte("d1:ad2:id20:aaaaaaaaaaaaaaaaaaaae1:q4:ping1:t2:tt1:y1:qe"), false},
		{"no id", []byte("d1:ade2:nw4:test1:q4:ping1:t2:tt1:y1:qe"), true},
		{"unknown method", query("ch_nonsense", nil), true},
		{"find_successor without x", query(methodFindSuccessor, nil), true},
		{"find_successor, x not a dict", query(methodFindSuccessor, []byte("i3e")), true},
		{"find_successor, short target", query(methodFindSuccessor, []byte("d1:t3:abce")), true},
		{"leave, bad node", query(methodLeave, []byte("d1:pi1ee")), true},
		{"leave, node without address", query(methodLeave, []byte("d1:sl20:bbbbbbbbbbbbbbbbbbbbee")), true},
		{"store, bad record", queryTok("dk_store", []byte("d4:recsl1:xee"), tok), true},
		{"store, no version", queryTok("dk_store", []byte("d4:recsld1:k1:a1:ti0e1:v1:b1:wi0eeee"), tok), true},
		{"fetch, no key", query("dk_fetch", []byte("de")), true},
		{"sync without x", query("dk_sync", nil), true},
		{"sync, prefix longer than its depth", query("dk_sync", []byte("d1:ci1e1:li3e1:p2:abe")), true},
		{"unsolicited response", []byte("d2:nw4:test1:rd2:id20:aaaaaaaaaaaaaaaaaaaae1:t2:zz1:y1:re"), false},
		{"truncated", query(methodFindSuccessor, []byte("d1:t20:01234567890123456789e"))[:30], false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := a.e.Stats()
			back := net.Inject(a, from, c.data)
			if c.reply {
				var m krpc.Msg
				if len(back) != 1 || m.Decode(back[0]) != nil || m.Y != krpc.Error {
					t.Fatalf("want one error reply, got %q", back)
				}
			} else if len(back) != 0 {
				t.Fatalf("want no reply, got %q", back)
			}
			after := a.e.Stats()
			if after.Malformed+after.ForeignNet+after.Unsolicited+after.ErrorsOut == before.Malformed+before.ForeignNet+before.Unsolicited+before.ErrorsOut {
				t.Errorf("not counted as malformed, foreign, unsolicited or refused")
			}
		})
	}
	// The node still works.
	net.Run(10 * time.Second)
	if net.ringErrors() != 0 {
		t.Fatal("the ring broke after bad input")
	}
	// A well-formed step is answered.
	target := id.FromString("t")
	back := net.Inject(a, from, query(methodFindSuccessor, append([]byte("d1:t20:"), append(target[:], 'e')...)))
	var m krpc.Msg
	if len(back) != 1 || m.Decode(back[0]) != nil || m.Y != krpc.Response {
		t.Fatalf("valid find_successor not answered: %q", back)
	}
	if _, err := decodeStep(m.R.X, a.e.ID(), a.addr); err != nil {
		t.Fatalf("our own reply does not decode: %v", err)
	}
}

// FuzzPayload feeds arbitrary "x" payloads to every decoder of Chord's
// payloads and, as a query of each method, to an engine: none may panic,
// and what decodes must re-encode to something that decodes the same.
func FuzzPayload(f *testing.F) {
	self := id.FromString("self")
	from := netip.MustParseAddrPort("127.0.0.2:6881")
	node := encodeNode(krpc.NodeInfo{ID: id.FromString("n"), Addr: netip.MustParseAddrPort("127.0.0.3:1")}, self)
	f.Add(encodeX(nil, map[string]any{"d": 1, "n": []any{node}}))
	f.Add(encodeX(nil, map[string]any{"n": []any{node, self[:]}, "a": []any{node}}))
	f.Add(encodeX(nil, map[string]any{"d": 1, "n": []any{self[:]}, "l": []any{node}}))
	f.Add(encodeNeighbors(nil, neighbors{pred: krpc.NodeInfo{ID: self}}, self))
	f.Add(encodeX(nil, map[string]any{"s": []any{node}, "b": self[:], "q": []any{node}}))
	f.Add([]byte("d4:recsld1:k1:a1:ti5e1:v1:b1:wi1eeee"))
	f.Add([]byte("d1:t20:01234567890123456789e"))
	f.Add([]byte("d1:k3:keye"))
	f.Add(replica.AppendRequest(nil, replica.Request{Prefix: replica.Root, Fanout: 6}))
	f.Add(replica.AppendRequest(nil, replica.Request{Prefix: replica.Root.Child(3, 5), Entries: true, After: "key"}))
	f.Fuzz(func(t *testing.T, x []byte) {
		// A fresh engine each time: state kept across inputs (stored
		// records, contacts) would slow every later input down.
		e := New(Config{Network: "test", Rand: seededReader{R: rand.New(rand.NewPCG(1, 1))}}, testEpoch)
		if r, err := decodeStep(x, self, from); err == nil {
			again, err := decodeStep(encodeX(nil, map[string]any{"d": boolInt(r.done), "n": encodeNodes(r.nodes, self), "a": encodeNodes(r.partial, self), "l": encodeNodes(r.gone, self), "u": boolInt(r.blind)}), self, from)
			if err != nil || len(again.nodes) != len(r.nodes) || again.done != r.done || len(again.gone) != len(r.gone) || again.blind != r.blind {
				t.Fatalf("step reply does not round-trip: %v %+v %+v", err, r, again)
			}
			for _, n := range slices.Concat(r.nodes, r.gone) {
				if !n.Addr.IsValid() {
					t.Fatalf("decoded a node without a usable address: %v", n)
				}
			}
		}
		if nb, err := decodeNeighbors(x, self, from); err == nil {
			again, err := decodeNeighbors(encodeNeighbors(nil, nb, self), self, from)
			if err != nil || again.pred.ID != nb.pred.ID || len(again.succs) != len(nb.succs) || again.blind != nb.blind || len(again.lostPreds) != len(nb.lostPreds) {
				t.Fatalf("neighbours do not round-trip: %v %+v %+v", err, nb, again)
			}
		}
		if recs, err := replica.ParseRecords(x); err == nil {
			for _, r := range recs {
				if r.Version.IsZero() || r.Key == "" {
					t.Fatalf("decoded an invalid record: %+v", r)
				}
			}
		}
		for _, name := range []string{methodFindSuccessor, methodGetPredecessor, methodNotify, methodLeave, methodHint, "dk_store", "dk_fetch", "dk_sync"} {
			e.Receive(testEpoch, from, query(name, x))
			e.Ready()
		}
	})
}

var testEpoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
