package store

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestIndexLeaves grows and shrinks a memory store across roomAt, where
// resize starts and stops giving the leaves room to spare, and checks
// after every stage that each record is there, intact, in its leaf, in
// (target, key) order, and that the tree holds the leaves' hashes.
func TestIndexLeaves(t *testing.T) {
	tests := []struct {
		name      string
		n, remove int
	}{
		{"small", 100, 90},
		{"just below roomAt", roomAt - 1, 0},
		{"at roomAt", roomAt, 0},
		{"past roomAt, then shrunk below it", 5000, 4500},
		{"past roomAt, then shrunk to one", 3000, 2999},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(tt.n), 7))
			m := NewMemory(Config{MaxBytes: -1, MaxPerSource: -1})
			want := map[string][]byte{}
			var keys []string
			for i := range tt.n {
				k := fmt.Sprintf("k%d-%d", i, rng.Uint64())
				v := fmt.Appendf(nil, "value of %s", k)
				put(t, m, Record{Key: k, Value: v, Version: ver(i+1, 1)})
				want[k] = v
				keys = append(keys, k)
			}
			checkIndex(t, m, want, "filled")
			rng.Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
			for _, k := range keys[:tt.remove] {
				r, _ := get(t, m, k)
				if err := m.Remove(k, r.Version); err != nil {
					t.Fatal(err)
				}
				delete(want, k)
			}
			checkIndex(t, m, want, "after removals")
			for i, k := range keys[:tt.remove] { // back again, into the shrunk index
				v := fmt.Appendf(nil, "again %s", k)
				put(t, m, Record{Key: k, Value: v, Version: ver(tt.n+i+1, 1)})
				want[k] = v
			}
			checkIndex(t, m, want, "refilled")
		})
	}
}

func checkIndex(t *testing.T, m *Memory, want map[string][]byte, stage string) {
	t.Helper()
	x := &m.idx
	if x.n != len(want) {
		t.Fatalf("%s: index counts %d records, want %d", stage, x.n, len(want))
	}
	for k, v := range want {
		r, ok := get(t, m, k)
		if !ok || !bytes.Equal(r.Value, v) {
			t.Fatalf("%s: Get(%q) = %q, %v; want %q", stage, k, r.Value, ok, v)
		}
	}
	if x.n == 0 {
		return
	}
	if x.n > growAt<<x.depth || (x.depth > 0 && x.n < shrinkAt<<x.depth) {
		t.Errorf("%s: %d records at depth %d", stage, x.n, x.depth)
	}
	for l, leaf := range x.leaves {
		var h uint64
		for i := range leaf {
			it := &leaf[i]
			if leafOf(it.target, x.depth) != l {
				t.Fatalf("%s: %q in leaf %d, belongs in %d", stage, it.key, l, leafOf(it.target, x.depth))
			}
			if i > 0 && compareItem(it.target, it.key, &leaf[i-1]) <= 0 {
				t.Fatalf("%s: leaf %d out of order at %d", stage, l, i)
			}
			h ^= it.hash
		}
		if x.tree[1<<x.depth+l] != h {
			t.Fatalf("%s: tree holds %x for leaf %d, its records hash to %x", stage, x.tree[1<<x.depth+l], l, h)
		}
	}
	for j := 1<<x.depth - 1; j >= 1; j-- {
		if x.tree[j] != x.tree[2*j]^x.tree[2*j+1] {
			t.Fatalf("%s: tree node %d is not the sum of its children", stage, j)
		}
	}
}
