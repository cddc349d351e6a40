package routing

import (
	"fmt"
	"io"
	"runtime"
	"testing"

	"github.com/dhtkit/dhtkit/id"
)

// fillLikeNetwork gives tb what it would learn over time in a network of
// size nodes: at prefix length i there are size/2^(i+1) nodes to meet, of
// which it hears from up to perLevel. With perLevel = 2k that is a full
// table with full replacement caches: the worst case for memory.
func fillLikeNetwork(tb Table, src io.Reader, size, perLevel int) {
	self := tb.Self()
	n := 0
	for i := 0; i < id.Bits; i++ {
		avail := size >> (i + 1)
		if avail == 0 {
			break
		}
		for range min(avail, perLevel) {
			tb.Observe(t0, id.RandomWithPrefix(src, self, i), addrN(n), Responded, 0)
			n++
		}
	}
}

// BenchmarkBEP5Memory reports the heap a BEP5 table takes per contact, as
// the simulator holding a million of them sees it: tables of a
// million-node network, full (k contacts and k replacements per bucket,
// "full"), without replacements ("norepl"), and tables that have heard of
// few nodes ("sparse").
func BenchmarkBEP5Memory(b *testing.B) {
	const tables = 2000
	cases := []struct {
		name     string
		network  int
		perLevel int
		repl     int
	}{
		{"full", 1 << 20, 16, 8},
		{"norepl", 1 << 20, 16, 0},
		{"sparse", 1 << 4, 16, 8},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			src := seeded(1)
			selves := make([]id.ID, tables)
			for i := range selves {
				selves[i] = id.Random(src)
			}
			var perTable, perContact, perEntry float64
			for b.Loop() {
				var ms0, ms1 runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&ms0)
				ts := make([]*BEP5, tables)
				for i := range ts {
					ts[i] = NewBEP5(selves[i], 8, src)
					ts[i].SetReplacements(c.repl)
					fillLikeNetwork(ts[i], src, c.network, c.perLevel)
				}
				runtime.GC()
				runtime.ReadMemStats(&ms1)
				contacts, entries := 0, 0
				for _, t := range ts {
					contacts += t.Len()
					entries += t.Len()
					for _, bk := range t.buckets {
						entries += len(bk.repl)
					}
				}
				heap := float64(ms1.HeapAlloc - ms0.HeapAlloc)
				perTable = heap / tables
				perContact = heap / float64(contacts)
				perEntry = heap / float64(entries)
				runtime.KeepAlive(ts)
			}
			b.ReportMetric(perTable, "B/table")
			b.ReportMetric(perContact, "B/contact")
			b.ReportMetric(perEntry, "B/entry")
		})
	}
}

func BenchmarkBEP5Closest(b *testing.B) {
	src := seeded(2)
	tb := NewBEP5(id.Random(src), 8, src)
	fillLikeNetwork(tb, src, 1<<20, 16)
	targets := make([]id.ID, 1024)
	for i := range targets {
		targets[i] = id.Random(src)
	}
	dst := make([]Contact, 0, 8)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		dst = tb.Closest(targets[i%len(targets)], 8, dst[:0])
		i++
	}
	b.ReportMetric(float64(tb.Len()), "contacts")
}

func BenchmarkBEP5Observe(b *testing.B) {
	src := seeded(3)
	tb := NewBEP5(id.Random(src), 8, src)
	fillLikeNetwork(tb, src, 1<<20, 16)
	nodes := make([]id.ID, 4096)
	for i := range nodes {
		nodes[i] = id.Random(src)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		tb.Observe(at(0), nodes[i%len(nodes)], addrN(i%len(nodes)), Queried, 0)
		i++
	}
}

func BenchmarkKeepAllClosest(b *testing.B) {
	for _, size := range []int{1e4, 1e5, 1e6} {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			src := seeded(4)
			tb := NewKeepAll(id.Random(src), 8, src)
			for i := range size {
				tb.Observe(t0, id.Random(src), addrN(i), Responded, 0)
			}
			targets := make([]id.ID, 1024)
			for i := range targets {
				targets[i] = id.Random(src)
			}
			dst := tb.Closest(targets[0], 8, nil) // sorts the index
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				dst = tb.Closest(targets[i%len(targets)], 8, dst[:0])
				i++
			}
		})
	}
}

// BenchmarkKeepAllCrawl interleaves new nodes and Closest, as a crawler
// answering queries does: the cost of keeping the index sorted.
func BenchmarkKeepAllCrawl(b *testing.B) {
	src := seeded(5)
	tb := NewKeepAll(id.Random(src), 8, src)
	for i := range 100000 {
		tb.Observe(t0, id.Random(src), addrN(i), Responded, 0)
	}
	dst := tb.Closest(id.Random(src), 8, nil)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		tb.Observe(t0, id.Random(src), addrN(i), Learned, 0)
		dst = tb.Closest(id.Random(src), 8, dst[:0])
		i++
	}
}
