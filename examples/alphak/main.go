// Command alphak measures the effect of the lookup parallelism α and the
// bucket size k on lookup latency, on a simulated network, and writes
// alphak.csv and latency.svg (median latency against α, one line per k)
// beside itself.
//
//	go run ./examples/alphak -nodes 10000
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/dhtkit/dhtkit/sim"
)

func main() {
	nodes := flag.Int("nodes", 10000, "network size")
	lookups := flag.Int("lookups", 2000, "lookups per run")
	loss := flag.Float64("loss", 0.01, "packet loss")
	seed := flag.Uint64("seed", 1, "random seed")
	dir := flag.String("out", "examples/alphak", "output directory")
	flag.Parse()

	csv, err := os.Create(filepath.Join(*dir, "alphak.csv"))
	if err != nil {
		log.Fatal(err)
	}
	defer csv.Close()
	fmt.Fprintln(csv, "k,alpha,latency_ms_median,latency_ms_p90,latency_rtts_median,hops_mean,messages_per_lookup,success_rate,beta_rate,all_k_rate")
	var series []sim.Series
	for _, k := range []int{4, 8, 16} {
		s := sim.Series{Name: fmt.Sprintf("k=%d", k)}
		for _, alpha := range []int{1, 2, 3, 4, 6, 8} {
			r, err := sim.Run(context.Background(), sim.Config{Nodes: *nodes, Lookups: *lookups, Loss: *loss, K: k, Alpha: alpha, Seed: *seed})
			if err != nil {
				log.Fatal(err)
			}
			fmt.Fprintf(csv, "%d,%d,%.1f,%.1f,%.3f,%.3f,%.1f,%.4f,%.4f,%.4f\n", k, alpha, r.LatencyMsMedian, r.LatencyMsP90,
				r.LatencyRTTsMedian, r.HopsMean, r.MessagesPerLookup, r.SuccessRate, r.BetaRate, r.AllKRate)

			log.Printf("k=%d α=%d: latency %.0f ms (%.2f RTT), %.1f messages, success %.4f", k, alpha, r.LatencyMsMedian, r.LatencyRTTsMedian, r.MessagesPerLookup, r.SuccessRate)
			s.Points = append(s.Points, sim.Point{float64(alpha), r.LatencyMsMedian})
		}
		series = append(series, s)
	}
	f, err := os.Create(filepath.Join(*dir, "latency.svg"))
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	err = sim.Lines(f, fmt.Sprintf("Median lookup latency against α and k (%d nodes, internet latency, %g loss)", *nodes, *loss),
		"α (queries in flight)", "median lookup latency (ms)", fmt.Sprintf("%d lookups per point, seed %d", *lookups, *seed), series)
	if err != nil {
		log.Fatal(err)
	}
}
