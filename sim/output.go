package sim

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// WriteFiles writes a run's figures into dir (created if needed):
// report.json, lookups.csv (hops and latency of every lookup), load.csv
// (datagrams received per live node), and three plots that any browser
// shows: latency_cdf.svg, hops.svg and load.svg.
func WriteFiles(dir string, r *Report) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("sim: output directory: %w", err)
	}
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("sim: report: %w", err)
	}
	files := []struct {
		name  string
		write func(io.Writer) error
	}{
		{"report.json", func(w io.Writer) error { _, err := w.Write(append(js, '\n')); return err }},
		{"lookups.csv", r.writeLookupsCSV},
		{"load.csv", r.writeLoadCSV},
		{"latency_cdf.svg", r.writeLatencyCDF},
		{"hops.svg", r.writeHops},
		{"load.svg", r.writeLoad},
	}
	if r.KeyLoad != nil {
		files = append(files, struct {
			name  string
			write func(io.Writer) error
		}{"key_load.csv", r.writeKeyLoadCSV}, struct {
			name  string
			write func(io.Writer) error
		}{"key_load.svg", r.writeKeyLoad})
	}
	for _, f := range files {
		if err := writeFile(filepath.Join(dir, f.name), f.write); err != nil {
			return err
		}
	}
	return nil
}

func writeFile(path string, write func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("sim: %w", err)
	}
	w := bufio.NewWriter(f)
	if err := write(w); err != nil {
		f.Close()
		return fmt.Errorf("sim: writing %s: %w", path, err)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("sim: writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("sim: %w", err)
	}
	return nil
}

// writeLookupsCSV writes one row per lookup in the order they ended:
// start_s is when it started (seconds into the measured phase), success
// 1 when its nearest node was the true nearest; hops and latency_ms are
// empty for a lookup that ended without a result.
func (r *Report) writeLookupsCSV(w io.Writer) error {
	fmt.Fprintln(w, "lookup,hops,latency_ms,start_s,success")
	for i, row := range r.Rows {
		ok := 0
		if row.OK {
			ok = 1
		}
		hops, lat := "", ""
		if row.Hops >= 0 {
			hops, lat = fmt.Sprint(row.Hops), fmt.Sprintf("%.3f", float64(row.Latency)/1e6)
		}
		if _, err := fmt.Fprintf(w, "%d,%s,%s,%.3f,%d\n", i, hops, lat, row.Start.Seconds(), ok); err != nil {
			return err
		}
	}
	return nil
}

// writeKeyLoad plots the records per node as a histogram in 20 bins.
func (r *Report) writeKeyLoad(w io.Writer) error {
	top := 0
	for _, v := range r.KeyLoadSamples {
		top = max(top, v)
	}
	const nbins = 20
	width := max(int(math.Ceil(float64(top+1)/nbins)), 1)
	bars := make([]float64, nbins)
	labels := make([]string, nbins)
	for _, v := range r.KeyLoadSamples {
		bars[min(v/width, nbins-1)]++
	}
	for i := range bars {
		bars[i] /= float64(max(len(r.KeyLoadSamples), 1))
		labels[i] = fmt.Sprint(i * width)
	}
	k := r.KeyLoad
	p := plot{
		Title:  "Records per node — " + r.title(),
		XLabel: fmt.Sprintf("records held at the end, every copy (bins of %d)", width), YLabel: "fraction of nodes",
		Note: fmt.Sprintf("Gini %.3f, min %d, mean %.1f, max %d", k.Gini, k.Min, k.Mean, k.Max),
	}
	return p.bars(w, labels, bars)
}

// writeKeyLoadCSV writes the records each live node holds, fewest first.
func (r *Report) writeKeyLoadCSV(w io.Writer) error {
	fmt.Fprintln(w, "rank,records")
	for i, v := range r.KeyLoadSamples {
		if _, err := fmt.Fprintf(w, "%d,%d\n", i, v); err != nil {
			return err
		}
	}
	return nil
}

func (r *Report) writeLoadCSV(w io.Writer) error {
	fmt.Fprintln(w, "rank,datagrams_received")
	for i, v := range r.LoadSamples {
		if _, err := fmt.Fprintf(w, "%d,%d\n", i, v); err != nil {
			return err
		}
	}
	return nil
}

func (r *Report) title() string {
	return fmt.Sprintf("%s, %d nodes, %s, %s, loss %g, churn %g/h, seed %d",
		r.Protocol, r.Nodes, r.Params(), r.Latency, r.Loss, r.Churn, r.Seed)
}

// Params names the protocol's parameters in its own words: Kademlia's K
// and α, Chord's routing and answer size.
func (r *Report) Params() string {
	if r.Protocol == "chord" {
		return fmt.Sprintf("%s routing, %d successors per answer", r.Routing, r.K)
	}
	return fmt.Sprintf("k=%d α=%d", r.K, r.Alpha)
}

