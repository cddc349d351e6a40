package dhtkit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/owner"
	"github.com/dhtkit/dhtkit/store"
)

// valueNets are the two protocols the value tests run on.
func valueNets(t *testing.T) map[string]func(t *testing.T) []*Node {
	return map[string]func(t *testing.T) []*Node{
		"kademlia": func(t *testing.T) []*Node { return network(t, 6, 7) },
		"chord":    func(t *testing.T) []*Node { return chordRing(t, 5) },
	}
}

// TestManyValues: a key holds several values, each read, replaced and
// deleted by its id, and the default value is the key's value as before.
func TestManyValues(t *testing.T) {
	for name, start := range valueNets(t) {
		t.Run(name, func(t *testing.T) {
			nodes := start(t)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			big := bytes.Repeat([]byte("0123456789"), 3000) // chunked
			puts := []struct {
				id   store.ValueID
				data []byte
			}{
				{store.DefaultValue, []byte("default")},
				{1, []byte("one")},
				{0xfeedface, []byte("two")},
				{7, big},
			}
			for i, p := range puts {
				if _, err := nodes[i%len(nodes)].Put(ctx, "many", p.data, PutOptions{ID: p.id}); err != nil {
					t.Fatalf("put id %v: %v", p.id, err)
				}
			}
			// Replace value 1: still four values, 1 newest.
			v1, err := nodes[2].Put(ctx, "many", []byte("one again"), PutOptions{ID: 1})
			if err != nil {
				t.Fatal(err)
			}
			vs, err := nodes[3].Values(ctx, "many")
			if err != nil {
				t.Fatal(err)
			}
			if len(vs) != 4 {
				t.Fatalf("Values: %d values, want 4", len(vs))
			}
			for _, v := range vs {
				if v.ID == 1 && v.Version != v1 {
					t.Fatalf("value 1: version %v, want %v", v.Version, v1)
				}
			}
			for i := 1; i < len(vs); i++ {
				if vs[i].Version.Newer(vs[i-1].Version) {
					t.Fatalf("values not newest first: %v before %v", vs[i-1].Version, vs[i].Version)
				}
			}
			want := map[store.ValueID][]byte{store.DefaultValue: []byte("default"), 1: []byte("one again"), 0xfeedface: []byte("two"), 7: big}
			for _, v := range vs {
				if !bytes.Equal(v.Data, want[v.ID]) {
					t.Errorf("value %v: %d bytes, want %d", v.ID, len(v.Data), len(want[v.ID]))
				}
			}
			// Single-value use is unchanged: Get is the default value.
			if v, err := nodes[4].Get(ctx, "many"); err != nil || string(v.Data) != "default" {
				t.Fatalf("Get: %q, %v", v.Data, err)
			}
			if v, err := nodes[0].GetValue(ctx, "many", 0xfeedface); err != nil || string(v.Data) != "two" || v.ID != 0xfeedface {
				t.Fatalf("GetValue: %q id %v, %v", v.Data, v.ID, err)
			}
			if err := nodes[1].DeleteValue(ctx, "many", 0xfeedface); err != nil {
				t.Fatal(err)
			}
			if _, err := nodes[0].GetValue(ctx, "many", 0xfeedface); !errors.Is(err, ErrNotFound) {
				t.Fatalf("GetValue after DeleteValue: %v", err)
			}
			if vs, err := nodes[3].Values(ctx, "many"); err != nil || len(vs) != 3 {
				t.Fatalf("Values after one delete: %d, %v; want 3", len(vs), err)
			}
			// Conditional writes name a value too, on the key's replicas.
			if _, err := nodes[0].Put(ctx, "many", []byte("cas"), PutOptions{ID: 9, IfAbsent: true}); err != nil {
				t.Fatalf("put --if-absent of a new value id: %v", err)
			}
			if _, err := nodes[1].Put(ctx, "many", []byte("again"), PutOptions{ID: 9, IfAbsent: true}); err == nil {
				t.Fatal("put --if-absent of a value id that holds a value succeeded")
			}
			n, err := nodes[2].DeleteAll(ctx, "many")
			if err != nil || n != 4 {
				t.Fatalf("DeleteAll: %d, %v; want 4", n, err)
			}
			if _, err := nodes[4].Values(ctx, "many"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("Values after DeleteAll: %v, want ErrNotFound", err)
			}
		})
	}
}

