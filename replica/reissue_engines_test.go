package replica_test

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/chord"
	"github.com/dhtkit/dhtkit/kademlia"
	"github.com/dhtkit/dhtkit/store"
)

// reissues is a node's count of puts issued again (Stats.Reissues).
func reissues(nd *node) uint64 {
	switch e := nd.e.(type) {
	case *kademlia.Engine:
		return e.Stats().Reissues
	case *chord.Engine:
		return e.Stats().Reissues
	}
	panic("reissues: an engine of neither protocol")
}

// A delete issued after a put was acknowledged wins over it, although
// the deleting node's clock is 20 s behind the putting node's: the
// replicas, which kept the put's newer version, say so, and the delete
// goes again past it. Without that, the delete was acknowledged ("the
// replicas hold something newer") and lost: the case of a watcher that
// sees a change and deletes the value through another node within the
// same millisecond (TestWatchValues). A put with a version of its own
// is never issued again.
func TestEnginesLaterWriteWins(t *testing.T) {
	forEach(t, func(t *testing.T, p protocol) {
		n := newNetwork(t, p, 47)
		n.build(12, nodeConfig{replicas: 3})
		const key = "register"
		ahead, behind := n.outsiders(key)
		// ahead's clock moves 20 s past everyone else's: it writes a key
		// of its own whose replicas do not include behind, with a version
		// from the future, which its clock observes.
		future := store.Version{Time: uint64(n.Now.Add(20*time.Second).UnixMilli()) << 16, Writer: 1}
		for i := 0; ; i++ {
			other := fmt.Sprintf("skew-%d", i)
			if slices.Contains(p.replicas(n.live(), store.KeyTarget(other), 3), behind) {
				continue
			}
			if r := n.do(ahead, kademlia.KVPut{Key: other, Value: []byte("x"), Version: future}); r.Err != nil {
				t.Fatal(r.Err)
			}
			break
		}
		put := n.do(ahead, kademlia.KVPut{Key: key, Value: []byte("first")})
		if put.Err != nil {
			t.Fatal(put.Err)
		}
		if put.Version.Physical().Before(n.Now.Add(10 * time.Second)) {
			t.Fatalf("the put's version %v is not ahead: the test tests nothing", put.Version)
		}
		before := reissues(behind)
		del := n.do(behind, kademlia.KVPut{Key: key, Delete: true})
		if del.Err != nil {
			t.Fatal(del.Err)
		}
		if !del.Version.Newer(put.Version) {
			t.Fatalf("delete acknowledged at %v, older than the put's %v", del.Version, put.Version)
		}
		if got := reissues(behind) - before; got != 1 {
			t.Errorf("the delete went again %d times, want 1", got)
		}
		for _, nd := range n.live() {
			if r := n.do(nd, kademlia.KVGet{Key: key}); !errors.Is(r.Err, kademlia.ErrNotFound) {
				t.Fatalf("get from %v after the delete: %q, %v; want not found", nd.addr, r.Record.Value, r.Err)
			}
		}

		// A write that carries its version loses as it always did: its
		// version is the point.
		explicit := store.Version{Time: del.Version.Time - 1, Writer: 2}
		before = reissues(behind)
		if r := n.do(behind, kademlia.KVPut{Key: key, Value: []byte("old"), Version: explicit}); r.Err != nil || r.Version != explicit {
			t.Fatalf("explicit version: %v, %v", r.Version, r.Err)
		}
		if got := reissues(behind) - before; got != 0 {
			t.Errorf("a write with its own version went again %d times", got)
		}
		if r := n.do(ahead, kademlia.KVGet{Key: key}); !errors.Is(r.Err, kademlia.ErrNotFound) {
			t.Fatalf("the older explicit write won: %q, %v", r.Record.Value, r.Err)
		}
	})
}
