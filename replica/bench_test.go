package replica

import (
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/store"
)

// benchTree is a tree over 100,000 records.
func benchTree(b *testing.B) *Tree {
	st := store.NewMemory(store.Config{})
	fill(b, st, 0, 100000, ver)
	tr := NewTree(st)
	if err := tr.Refresh(t0); err != nil {
		b.Fatal(err)
	}
	return tr
}

// BenchmarkServeDigests is the cost of answering one digest query (64
// hashes) of a node holding 100,000 records: what every peer's round
// costs a node whose replicas agree.
func BenchmarkServeDigests(b *testing.B) {
	tr := benchTree(b)
	x := AppendRequest(nil, Request{Prefix: Root.Child(6, 17), Fanout: 6})
	var out []byte
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if out, err = tr.Serve(t0, out[:0], x); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkServeEntries is the cost of answering one page of entries at
// the listing depth of a 100,000-record store.
func BenchmarkServeEntries(b *testing.B) {
	tr := benchTree(b)
	x := AppendRequest(nil, Request{Prefix: Prefix{Bits: 1234, Len: leafDepth(100000)}, Entries: true})
	var out []byte
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if out, err = tr.Serve(t0, out[:0], x); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTreeRebuild is the cost of rebuilding the cache of a
// 100,000-record store after writes: at most once a second.
func BenchmarkTreeRebuild(b *testing.B) {
	tr := benchTree(b)
	now := t0
	b.ReportAllocs()
	for b.Loop() {
		now = now.Add(time.Hour)
		tr.Invalidate()
		if err := tr.Refresh(now); err != nil {
			b.Fatal(err)
		}
	}
}