// TestValueOwners: a signed value's id is its owner's; others add values
// under their own ids, and DeleteAll leaves the signed ones.
func TestValueOwners(t *testing.T) {
	for name, start := range valueNets(t) {
		t.Run(name, func(t *testing.T) {
			nodes := start(t)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			alice, _ := NewIdentity(bytes.Repeat([]byte{1}, 32))
			bob, _ := NewIdentity(bytes.Repeat([]byte{2}, 32))
			seal := func(who Identity, id store.ValueID, text string) []byte {
				t.Helper()
				rk := store.ValueKey("owned", id)
				cur, _ := nodes[1].GetValue(ctx, "owned", id)
				b, err := SealWith(rk, []byte(text), who.Sign, nil, SignOptions{Version: owner.NextVersion(who.SignPublic(), time.Now(), cur.Version)})
				if err != nil {
					t.Fatal(err)
				}
				return b
			}
			if _, err := nodes[0].Put(ctx, "owned", seal(alice, 1, "alice"), PutOptions{ID: 1}); err != nil {
				t.Fatal(err)
			}
			if _, err := nodes[1].Put(ctx, "owned", seal(bob, 1, "bob"), PutOptions{ID: 1}); err == nil {
				t.Fatal("bob replaced alice's value 1")
			}
			if _, err := nodes[2].Put(ctx, "owned", []byte("anyone"), PutOptions{ID: 1}); err == nil {
				t.Fatal("an unsigned put replaced alice's value 1")
			}
			// A signature binds the id: alice's value 1 is no value 3.
			if _, err := nodes[2].Put(ctx, "owned", seal(alice, 1, "moved"), PutOptions{ID: 3}); err == nil {
				t.Fatal("a value signed for id 1 was stored as id 3")
			}
			if _, err := nodes[1].Put(ctx, "owned", seal(bob, 2, "bob"), PutOptions{ID: 2}); err != nil {
				t.Fatal(err)
			}
			if _, err := nodes[2].Put(ctx, "owned", []byte("anyone"), PutOptions{ID: 4}); err != nil {
				t.Fatal(err)
			}
			vs, err := nodes[3].Values(ctx, "owned")
			if err != nil || len(vs) != 3 {
				t.Fatalf("Values: %d, %v; want 3", len(vs), err)
			}
			signers := map[store.ValueID]string{}
			for _, v := range vs {
				signers[v.ID] = fmt.Sprintf("%x", []byte(v.Signer))
			}
			if signers[1] != fmt.Sprintf("%x", []byte(alice.SignPublic())) || signers[2] != fmt.Sprintf("%x", []byte(bob.SignPublic())) || signers[4] != "" {
				t.Fatalf("signers %v", signers)
			}
			n, err := nodes[0].DeleteAll(ctx, "owned")
			if n != 1 || !errors.Is(err, ErrSignedValues) {
				t.Fatalf("DeleteAll: %d, %v; want 1 and ErrSignedValues", n, err)
			}
			if vs, err := nodes[3].Values(ctx, "owned"); err != nil || len(vs) != 2 {
				t.Fatalf("Values after DeleteAll: %d, %v; want alice's and bob's", len(vs), err)
			}
		})
	}
}