func (r *Report) writeLatencyCDF(w io.Writer) error {
	lat := make([]float64, len(r.LatencySamples))
	for i, v := range r.LatencySamples {
		lat[i] = float64(v) / 1e6
	}
	slices.Sort(lat)
	pts := make([]Point, len(lat))
	for i, v := range lat {
		pts[i] = [2]float64{v, float64(i+1) / float64(len(lat))}
	}
	p := plot{
		Title:  "Lookup latency CDF — " + r.title(),
		XLabel: "lookup latency (ms)", YLabel: "fraction of lookups",
		Note: fmt.Sprintf("median %.0f ms (%.2f RTT), p99 %.0f ms; mean RTT %.0f ms", r.LatencyMsMedian, r.LatencyRTTsMedian, r.LatencyMsP99, r.RTTMs),
	}
	return p.lines(w, []Series{{Name: "lookups", Points: pts}}, 0, 1)
}

func (r *Report) writeHops(w io.Writer) error {
	counts := map[int32]int{}
	var top int32
	for _, h := range r.HopsSamples {
		counts[h]++
		top = max(top, h)
	}
	bars := make([]float64, top+1)
	labels := make([]string, top+1)
	for h := range bars {
		bars[h] = float64(counts[int32(h)]) / float64(max(len(r.HopsSamples), 1))
		labels[h] = fmt.Sprint(h)
	}
	p := plot{
		Title:  "Hops per lookup — " + r.title(),
		XLabel: "hops (longest chain of responses to the nearest node)", YLabel: "fraction of lookups",
		Note: fmt.Sprintf("median %g, mean %.2f, p99 %g", r.HopsMedian, r.HopsMean, r.HopsP99),
	}
	return p.bars(w, labels, bars)
}

// writeLoad plots the load distribution as a histogram of datagrams
// received per node, in 20 bins.
func (r *Report) writeLoad(w io.Writer) error {
	load := r.LoadSamples
	var top uint32
	for _, v := range load {
		top = max(top, v)
	}
	const nbins = 20
	width := max(uint32(math.Ceil(float64(top+1)/nbins)), 1)
	bars := make([]float64, nbins)
	labels := make([]string, nbins)
	for _, v := range load {
		bars[min(int(v/width), nbins-1)]++
	}
	for i := range bars {
		bars[i] /= float64(max(len(load), 1))
		labels[i] = fmt.Sprint(uint32(i) * width)
	}
	p := plot{
		Title:  "Load across nodes — " + r.title(),
		XLabel: fmt.Sprintf("datagrams received in the measured phase (bins of %d)", width), YLabel: "fraction of nodes",
		Note: fmt.Sprintf("Gini %.3f, max/mean %.2f", r.LoadGini, r.LoadMaxMean),
	}
	return p.bars(w, labels, bars)
}

// plot draws simple SVG charts by hand: axes, ticks, a title and a note,
// so the files need no tool but a browser.
type plot struct {
	Title, XLabel, YLabel, Note string
}

// Point is an (x, y) pair of a chart.
type Point = [2]float64

// Series is one line of a chart.
type Series struct {
	Name   string
	Points []Point
	Color  string // "" picks one from a palette
}

const (
	plotW, plotH                       = 800, 500
	marginL, marginR, marginT, marginB = 70, 30, 60, 60
)

var palette = []string{"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2"}

