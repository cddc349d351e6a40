package dhtkit

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/routing"
	"github.com/dhtkit/dhtkit/store"
)

// TestSaveContactsConcurrently: the periodic save and the save at
// shutdown may run at once (SIGTERM near a periodic save). Each must
// succeed and leave a whole file, and no temporary file may be left.
func TestSaveContactsConcurrently(t *testing.T) {
	dir := t.TempDir()
	d := &dataDir{path: dir}
	tables := make([][]routing.Bucket, 8)
	want := map[string]bool{}
	for i := range tables {
		var cs []routing.Contact
		for j := range 50 {
			cs = append(cs, routing.Contact{
				ID:   id.ID{byte(i), byte(j), 1},
				Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, byte(i), byte(j)}), 6881),
			})
		}
		tables[i] = []routing.Bucket{{Contacts: cs}}
		var sb strings.Builder
		for _, c := range cs {
			fmt.Fprintf(&sb, "%v %v\n", c.Addr, c.ID)
		}
		want[sb.String()] = true
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(tables)*100)
	for i := range tables {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				if err := d.saveContacts(tables[i]); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("a concurrent save failed: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(dir, contactsFile))
	if err != nil {
		t.Fatal(err)
	}
	if !want[string(b)] {
		t.Errorf("the contacts file is not one whole save (%d bytes)", len(b))
	}
	left, _ := filepath.Glob(filepath.Join(dir, "*tmp*"))
	if len(left) > 0 {
		t.Errorf("temporary files left behind: %v", left)
	}
}

// TestDamagedValuesFile: a node whose values.db is damaged does not start
// in silence; it names the file and the flag, and with MoveDamaged it sets
// the file aside and starts empty.
func TestDamagedValuesFile(t *testing.T) {
	for _, tt := range []struct {
		name   string
		damage func(b []byte) []byte
	}{
		{"zero bytes", func([]byte) []byte { return nil }},
		{"truncated", func(b []byte) []byte { return b[:len(b)/2] }},
		{"garbage pages", func(b []byte) []byte {
			for i := 8192; i < len(b); i++ {
				b[i] = byte(i * 31)
			}
			return b
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := testConfig()
			cfg.DataDir = dir
			cfg.Kademlia.Alone = true // a network of one, as asked: its own quorum
			n, err := Listen(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			for _, k := range []string{"a", "b", "c"} {
				if _, err := n.Put(ctx, k, []byte("value of "+k), PutOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			if err := n.Close(); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, valuesFile)
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, tt.damage(b), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err = Listen(context.Background(), cfg)
			if !errors.Is(err, store.ErrDamaged) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "--move-damaged") {
				t.Fatalf("start on a damaged values.db: %v", err)
			}
			t.Logf("error: %v", err)
			cfg.MoveDamaged = true
			n = newNode(t, cfg)
			moved, _ := filepath.Glob(path + ".damaged-*")
			if len(moved) != 1 {
				t.Fatalf("damaged files set aside: %v", moved)
			}
			if got := n.Local(); len(got) != 0 {
				t.Errorf("new store holds %d records", len(got))
			}
			if _, err := n.Put(ctx, "d", []byte("new"), PutOptions{}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestDamagedValueRefilled flips bytes of a value in one replica's file:
// reads never return the damaged bytes, and the replica is refilled from
// the others.
func TestDamagedValueRefilled(t *testing.T) {
	dirs := []string{t.TempDir(), t.TempDir(), t.TempDir()}
	start := func(i int, boot []string) *Node {
		cfg := testConfig()
		cfg.DataDir = dirs[i]
		cfg.Bootstrap = boot
		return newNode(t, cfg)
	}
	a := start(0, nil)
	b := start(1, []string{a.Addr().String()})
	c := start(2, []string{a.Addr().String()})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	waitFor(t, "a network of 3", func() bool { return a.goodContacts() == 2 && b.goodContacts() == 2 && c.goodContacts() == 2 })
	const value = "a small value whose bytes the disk flips"
	if _, err := a.Put(ctx, "fragile", []byte(value), PutOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "3 copies", func() bool {
		return holds(a, "fragile", value) && holds(b, "fragile", value) && holds(c, "fragile", value)
	})
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dirs[2], valuesFile)
	file, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	i := strings.Index(string(file), value)
	if i < 0 {
		t.Fatal("value not found in values.db")
	}
	for j := range 8 {
		file[i+10+j] ^= 0xff
	}
	if err := os.WriteFile(path, file, 0o600); err != nil {
		t.Fatal(err)
	}
	c = start(2, []string{a.Addr().String(), b.Addr().String()})
	waitFor(t, "c rejoined", func() bool { return c.goodContacts() == 2 })
	for range 5 {
		got, err := c.Get(ctx, "fragile")
		if err != nil || string(got.Data) != value {
			t.Fatalf("get through the damaged replica: %q, %v", got.Data, err)
		}
	}
	if f := c.StorageFaults(); f.DamagedRecords != 1 {
		t.Errorf("damaged records counted: %d, want 1", f.DamagedRecords)
	}
	waitFor(t, "the damaged copy refilled", func() bool { return holds(c, "fragile", value) })
}

func holds(n *Node, key, value string) bool {
	for _, r := range n.Local() {
		if r.Key == key && string(r.Value) == value {
			return true
		}
	}
	return false
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 60s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