// TestWatchValues: a watcher hears each value added, changed, deleted
// and expired, with the reason.
func TestWatchValues(t *testing.T) {
	for name, start := range valueNets(t) {
		t.Run(name, func(t *testing.T) {
			nodes := start(t)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			ch, err := nodes[3].WatchValues(ctx, "watched")
			if err != nil {
				t.Fatal(err)
			}
			// Value 2 expires on its own clock: on a busy machine (load
			// average 10-40) its expiry may come before the later steps'
			// events, so it is taken whenever it comes after its add.
			added2, expired2 := false, false
			next := func(want Reason, id store.ValueID, data string) Change {
				t.Helper()
				for {
					select {
					case c := <-ch:
						if added2 && !expired2 && c.Reason == Expired && c.Value.ID == 2 && string(c.Value.Data) == "" && !(want == Expired && id == 2) {
							expired2 = true
							continue
						}
						if c.Reason != want || c.Value.ID != id || string(c.Value.Data) != data {
							t.Fatalf("got %s of %v %q, want %s of %v %q", c.Reason, c.Value.ID, c.Value.Data, want, id, data)
						}
						return c
					case <-ctx.Done():
						t.Fatalf("no %s of %v", want, id)
					}
				}
			}
			// Each step waits for its event, so that the order of the
			// reasons is known.
			if _, err := nodes[0].Put(ctx, "watched", []byte("a"), PutOptions{ID: 1}); err != nil {
				t.Fatal(err)
			}
			next(Added, 1, "a")
			// Long enough that it is added before it expires, on a busy
			// machine.
			if _, err := nodes[1].Put(ctx, "watched", []byte("b"), PutOptions{ID: 2, TTL: 10 * time.Second}); err != nil {
				t.Fatal(err)
			}
			next(Added, 2, "b")
			added2 = true
			if _, err := nodes[2].Put(ctx, "watched", []byte("a2"), PutOptions{ID: 1}); err != nil {
				t.Fatal(err)
			}
			next(Changed, 1, "a2")
			if err := nodes[0].DeleteValue(ctx, "watched", 1); err != nil {
				t.Fatal(err)
			}
			if c := next(Deleted, 1, ""); c.Value.Version.IsZero() {
				t.Fatal("a delete without a version")
			}
			if !expired2 {
				next(Expired, 2, "")
			}
		})
	}
}

// TestValueKeyRefused: a key that ends like a value's record key would
// name a value of another key; the Go API refuses it as the HTTP API
// does, with ErrValueKey, and a value is named by its key and id.
func TestValueKeyRefused(t *testing.T) {
	nodes := network(t, 4, 9)
	n := nodes[3]
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bad := store.ValueKey("k", 1)
	for name, call := range map[string]func() error{
		"Put": func() error { _, err := n.Put(ctx, bad, []byte("x"), PutOptions{}); return err },
		"Put with an id": func() error {
			_, err := n.Put(ctx, bad, []byte("x"), PutOptions{ID: 2})
			return err
		},
		"PutReader": func() error { _, err := n.PutReader(ctx, bad, bytes.NewReader([]byte("x")), PutOptions{}); return err },
		"PutSigned": func() error {
			_, err := n.PutSigned(ctx, bad, bytes.NewReader([]byte("x")), []byte("env"), PutOptions{})
			return err
		},
		"GetValue":    func() error { _, err := n.GetValue(ctx, bad, 1); return err },
		"DeleteValue": func() error { return n.DeleteValue(ctx, bad, 1) },
		"DeleteAll":   func() error { _, err := n.DeleteAll(ctx, bad); return err },
		"Values":      func() error { _, err := n.Values(ctx, bad); return err },
		"Watch":       func() error { _, err := n.Watch(ctx, bad); return err },
		"WatchValues": func() error { _, err := n.WatchValues(ctx, bad); return err },
	} {
		if err := call(); !errors.Is(err, ErrValueKey) {
			t.Errorf("%s of %q: %v, want ErrValueKey", name, bad, err)
		}
	}
	// Nothing was written; the value itself is named by key and id.
	if _, err := n.Put(ctx, "k", []byte("one"), PutOptions{ID: 1}); err != nil {
		t.Fatal(err)
	}
	if v, err := n.GetValue(ctx, "k", 1); err != nil || string(v.Data) != "one" {
		t.Fatalf("GetValue: %q, %v", v.Data, err)
	}
	if vs, err := n.Values(ctx, "k"); err != nil || len(vs) != 1 {
		t.Fatalf("Values: %d, %v; want the one value", len(vs), err)
	}
}
