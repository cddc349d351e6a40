package kademlia

import (
	"net/netip"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/krpc"
	"github.com/dhtkit/dhtkit/routing"
)

func TestLookupAsksCloserNodesAtOnce(t *testing.T) {
	// A lookup with Alpha = 3 queries in flight gets an answer naming
	// nodes closer to the target than every node it has asked. The Alpha
	// closest that have not answered are asked at once, without waiting
	// for the two farther queries still in flight; farther news waits for
	// a free slot.
	tests := []struct {
		name  string
		named []int // shared prefix lengths with the target of the nodes the answer names
		want  int   // queries sent right after the answer
	}{
		{"three closer nodes", []int{20, 21, 22}, 3},
		{"five closer nodes: the Alpha closest", []int{20, 21, 22, 23, 24}, 3},
		{"one closer node and two no better", []int{20, 1, 1}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := seededReader{R: newTestNet(t, 21).Rng}
			now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			e := New(Config{Rand: r}, now)
			target := id.Random(r)
			for i := range 3 {
				e.Table().Observe(now, id.RandomWithPrefix(r, target, 5+i), addr4(10, i), routing.Responded, 50*time.Millisecond)
			}
			e.Start(now, FindNode{Target: target})
			first := e.Ready().Packets
			if len(first) != 3 {
				t.Fatalf("%d queries at the start, want Alpha = 3", len(first))
			}
			var q krpc.Msg
			if err := q.Decode(first[0].Data); err != nil {
				t.Fatal(err)
			}
			var from id.ID
			for _, b := range e.Table().Buckets() {
				for _, c := range b.Contacts {
					if c.Addr == first[0].To {
						from = c.ID
					}
				}
			}
			ans := krpc.Msg{Y: krpc.Response, T: q.T}
			ans.R.Has = krpc.HasID | krpc.HasNodes
			ans.R.ID = from
			for i, cpl := range tt.named {
				ans.R.Nodes = append(ans.R.Nodes, krpc.NodeInfo{ID: id.RandomWithPrefix(r, target, cpl), Addr: addr4(20, i)})
			}
			e.Receive(now.Add(10*time.Millisecond), first[0].To, ans.Append(nil))
			if got := len(e.Ready().Packets); got != tt.want {
				t.Errorf("%d queries after the answer, want %d", got, tt.want)
			}
		})
	}
}

func addr4(a, b int) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, byte(a), byte(b)}), 6881)
}
