package sim

import (
	"context"
	"flag"
	"testing"

	"github.com/dhtkit/dhtkit/internal/cputime"
)

var (
	benchNodes   = flag.Int("sim.nodes", 100000, "BenchmarkScale: nodes")
	benchLookups = flag.Int("sim.lookups", 10000, "BenchmarkScale: lookups")
	benchLoss    = flag.Float64("sim.loss", 0, "BenchmarkScale: packet loss")
	benchSelf    = flag.Bool("sim.self", true, "BenchmarkScale: self-lookups after the oracle build-up")
)

// BenchmarkScale is the must-show scale run: by default 100,000 nodes
// built up (oracle) plus 10,000 lookups. It reports the wall time per run
// and the run's figures. -sim.nodes 1000000 is the million-node run
// (about 2 minutes and 13 GiB).
//
//	go test ./sim -run '^$' -bench Scale -benchtime 1x
func BenchmarkScale(b *testing.B) {
	for b.Loop() {
		cpu0 := cputime.Used().Seconds()
		r, err := Run(context.Background(), Config{
			Nodes: *benchNodes, Lookups: *benchLookups, Keys: 100, Loss: *benchLoss,
			Seed: 1, SelfLookup: benchSelf,
		})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(r.SuccessRate, "success")
		b.ReportMetric(r.HopsMedian, "hops_median")
		b.ReportMetric(r.LatencyMsMedian, "latency_ms_median")
		b.ReportMetric(r.LatencyRTTsMedian, "latency_rtts_median")
		b.ReportMetric(r.MessagesPerWallSecond, "datagrams/s")
		b.ReportMetric(float64(r.PeakHeapBytes), "peak_heap_B")
		b.ReportMetric(r.MemBytesPerNode, "B/node")
		b.ReportMetric(r.BuildWallSeconds, "build_s")
		b.ReportMetric(cputime.Used().Seconds()-cpu0, "cpu_s")
		b.Logf("%s", machineFree(r))
	}
}

// BenchmarkDeliver measures the simulator's cost per datagram on a
// steady 10,000-node network: each iteration is 100 lookups started
// together and 3 s of virtual time (timers included).
func BenchmarkDeliver(b *testing.B) {
	s, err := New(Config{Nodes: 10000, Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if err := s.build(ctx); err != nil {
		b.Fatal(err)
	}
	s.startMeasuring()
	start := s.m.sent
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		// 100 lookups at once, so that datagrams, not timers, dominate.
		for j := range 100 {
			s.q.push(event{at: s.now, kind: evLookup, aux: int32(100*i + j)})
		}
		if err := s.runUntil(ctx, s.now+int64(3e9), nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(s.m.sent-start), "ns/datagram")
}
