package store

import (
	"bytes"
	"flag"
	"fmt"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/internal/cputime"
)

// benchImpls are the stores the benchmarks compare; bolt with fsync on,
// as a node runs it, and off, to show the cost of the index and encoding.
var benchImpls = []struct {
	name string
	open func(b *testing.B) Store
}{
	{"memory", func(b *testing.B) Store { return NewMemory(Config{MaxBytes: -1, MaxPerSource: -1}) }},
	{"bolt", func(b *testing.B) Store {
		s, err := OpenBolt(filepath.Join(b.TempDir(), "store.db"), Config{MaxBytes: -1, MaxPerSource: -1})
		if err != nil {
			b.Fatal(err)
		}
		return s
	}},
	{"bolt-nosync", func(b *testing.B) Store {
		s, err := openBolt(filepath.Join(b.TempDir(), "store.db"), Config{MaxBytes: -1, MaxPerSource: -1}, true)
		if err != nil {
			b.Fatal(err)
		}
		return s
	}},
}

func benchKeys(n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("bench/key/%d", i)
	}
	return keys
}

func BenchmarkPut(b *testing.B) {
	value := make([]byte, 100)
	keys := benchKeys(1 << 16)
	for _, impl := range benchImpls {
		b.Run(impl.name, func(b *testing.B) {
			s := impl.open(b)
			defer s.Close()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				// Half new keys, half overwrites once the key set wraps.
				if _, err := s.Put(Record{Key: keys[i%len(keys)], Value: value, Version: ver(i, 1)}); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// BenchmarkPutAll stores batches of 100 records: one transaction and one
// fsync per batch in bolt. ns/op is per record.
func BenchmarkPutAll(b *testing.B) {
	const batch = 100
	value := make([]byte, 100)
	keys := benchKeys(1 << 16)
	for _, impl := range benchImpls {
		b.Run(impl.name, func(b *testing.B) {
			s := impl.open(b)
			defer s.Close()
			rs := make([]Record, batch)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if i%batch == 0 {
					for j := range rs {
						rs[j] = Record{Key: keys[(i+j)%len(keys)], Value: value, Version: ver(i+j, 1)}
					}
					if _, err := s.PutAll(rs); err != nil {
						b.Fatal(err)
					}
				}
				i++
			}
		})
	}
}

func BenchmarkGet(b *testing.B) {
	value := make([]byte, 100)
	keys := benchKeys(10000)
	for _, impl := range benchImpls[:2] { // fsync does not matter to reads
		b.Run(impl.name, func(b *testing.B) {
			s := impl.open(b)
			defer s.Close()
			if bs, ok := s.(*Bolt); ok { // fill in one go
				bs.db.NoSync = true
				defer func() { bs.db.NoSync = false }()
			}
			for i, k := range keys {
				if _, err := s.Put(Record{Key: k, Value: value, Version: ver(i, 1)}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, ok, err := s.Get(keys[i%len(keys)]); err != nil || !ok {
					b.Fatal(ok, err)
				}
				i++
			}
		})
	}
}

// BenchmarkDigest is the cost of one anti-entropy digest of a store of 100k
// records, at a depth the index holds and one deeper than it.
func BenchmarkDigest(b *testing.B) {
	s := NewMemory(Config{MaxBytes: -1, MaxPerSource: -1})
	for i, k := range benchKeys(100000) {
		s.Put(Record{Key: k, Value: []byte("v"), Version: ver(i, 1)})
	}
	for _, depth := range []int{8, 16} {
		b.Run(fmt.Sprint("depth=", depth), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				s.Digest(depth)
			}
		})
	}
}

// BenchmarkMemoryFootprint reports the heap an empty memory store and a
// store of 10 records take: the simulator keeps one per node.
func BenchmarkMemoryFootprint(b *testing.B) {
	for _, n := range []int{0, 10} {
		b.Run(fmt.Sprint("records=", n), func(b *testing.B) {
			const stores = 10000
			keep := make([]*Memory, stores)
			var before, after runtime.MemStats
			for b.Loop() {
				clear(keep)
				runtime.GC()
				runtime.ReadMemStats(&before)
				for i := range keep {
					keep[i] = NewMemory(Config{})
					for j := range n {
						keep[i].Put(Record{Key: fmt.Sprint(i, "/", j), Value: make([]byte, 16), Version: ver(j, 1)})
					}
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
			}
			b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/stores, "B/store")
			runtime.KeepAlive(keep)
		})
	}
}

// BenchmarkOpenBolt opens a store of -open-bytes (default 64 MiB) of 4 KiB
// values: the cost of the file checks and bbolt's consistency check that
// every open runs, per byte stored.
func BenchmarkOpenBolt(b *testing.B) {
	total := *openBytes
	path := filepath.Join(b.TempDir(), "store.db")
	s, err := openBolt(path, Config{MaxBytes: -1, MaxPerSource: -1}, true)
	if err != nil {
		b.Fatal(err)
	}
	value := make([]byte, 4096)
	var batch []Record
	for i := range total / int64(len(value)) {
		value[0], value[1] = byte(i), byte(i>>8)
		batch = append(batch, Record{Key: fmt.Sprint("open/", i), Value: bytes.Clone(value), Version: Version{Time: uint64(i + 1), Writer: 1}})
		if len(batch) == 1024 {
			if _, err := s.PutAll(batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	if _, err := s.PutAll(batch); err != nil {
		b.Fatal(err)
	}
	s.Close()
	b.SetBytes(total)
	b.ResetTimer()
	for b.Loop() {
		s, err := OpenBolt(path, Config{MaxBytes: -1, MaxPerSource: -1})
		if err != nil {
			b.Fatal(err)
		}
		s.Close()
	}
}

var openBytes = flag.Int64("open-bytes", 64<<20, "BenchmarkOpenBolt: bytes of values in the store opened")

// BenchmarkPutNew writes new keys into an empty memory store, 32,768 of
// them and again: what a node's store does during bench/kv's put phase,
// where the index grows by one record per put and deepens as it goes.
func BenchmarkPutNew(b *testing.B) {
	value := make([]byte, 100)
	keys := benchKeys(1 << 15)
	s := NewMemory(Config{MaxBytes: -1, MaxPerSource: -1})
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if i%len(keys) == 0 && i > 0 {
			b.StopTimer()
			s = NewMemory(Config{MaxBytes: -1, MaxPerSource: -1})
			b.StartTimer()
		}
		if _, err := s.Put(Record{Key: keys[i%len(keys)], Value: value, Version: ver(i, 1)}); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkPutNewDurable writes new keys into an empty durable store in
// groups of 8, one logged write (one fdatasync) per group, as a replica's
// group commit does during bench/kv's durable put phase; a fresh store
// every 16,384 keys. cpu-µs/op is the process's CPU per record (user and
// kernel): the figure a busy machine's throughput follows, which the
// fdatasyncs' wall time hides.
func BenchmarkPutNewDurable(b *testing.B) {
	const group, perStore = 8, 1 << 14
	value := make([]byte, 100)
	keys := make([]string, perStore)
	for i := range keys {
		keys[i] = fmt.Sprintf("kvload-%016x", uint64(i)*0x9e3779b97f4a7c15)
	}
	dir := b.TempDir()
	open := func(n int) *Bolt {
		s, err := OpenBolt(filepath.Join(dir, fmt.Sprintf("store%d.db", n)), Config{MaxBytes: -1, MaxPerSource: -1})
		if err != nil {
			b.Fatal(err)
		}
		return s
	}
	stores := 0
	s := open(stores)
	defer func() { s.Close() }()
	rs := make([]Record, group)
	cpu0 := cputime.Used()
	i := 0
	for b.Loop() {
		if i%perStore == 0 && i > 0 {
			b.StopTimer()
			s.Close()
			stores++
			s = open(stores)
			b.StartTimer()
		}
		if i%group == 0 {
			for j := range rs {
				rs[j] = Record{Key: keys[(i+j)%perStore], Value: value, Version: ver(i+j, 1)}
			}
			if _, err := s.PutAll(rs); err != nil {
				b.Fatal(err)
			}
		}
		i++
	}
	b.ReportMetric(float64(cputime.Used()-cpu0)/float64(time.Microsecond)/float64(b.N), "cpu-µs/op")
}
