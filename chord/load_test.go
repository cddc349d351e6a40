package chord

import (
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/kademlia"
	"github.com/dhtkit/dhtkit/store"
)

// TestLoadQuery: dk_load answers what the asked node's store holds.
func TestLoadQuery(t *testing.T) {
	net := newTestNet(t, 31)
	net.build(4, Config{})
	net.Run(time.Minute)
	for _, n := range []int{0, 1, 250} {
		st := net.Order[2].e.Store()
		for i := range n {
			if _, err := st.Put(store.Record{Key: fmt.Sprint("k", n, i), Value: []byte("vv"), Version: store.Version{Time: 1, Writer: 1}}); err != nil {
				t.Fatal(err)
			}
		}
		keys, bytes := st.Stats()
		res := net.do(net.Order[0], kademlia.Load{Addr: net.Order[2].addr})
		if res.Err != nil || res.Load.Keys != int64(keys) || res.Load.Bytes != bytes || res.ID != net.Order[2].e.ID() {
			t.Fatalf("dk_load: %v %+v from %v, want %d keys %d bytes from %v", res.Err, res.Load, res.ID, keys, bytes, net.Order[2].e.ID())
		}
	}
	if res := net.do(net.Order[0], kademlia.Load{Addr: netip.MustParseAddrPort("127.0.9.9:1")}); !errors.Is(res.Err, kademlia.ErrTimeout) {
		t.Fatalf("dk_load of nobody: %v", res.Err)
	}
}
