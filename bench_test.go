package dhtkit

import (
	"context"
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
