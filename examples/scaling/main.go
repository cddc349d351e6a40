// Command scaling measures how lookup hops and latency grow with the size
// of the network, N = 10^2 … 10^max, on the simulator, and writes
// scaling.csv and hops.svg (mean hops and median latency in RTTs against
// log10 N, with the least-squares line of the hops) into -out.
//
//	go run ./examples/scaling -max 5
//	go run ./examples/scaling -plot   # redraw hops.svg from scaling.csv
package main

import (
	"context"
	"encoding/csv"
	"flag"
	"fmt"
	"log"
	"math"
	"os"
	"path/filepath"
	"strconv"

	"github.com/dhtkit/dhtkit/sim"
)

func main() {
	maxExp := flag.Int("max", 5, "largest network: 10^max nodes")
	lookups := flag.Int("lookups", 2000, "lookups per network size")
	seed := flag.Uint64("seed", 1, "random seed")
	dir := flag.String("out", "examples/scaling", "output directory")
	plotOnly := flag.Bool("plot", false, "only redraw hops.svg from scaling.csv")
	flag.Parse()
	table := filepath.Join(*dir, "scaling.csv")
	if !*plotOnly {
		if err := measure(table, *maxExp, *lookups, *seed); err != nil {
			log.Fatal(err)
		}
	}
	if err := plot(table, filepath.Join(*dir, "hops.svg")); err != nil {
		log.Fatal(err)
	}
}

func measure(path string, maxExp, lookups int, seed uint64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fmt.Fprintln(f, "nodes,hops_mean,hops_median,hops_p99,latency_ms_median,latency_rtts_median,messages_per_lookup,success_rate,all_k_rate,wall_seconds")
	for e := 2; e <= maxExp; e++ {
		for _, m := range []int{1, 3} {
			if e == maxExp && m > 1 {
				continue
			}
			n := m * int(math.Pow10(e))
			r, err := sim.Run(context.Background(), sim.Config{Nodes: n, Lookups: lookups, Seed: seed})
			if err != nil {
				return err
			}
			fmt.Fprintf(f, "%d,%.3f,%g,%g,%.1f,%.3f,%.1f,%.4f,%.4f,%.1f\n", n, r.HopsMean, r.HopsMedian, r.HopsP99,
				r.LatencyMsMedian, r.LatencyRTTsMedian, r.MessagesPerLookup, r.SuccessRate, r.AllKRate, r.WallSeconds)
			log.Printf("N=%d: hops mean %.2f, latency %.2f RTT, success %.4f (%.1fs)", n, r.HopsMean, r.LatencyRTTsMedian, r.SuccessRate, r.WallSeconds)
		}
	}
	return f.Close()
}

func plot(table, out string) error {
	f, err := os.Open(table)
	if err != nil {
		return err
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		return err
	}
	var hops, rtts []sim.Point
	for _, row := range rows[1:] {
		n, _ := strconv.ParseFloat(row[0], 64)
		h, _ := strconv.ParseFloat(row[1], 64)
		l, _ := strconv.ParseFloat(row[5], 64)
		hops = append(hops, sim.Point{math.Log10(n), h})
		rtts = append(rtts, sim.Point{math.Log10(n), l})
	}
	// Least squares: hops = a + b·log10 N. A straight line on this axis is
	// O(log N).
	var sx, sy, sxx, sxy float64
	for _, p := range hops {
		sx, sy, sxx, sxy = sx+p[0], sy+p[1], sxx+p[0]*p[0], sxy+p[0]*p[1]
	}
	k := float64(len(hops))
	b := (k*sxy - sx*sy) / (k*sxx - sx*sx)
	a := (sy - b*sx) / k
	fit := []sim.Point{{hops[0][0], a + b*hops[0][0]}, {hops[len(hops)-1][0], a + b*hops[len(hops)-1][0]}}
	w, err := os.Create(out)
	if err != nil {
		return err
	}
	defer w.Close()
	err = sim.Lines(w, "Lookup hops and latency against network size (kademlia, k=8, α=3, internet latency)",
		"log10 N (nodes)", "hops (mean) / latency (median, in RTTs)",
		fmt.Sprintf("least squares: hops = %.2f + %.2f·log10 N (= %.2f·log2 N)", a, b, b/math.Log2(10)),
		[]sim.Series{{Name: "hops, mean", Points: hops}, {Name: "latency, median RTTs", Points: rtts},
			{Name: "fit of the hops", Points: fit, Color: "#999"}})
	if err != nil {
		return err
	}
	return w.Close()
}