func (p plot) head(w io.Writer) {
	fmt.Fprintf(w, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", plotW, plotH, plotW, plotH)
	fmt.Fprintf(w, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(w, `<text x="%d" y="22" font-size="14" font-weight="bold">%s</text>`+"\n", marginL, esc(p.Title))
	fmt.Fprintf(w, `<text x="%d" y="42" fill="#555">%s</text>`+"\n", marginL, esc(p.Note))
	fmt.Fprintf(w, `<text x="%d" y="%d" text-anchor="middle">%s</text>`+"\n", marginL+(plotW-marginL-marginR)/2, plotH-15, esc(p.XLabel))
	fmt.Fprintf(w, `<text x="18" y="%d" text-anchor="middle" transform="rotate(-90 18 %d)">%s</text>`+"\n", marginT+(plotH-marginT-marginB)/2, marginT+(plotH-marginT-marginB)/2, esc(p.YLabel))
	fmt.Fprintf(w, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>`+"\n", marginL, plotH-marginB, plotW-marginR, plotH-marginB)
	fmt.Fprintf(w, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>`+"\n", marginL, marginT, marginL, plotH-marginB)
}

// lines draws series as polylines over a linear x axis from 0 to the
// largest x, and a y axis from ymin to ymax (computed when both are 0).
func (p plot) lines(w io.Writer, ss []Series, ymin, ymax float64) error {
	p.head(w)
	auto := ymin == 0 && ymax == 0
	var xmax float64
	for _, s := range ss {
		for _, pt := range s.Points {
			xmax = max(xmax, pt[0])
			if auto {
				ymax = max(ymax, pt[1])
			}
		}
	}
	if auto {
		ymax = niceCeil(ymax)
	}
	if ymax <= ymin {
		ymax = ymin + 1
	}
	xmax = niceCeil(xmax)
	pw, ph := float64(plotW-marginL-marginR), float64(plotH-marginT-marginB)
	sx := func(x float64) float64 { return marginL + x/xmax*pw }
	sy := func(y float64) float64 { return float64(plotH-marginB) - (y-ymin)/(ymax-ymin)*ph }
	for i := 0; i <= 5; i++ {
		x := xmax * float64(i) / 5
		fmt.Fprintf(w, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ddd"/><text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n",
			sx(x), marginT, sx(x), plotH-marginB, sx(x), plotH-marginB+16, num(x))
		y := ymin + (ymax-ymin)*float64(i)/5
		fmt.Fprintf(w, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/><text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n",
			marginL, sy(y), plotW-marginR, sy(y), marginL-6, sy(y)+4, num(y))
	}
	for i, s := range ss {
		color := s.Color
		if color == "" {
			color = palette[i%len(palette)]
		}
		var b strings.Builder
		// Thin the points to at most ~2000 so that big runs stay small.
		step := max(len(s.Points)/2000, 1)
		for j := 0; j < len(s.Points); j += step {
			pt := s.Points[j]
			fmt.Fprintf(&b, "%.1f,%.1f ", sx(pt[0]), sy(pt[1]))
		}
		if n := len(s.Points); n > 0 && (n-1)%step != 0 {
			fmt.Fprintf(&b, "%.1f,%.1f", sx(s.Points[n-1][0]), sy(s.Points[n-1][1]))
		}
		fmt.Fprintf(w, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`+"\n", color, b.String())
		if len(s.Points) <= 12 {
			for _, pt := range s.Points {
				fmt.Fprintf(w, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>`+"\n", sx(pt[0]), sy(pt[1]), color)
			}
		}
		if len(ss) > 1 {
			fmt.Fprintf(w, `<rect x="%d" y="%d" width="12" height="12" fill="%s"/><text x="%d" y="%d">%s</text>`+"\n",
				plotW-marginR-200, marginT+8+18*i, color, plotW-marginR-182, marginT+18+18*i, esc(s.Name))
		}
	}
	_, err := fmt.Fprintln(w, "</svg>")
	return err
}

// bars draws a bar chart of values with a label under each bar.
func (p plot) bars(w io.Writer, labels []string, values []float64) error {
	p.head(w)
	var ymax float64
	for _, v := range values {
		ymax = max(ymax, v)
	}
	if ymax == 0 {
		ymax = 1
	}
	ymax = niceCeil(ymax)
	pw, ph := float64(plotW-marginL-marginR), float64(plotH-marginT-marginB)
	bw := pw / float64(max(len(values), 1))
	for i := 0; i <= 5; i++ {
		y := ymax * float64(i) / 5
		yy := float64(plotH-marginB) - y/ymax*ph
		fmt.Fprintf(w, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/><text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n",
			marginL, yy, plotW-marginR, yy, marginL-6, yy+4, num(y))
	}
	for i, v := range values {
		h := v / ymax * ph
		x := marginL + float64(i)*bw
		fmt.Fprintf(w, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s: %.4f</title></rect>`+"\n",
			x+bw*0.1, float64(plotH-marginB)-h, bw*0.8, h, palette[0], esc(labels[i]), v)
		fmt.Fprintf(w, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", x+bw/2, plotH-marginB+16, esc(labels[i]))
	}
	_, err := fmt.Fprintln(w, "</svg>")
	return err
}

// Lines writes an SVG line chart of several series (x, y points each);
// the examples use it for figures that compare runs.
func Lines(w io.Writer, title, xlabel, ylabel, note string, ss []Series) error {
	return plot{Title: title, XLabel: xlabel, YLabel: ylabel, Note: note}.lines(w, ss, 0, 0)
}

// niceCeil rounds x up to 1, 2 or 5 times a power of ten.
func niceCeil(x float64) float64 {
	if x <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(x)))
	for _, m := range []float64{1, 2, 5, 10} {
		if x <= m*p {
			return m * p
		}
	}
	return 10 * p
}

func num(x float64) string {
	if x == math.Trunc(x) && math.Abs(x) < 1e7 {
		return fmt.Sprintf("%.0f", x)
	}
	return fmt.Sprintf("%.2g", x)
}

func esc(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}
