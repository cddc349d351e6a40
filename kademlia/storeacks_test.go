package kademlia

import (
	"net/netip"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/krpc"
	"github.com/dhtkit/dhtkit/store"
)

// TestStoreAcksEachRecord: a dk_store of several records, one of them
// too far ahead of the replica's clock, stores the others and answers
// 1, 0, 1: each acknowledgement at its record's place.
func TestStoreAcksEachRecord(t *testing.T) {
	n := newTestNet(t, 18)
	node := n.addAt(netip.MustParseAddrPort("203.0.113.1:6881"), Config{})
	from := netip.MustParseAddrPort("198.51.100.30:6881")
	writer := store.WriterID(id.FromString("relayed"))
	now := node.e.clock.Now(n.Now).Time
	recs := []store.Record{
		{Key: "acks-a", Value: []byte("a"), Version: store.Version{Time: now, Writer: writer}},
		{Key: "acks-b", Value: []byte("b"), Version: store.Version{Time: now + uint64((365*24*time.Hour).Milliseconds())<<16, Writer: writer}},
		{Key: "acks-c", Value: []byte("c"), Version: store.Version{Time: now, Writer: writer}},
	}
	m := krpc.Msg{Y: krpc.Query, Q: krpc.MethodStore, T: []byte("st"), Net: []byte("test")}
	m.A.Has, m.A.ID = krpc.HasID|krpc.HasX|krpc.HasToken, id.FromString("relay")
	m.A.X = encodeRecords(nil, "recs", recs)
	m.A.Token = node.e.tokens.Issue(from.Addr(), nil)
	node.e.Receive(n.Now, from, m.Append(nil))
	rd := node.e.Ready()
	var answer []byte
	for _, p := range rd.Packets {
		var r krpc.Msg
		if p.To == from && r.Decode(p.Data) == nil && r.Y == krpc.Response {
			answer = r.R.X
		}
	}
	if got, want := string(answer), "d2:okli1ei0ei1eee"; got != want {
		t.Fatalf("answer %q, want %q", got, want)
	}
	for i, r := range recs {
		_, ok, err := node.e.kvStore().Get(r.Key)
		if err != nil || ok != (i != 1) {
			t.Errorf("%s: held %v (%v), want %v", r.Key, ok, err, i != 1)
		}
	}
}
