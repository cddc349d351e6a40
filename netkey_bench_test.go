package dhtkit

import (
	"context"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/internal/cputime"
)

// BenchmarkNetworkKey measures what a network key costs, side by side in
// one run: each case runs with plain and with sealed datagrams, on nodes
// of one process over loopback, many operations in flight. cpu-µs/op is
// the process's CPU time per operation (both ends of every query: one
// seal and one open each way), the figure to compare; ns/op is the
// inverse of the throughput.
//
//	go test -run '^$' -bench BenchmarkNetworkKey -benchtime 3s .
func BenchmarkNetworkKey(b *testing.B) {
	key := filepath.Join(b.TempDir(), "net.key")
	writeKeys(b, key, newKeyText(b))
	modes := []struct {
		name string
		opt  func(*Config)
	}{
		{"plain", func(*Config) {}},
		{"sealed", keyedConfig(key)},
	}
	cases := []struct {
		name  string
		nodes int
		op    func(ctx context.Context, nodes []*Node, i int64) error
	}{
		{"ping", 2, func(ctx context.Context, nodes []*Node, i int64) error {
			_, err := nodes[0].Ping(ctx, nodes[1].Addr())
			return err
		}},
		{"lookup", 5, func(ctx context.Context, nodes []*Node, i int64) error {
			_, err := nodes[i%5].Lookup(ctx, id.FromString(strconv.FormatInt(i, 10)))
			return err
		}},
		{"put", 5, func(ctx context.Context, nodes []*Node, i int64) error {
			_, err := nodes[i%5].Put(ctx, "bench-"+strconv.FormatInt(i%1000, 10), make([]byte, 100), PutOptions{})
			return err
		}},
		{"get", 5, func(ctx context.Context, nodes []*Node, i int64) error {
			_, err := nodes[i%5].Get(ctx, "bench-"+strconv.FormatInt(i%100, 10))
			return err
		}},
	}
	for _, c := range cases {
		for _, m := range modes {
			b.Run(c.name+"/"+m.name, func(b *testing.B) {
				nodes := network(b, c.nodes, 1, m.opt)
				ctx := context.Background()
				if c.name == "get" {
					for i := range 100 {
						if _, err := nodes[0].Put(ctx, "bench-"+strconv.Itoa(i), make([]byte, 100), PutOptions{}); err != nil {
							b.Fatal(err)
						}
					}
				}
				var seq atomic.Int64
				b.SetParallelism(8)
				b.ResetTimer()
				start := cputime.Used()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if err := c.op(ctx, nodes, seq.Add(1)); err != nil {
							b.Error(err)
							return
						}
					}
				})
				b.ReportMetric(float64((cputime.Used()-start).Microseconds())/float64(b.N), "cpu-µs/op")
			})
		}
	}
}
