package dhtkit

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
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
	var seq atomic.Int64
	datagrams := func() (n uint64) {
		for _, nd := range nodes {
			st := nd.Stats()
			for m := range st.QueriesOut {
				n += st.QueriesOut[m] + st.QueriesIn[m] // each query and its answer
			}
		}
		return n
	}
	d0, cpu0 := datagrams(), cpuTime()
	b.ReportAllocs()
	b.ResetTimer()
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := seq.Add(1)
			if _, err := nodes[i%5].Put(ctx, "bench-"+strconv.FormatInt(i, 10), value, PutOptions{}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	// The whole process's CPU (the five nodes and the callers) per put:
	// on a shared machine a steadier measure than ns/op.
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N)/1e3, "cpu-µs/op")
	b.ReportMetric(float64(datagrams()-d0)/float64(b.N), "datagrams/op")
}
