package kademlia

import (
	"errors"
	"strings"
	"testing"

	"github.com/dhtkit/dhtkit/store"
)

// TestReadQuorum: a get succeeds only when a read quorum of the key's
// replica set answered. A node that knows no other node (restarted, not
// rejoined) does not answer from its own store alone: the get fails with
// ErrQuorum naming how many of how many answered, unless the caller asks
// for a partial read, which returns the record marked Partial. A node
// started as a network of one (Alone) is its whole replica set.
func TestReadQuorum(t *testing.T) {
	cases := []struct {
		name     string
		alone    bool
		partial  bool
		wantErr  string // "" : the record, not partial
		wantPart bool
	}{
		{"restarted, not rejoined", false, false, "1 of the 3 replicas answered, a read needs 2", false},
		{"restarted, partial read asked for", false, true, "", true},
		{"a network of one on purpose", true, false, "", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			n := newTestNet(t, 40)
			st := store.NewMemory(store.Config{})
			// The record is written by a network of one, whose store the
			// node under test then starts from, as after a restart.
			first := n.add(Config{Store: st, Alone: true})
			if w := n.do(first, KVPut{Key: "k", Value: []byte("v")}); w.Err != nil {
				t.Fatal(w.Err)
			}
			first.down = true
			tn := n.add(Config{Store: st, Alone: c.alone})
			g := n.do(tn, KVGet{Key: "k", Partial: c.partial})
			if c.wantErr != "" {
				if !errors.Is(g.Err, ErrQuorum) || !strings.Contains(g.Err.Error(), c.wantErr) || g.Record != nil {
					t.Fatalf("get: %v, record %v; want ErrQuorum saying %q and no record", g.Err, g.Record, c.wantErr)
				}
				return
			}
			if g.Err != nil || g.Record == nil || string(g.Record.Value) != "v" || g.Partial != c.wantPart {
				t.Fatalf("get: %v, record %v, partial %v; want the record, partial %v", g.Err, g.Record, g.Partial, c.wantPart)
			}
		})
	}
}
