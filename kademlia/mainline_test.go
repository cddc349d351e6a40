package kademlia

import (
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/krpc"
	"github.com/dhtkit/dhtkit/routing"
	"github.com/dhtkit/dhtkit/store"
)

// A Mainline node is a standard BEP 5 node: each of dhtkit's own methods
// gets error 204 and stores nothing, while the same dk_store, from the same
// (trusted) peer, is applied by a private node: the test can fail.
func TestMainlineRefusesDhtkitMethods(t *testing.T) {
	var peer id.ID
	copy(peer[:], "abcdefghij0123456789")
	from := netip.MustParseAddrPort("127.1.1.1:1234")
	rec := store.Record{Key: "greeting", Value: []byte("forged"), Version: store.Version{Time: 1 << 16, Writer: 7},
		Expires: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	x := map[krpc.Method][]byte{
		krpc.MethodStore:  encodeRecords(nil, "recs", []store.Record{rec}),
		krpc.MethodFetch:  encodeX(nil, map[string]any{"k": "greeting"}),
		krpc.MethodSync:   encodeX(nil, map[string]any{"d": int64(0), "b": []any{}}),
		krpc.MethodBye:    nil,
		krpc.MethodListen: encodeX(nil, map[string]any{"k": "greeting"}),
		krpc.MethodNotify: encodeRecords(nil, "recs", []store.Record{rec}),
	}
	query := func(net string, m krpc.Method) []byte {
		var q krpc.Msg
		q.Y, q.Q, q.T = krpc.Query, m, []byte("aa")
		q.A.Has = krpc.HasID
		q.A.ID = peer
		if net != "" {
			q.Net = []byte(net)
		}
		if b := x[m]; b != nil {
			q.A.Has |= krpc.HasX
			q.A.X = b
		}
		return q.Append(nil)
	}
	for m := krpc.MethodStore; m < krpc.NumMethods; m++ {
		t.Run(m.String(), func(t *testing.T) {
			n := newTestNet(t, 1)
			node := n.add(Config{Network: "mainline"})
			back := n.Inject(node, from, query("", m))
			if len(back) != 1 || !strings.Contains(string(back[0]), "i204e") {
				t.Fatalf("replies %q, want one error 204", back)
			}
			if keys, _ := node.e.Store().Stats(); keys != 0 {
				t.Fatalf("the Mainline node stores %d keys", keys)
			}
		})
	}
	// Chord's methods are unknown to a Kademlia node: 204 as well.
	for _, m := range []string{"ch_find_successor", "ch_get_predecessor", "ch_notify", "ch_leave", "ch_hint"} {
		n := newTestNet(t, 1)
		node := n.add(Config{Network: "mainline"})
		pkt := "d1:ad2:id20:" + string(peer[:]) + "e1:q" + strconv.Itoa(len(m)) + ":" + m + "1:t2:aa1:y1:qe"
		if back := n.Inject(node, from, []byte(pkt)); len(back) != 1 || !strings.Contains(string(back[0]), "i204e") {
			t.Errorf("%s: replies %q, want one error 204", m, back)
		}
	}
	// The control: a private node trusts a contact that has answered it
	// at that address, and applies the same write.
	n := newTestNet(t, 1)
	node := n.add(Config{})
	node.e.table.Observe(n.Now, peer, from, routing.Responded, time.Millisecond)
	if c, ok := node.e.table.Get(peer); !ok || !c.Responded {
		t.Fatal("the control needs a responded contact in the table")
	}
	back := n.Inject(node, from, query("test", krpc.MethodStore))
	n.RunUntil(time.Second, func() bool { keys, _ := node.e.Store().Stats(); return keys == 1 })
	if keys, _ := node.e.Store().Stats(); keys != 1 || len(back) > 0 && strings.Contains(string(back[0]), "i204e") {
		t.Fatalf("the private node did not apply the write (keys %d, reply %q)", keys, back)
	}
}

// Under a network key (Config.Sender reports the authenticated sender), a
// direct write ("o") is applied only when its KRPC id and its version's
// writer are the sender's; a repair ("o" absent) may carry any writer's
// record.
func TestDirectWriteWriterChecked(t *testing.T) {
	var peer, other id.ID
	copy(peer[:], "abcdefghij0123456789")
	copy(other[:], "zzzzzzzzzz0123456789")
	from := netip.MustParseAddrPort("127.1.1.1:1234")
	rec := func(key string, writer id.ID) store.Record {
		return store.Record{Key: key, Value: []byte("v"), Version: store.Version{Time: 1 << 16, Writer: store.WriterID(writer)},
			Expires: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	}
	tests := []struct {
		name    string
		claimed id.ID // the KRPC id
		x       []byte
		applied bool
	}{
		{"own write", peer, encodeOwnWrite(nil, rec("a", peer)), true},
		{"own write naming another writer", peer, encodeOwnWrite(nil, rec("b", other)), false},
		{"own write claiming another id", other, encodeOwnWrite(nil, rec("c", other)), false},
		{"repair of another writer's record", peer, encodeRecords(nil, "recs", []store.Record{rec("d", other)}), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := newTestNet(t, 1)
			node := n.add(Config{Sender: func() (id.ID, bool) { return peer, true }})
			node.e.table.Observe(n.Now, tc.claimed, from, routing.Responded, time.Millisecond)
			var q krpc.Msg
			q.Y, q.Q, q.T, q.Net = krpc.Query, krpc.MethodStore, []byte("aa"), []byte("test")
			q.A.Has = krpc.HasID | krpc.HasX
			q.A.ID, q.A.X = tc.claimed, tc.x
			back := n.Inject(node, from, q.Append(nil))
			n.RunUntil(time.Second, func() bool { keys, _ := node.e.Store().Stats(); return keys > 0 })
			keys, _ := node.e.Store().Stats()
			if got := keys == 1; got != tc.applied {
				t.Fatalf("applied %v, want %v (replies %q)", got, tc.applied, back)
			}
			if !tc.applied && (len(back) != 1 || !strings.Contains(string(back[0]), "not the node that sent")) {
				t.Fatalf("replies %q, want an error naming the writer", back)
			}
		})
	}
}
