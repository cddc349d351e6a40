package dhtkit

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/internal/cputime"
)

// BenchmarkPing is one node pinging another over loopback, one ping at a
// time: the latency of the whole path (Go API, engine, runtime, two
// sockets, and back).
func BenchmarkPing(b *testing.B) {
	client, server := newNode(b, testConfig()), newNode(b, testConfig())
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := client.Ping(ctx, server.Addr()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPingParallel keeps many pings in flight from one client node,
// so that both runtimes read and write in batches.
func BenchmarkPingParallel(b *testing.B) {
	client, server := newNode(b, testConfig()), newNode(b, testConfig())
	ctx := context.Background()
	b.ReportAllocs()
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := client.Ping(ctx, server.Addr()); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkPut is a 100-byte put through the Go API of one of 5 nodes on
// loopback, many in flight: a lookup of the key's replicas, then a quorum
// write to 3 of them (bench/kv/compare.sh measures the same through HTTP,
// against OpenDHT).
func BenchmarkPut(b *testing.B) {
	nodes := network(b, 5, 1)
	ctx := context.Background()
	value := make([]byte, 100)
	runOps(b, nodes, func(i int64) error {
		_, err := nodes[i%5].Put(ctx, "bench-"+strconv.FormatInt(i, 10), value, PutOptions{})
		return err
	})
}

// runOps runs op(i) for i = 1, 2, ... b.N, 8 goroutines per core, and
// reports per op the whole process's CPU (the nodes and the callers: on
// a shared machine a steadier measure than ns/op), the datagrams the
// nodes sent and received, and their recvmmsg/sendmmsg calls.
func runOps(b *testing.B, nodes []*Node, op func(i int64) error) {
	var seq atomic.Int64
	d0, s0, cpu0 := datagrams(nodes), syscalls(nodes), cputime.Used()
	b.ReportAllocs()
	b.ResetTimer()
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := op(seq.Add(1)); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(cputime.Used()-cpu0)/float64(b.N)/1e3, "cpu-µs/op")
	b.ReportMetric(float64(datagrams(nodes)-d0)/float64(b.N), "datagrams/op")
	b.ReportMetric(float64(syscalls(nodes)-s0)/float64(b.N), "mmsg-calls/op")
}

// BenchmarkGet is a get of a 100-byte value through the Go API of one of
// 5 nodes on loopback, many in flight, over keys put before the timer
// starts: a lookup of the key's replicas (or the one-hop table's), then
// a quorum read of them (bench/kv/compare.sh measures the same through
// HTTP). Its figures are BenchmarkPut's.
func BenchmarkGet(b *testing.B) {
	const keys = 512
	nodes := network(b, 5, 1)
	ctx := context.Background()
	value := make([]byte, 100)
	for i := range keys {
		if _, err := nodes[i%5].Put(ctx, "get-"+strconv.Itoa(i), value, PutOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	runOps(b, nodes, func(i int64) error {
		v, err := nodes[i%5].Get(ctx, "get-"+strconv.FormatInt(i%keys, 10))
		if err == nil && len(v.Data) != len(value) {
			err = fmt.Errorf("got %d bytes, want %d", len(v.Data), len(value))
		}
		return err
	})
}

// datagrams counts the queries the nodes sent and received: each query
// and its answer.
func datagrams(nodes []*Node) (n uint64) {
	for _, nd := range nodes {
		st := nd.Stats()
		for m := range st.QueriesOut {
			n += st.QueriesOut[m] + st.QueriesIn[m]
		}
	}
	return n
}

// syscalls counts the system calls that moved the nodes' datagrams: a
// batch read or written is one recvmmsg or sendmmsg (reads that found
// nothing are not counted).
func syscalls(nodes []*Node) (n uint64) {
	for _, nd := range nodes {
		io := nd.IOStats()
		n += io.ReadCalls + io.WriteCalls
	}
	return n
}

// BenchmarkPutDurable is BenchmarkPut on nodes that keep their values on
// disk (bbolt, an fsync per commit), for each group-commit window
// (kademlia.Config.CommitWindow): throughput against p99 latency, the
// measure that chose the default. 32 puts in flight.
func BenchmarkPutDurable(b *testing.B) {
	for _, w := range []time.Duration{-1, 500 * time.Microsecond, time.Millisecond, 2 * time.Millisecond, 5 * time.Millisecond, 10 * time.Millisecond} {
		name := "window=" + w.String()
		if w < 0 {
			name = "window=none"
		}
		b.Run(name, func(b *testing.B) {
			nodes := network(b, 5, 1, func(c *Config) {
				c.DataDir = b.TempDir()
				c.Kademlia.CommitWindow = w
			})
			ctx := context.Background()
			value := make([]byte, 100)
			var (
				seq  atomic.Int64
				mu   sync.Mutex
				lats []time.Duration
			)
			b.ReportAllocs()
			b.ResetTimer()
			start, cpu0 := time.Now(), cputime.Used()
			b.SetParallelism(16) // 32 in flight on 2 cores
			b.RunParallel(func(pb *testing.PB) {
				var mine []time.Duration
				for pb.Next() {
					i := seq.Add(1)
					t0 := time.Now()
					if _, err := nodes[i%5].Put(ctx, "durable-"+strconv.FormatInt(i, 10), value, PutOptions{}); err != nil {
						b.Error(err)
						return
					}
					mine = append(mine, time.Since(t0))
				}
				mu.Lock()
				lats = append(lats, mine...)
				mu.Unlock()
			})
			elapsed := time.Since(start)
			b.StopTimer()
			slices.Sort(lats)
			if len(lats) > 0 {
				b.ReportMetric(float64(len(lats))/elapsed.Seconds(), "puts/s")
				b.ReportMetric(float64(lats[len(lats)*99/100])/1e6, "p99-ms")
				b.ReportMetric(float64(cputime.Used()-cpu0)/float64(len(lats))/1e3, "cpu-µs/op")
			}
		})
	}
}
