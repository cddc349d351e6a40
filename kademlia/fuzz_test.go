package kademlia

import (
	"net/netip"
	"testing"

	"github.com/dhtkit/dhtkit/krpc"
)

// FuzzReceive hands a loaded engine arbitrary datagrams from a forged
// public address that holds no token: it must not panic, must send
// nothing over MaxDatagram, and must answer a query for a dhtkit method
// with at most 3× the datagram's bytes. The rate limits are raised so
// that every input reaches the handlers.
func FuzzReceive(f *testing.F) {
	n, node, infohash, item := loaded(f, Config{RateLimit: 1e12, RateBurst: 1e12, GlobalRate: 1e12, RateBytes: 1 << 50, GlobalBytes: 1 << 50})
	for _, q := range amplificationQueries(infohash, item) {
		f.Add(q.q)
	}
	f.Add([]byte("d1:t2:aa1:y1:qe"))
	f.Add([]byte("d1:rd2:id20:abcdefghij0123456789e1:t2:aa1:y1:re"))
	from := netip.MustParseAddrPort("198.51.100.9:6881")
	f.Fuzz(func(t *testing.T, pkt []byte) {
		node.e.Receive(n.Now, from, pkt)
		var q krpc.Msg
		own := q.Decode(pkt) == nil && q.Y == krpc.Query && q.Q >= krpc.MethodStore && q.A.Has&krpc.HasToken == 0
		sent := 0
		for _, p := range node.e.Ready().Packets {
			if len(p.Data) > MaxDatagram {
				t.Fatalf("a %d-byte datagram", len(p.Data))
			}
			if p.To == from {
				sent += len(p.Data)
			}
		}
		if own && sent > 3*len(pkt) {
			t.Fatalf("%d bytes answered a %d-byte %v from an unproven source", sent, len(pkt), q.Q)
		}
	})
}
