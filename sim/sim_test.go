package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/id"
)

func run(t *testing.T, c Config) *Report {
	t.Helper()
	r, err := Run(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// machineFree zeroes the figures that depend on the machine, not the run.
func machineFree(r *Report) []byte {
	c := *r
	c.WallSeconds, c.BuildWallSeconds, c.MessagesPerWallSecond, c.PeakHeapBytes, c.MemBytesPerNode = 0, 0, 0, 0, 0
	b, _ := json.Marshal(&c)
	return b
}

func TestDeterministic(t *testing.T) {
	c := Config{
		Nodes: 300, Lookups: 200, Keys: 20, Seed: 42, Loss: 0.02, Churn: 3, NAT: 0.1, Silent: 0.05,
		Session: Session{Shape: 0.5}, Duration: 5 * time.Minute,
		Partitions: []Partition{{At: time.Minute, For: time.Minute, Fraction: 0.3}},
	}
	a, b := machineFree(run(t, c)), machineFree(run(t, c))
	if string(a) != string(b) {
		t.Fatalf("same seed and config, different reports:\n%s\n%s", a, b)
	}
	c.Seed++
	if d := machineFree(run(t, c)); string(d) == string(a) {
		t.Fatal("another seed gave the very same report")
	}
}

func TestLookupsSucceed(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    Config
	}{
		{"oracle", Config{Nodes: 500, Lookups: 300, Keys: 20}},
		{"join", Config{Nodes: 300, Lookups: 300, Keys: 20, Build: Join}},
		{"keepall", Config{Nodes: 300, Lookups: 200, Table: "keepall", Latency: Latency{Kind: Uniform, Min: 10 * time.Millisecond, Max: 100 * time.Millisecond}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := run(t, tc.c)
			if r.Lookups != tc.c.Lookups {
				t.Errorf("%d lookups reported, want %d", r.Lookups, tc.c.Lookups)
			}
			if r.SuccessRate < 0.99 || r.BetaRate < 0.95 {
				t.Errorf("success %.3f, beta %.3f; want >= 0.99 and 0.95", r.SuccessRate, r.BetaRate)
			}

			if r.HopsMedian < 1 || r.LatencyMsMedian <= 0 || r.MessagesPerLookup < 2*float64(tc.c.K+8) {
				t.Errorf("implausible figures: hops %g, latency %g ms, %g messages", r.HopsMedian, r.LatencyMsMedian, r.MessagesPerLookup)
			}
			if tc.c.Keys > 0 && (r.GetSuccessRate < 0.95 || r.KeysLost > 0) {
				t.Errorf("get_peers found %.3f of the keys, %d lost", r.GetSuccessRate, r.KeysLost)
			}
		})
	}
}

// TestConditionsHurt checks that each adverse condition moves the figures
// the way it must, against the same network without it.
func TestConditionsHurt(t *testing.T) {
	base := Config{Nodes: 400, Lookups: 300, Keys: 30, Seed: 3, Duration: 10 * time.Minute}
	b := run(t, base)
	for _, tc := range []struct {
		name  string
		apply func(*Config)
		check func(b, r *Report) bool
		what  string
	}{
		{"loss", func(c *Config) { c.Loss = 0.2 },
			func(b, r *Report) bool {
				return r.TimeoutsPerLookup > b.TimeoutsPerLookup && r.LatencyMsMedian > b.LatencyMsMedian
			}, "more timeouts and a higher median latency"},
		{"partition", func(c *Config) { c.Partitions = []Partition{{At: 0, For: 10 * time.Minute, Fraction: 0.5}} },
			func(b, r *Report) bool { return r.SuccessRate < b.SuccessRate-0.2 && r.Partitioned > 0 },
			"success down by at least 0.2"},
		{"churn", func(c *Config) { c.Churn = 4 },
			func(b, r *Report) bool {
				return r.Leaves > 0 && r.RoutingDead > b.RoutingDead && r.TimeoutsPerLookup > b.TimeoutsPerLookup
			}, "dead table entries and timeouts"},
		{"silent", func(c *Config) { c.Silent = 0.3 },
			func(b, r *Report) bool {
				return r.TimeoutsPerLookup > b.TimeoutsPerLookup && r.LatencyMsMedian > b.LatencyMsMedian
			},
			"timeouts and latency up"},
		{"liars", func(c *Config) { c.Liars = 0.2 },
			func(b, r *Report) bool {
				// Made-up nodes cost timeouts; lookups still find the truth.
				return r.TimeoutsPerLookup > b.TimeoutsPerLookup && r.SuccessRate >= 0.99
			},
			"timeouts up, success kept"},
		{"nat", func(c *Config) { c.NAT = 0.3 },
			func(b, r *Report) bool { return r.NATDropped > 0 && r.LatencyMsMedian > b.LatencyMsMedian },
			"datagrams dropped at NATs, and latency up"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := base
			tc.apply(&c)
			r := run(t, c)
			if !tc.check(b, r) {
				t.Errorf("want %s; without: %s\nwith: %s", tc.what, machineFree(b), machineFree(r))
			}
		})
	}
}

func TestIndexClosest(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var x index
	var all []ref
	for i := range 5000 {
		r := ref{id: id.Random(randReader{rng}), n: int32(i)}
		all = append(all, r)
		x.add(r)
	}
	x.fold()
	for i := 5000; i < 5100; i++ { // some left in the unsorted list
		r := ref{id: id.Random(randReader{rng}), n: int32(i)}
		all = append(all, r)
		x.add(r)
	}
	odd := func(n int32) bool { return n%2 == 1 }
	for range 200 {
		target := id.Random(randReader{rng})
		var want []ref
		for _, r := range all {
			if odd(r.n) {
				want = append(want, r)
			}
		}
		slices.SortFunc(want, func(a, b ref) int { return id.CompareDistance(target, a.id, b.id) })
		got := x.closest(target, 8, odd, nil)
		if !slices.Equal(got, want[:8]) {
			t.Fatalf("closest to %v: got %v, want %v", target, got, want[:8])
		}
	}
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Latency
		ok   bool
	}{
		{"internet", DefaultLatency, true},
		{"internet:80ms", Latency{Kind: Internet, Span: 80 * time.Millisecond, Jitter: DefaultLatency.Jitter}, true},
		{"uniform:10ms-200ms", Latency{Kind: Uniform, Min: 10 * time.Millisecond, Max: 200 * time.Millisecond}, true},
		{"constant:50ms", Latency{Kind: Constant, Base: 50 * time.Millisecond}, true},
		{"50ms", Latency{Kind: Constant, Base: 50 * time.Millisecond}, true},
		{"uniform:200ms-10ms", Latency{}, false},
		{"fast", Latency{}, false},
	} {
		got, err := ParseLatency(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseLatency(%q) = %+v, %v; want %+v, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
	p, err := ParsePartition("2m+3m:0.25")
	if err != nil || p != (Partition{At: 2 * time.Minute, For: 3 * time.Minute, Fraction: 0.25}) {
		t.Errorf("ParsePartition: %+v, %v", p, err)
	}
	for _, bad := range []string{"2m:0.5", "2m+3m:1.5", "x+3m:0.5"} {
		if _, err := ParsePartition(bad); err == nil {
			t.Errorf("ParsePartition(%q) accepted", bad)
		}
	}
	if s, err := ParseSession("weibull:0.5"); err != nil || s.Shape != 0.5 {
		t.Errorf("ParseSession: %+v, %v", s, err)
	}
}

// TestSessionMean checks that Weibull sessions have the mean asked for.
func TestSessionMean(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	for _, shape := range []float64{1, 0.5, 2} {
		var sum float64
		const n = 200000
		for range n {
			sum += float64(Session{Shape: shape}.draw(time.Hour, rng))
		}
		if mean := time.Duration(sum / n); mean < 55*time.Minute || mean > 65*time.Minute {
			t.Errorf("shape %g: mean session %v, want about 1h", shape, mean)
		}
	}
}

func TestWriteFiles(t *testing.T) {
	r := run(t, Config{Nodes: 200, Lookups: 100})
	dir := t.TempDir()
	if err := WriteFiles(dir, r); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"latency_cdf.svg", "hops.svg", "load.svg"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		// Well-formed XML, with something drawn.
		d := xml.NewDecoder(bytes.NewReader(b))
		shapes := 0
		for {
			tok, err := d.Token()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if se, ok := tok.(xml.StartElement); ok && (se.Name.Local == "polyline" || se.Name.Local == "rect") {
				shapes++
			}
		}
		if shapes < 2 {
			t.Errorf("%s: %d shapes, want a plot", name, shapes)
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "lookups.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if lines := bytes.Count(b, []byte("\n")); lines != r.Lookups+1 {
		t.Errorf("lookups.csv: %d lines, want %d", lines, r.Lookups+1)
	}
}

// TestKVDurability writes key-value records once and reads them back at
// the end: none may be lost without churn, and replication with repair
// must keep nearly all of them through nodes crashing and joining.
func TestKVDurability(t *testing.T) {
	for _, tc := range []struct {
		name     string
		churn    float64
		maxLost  int
		minReads float64
	}{
		{"stable", 0, 0, 1},
		{"churn", 2, 2, 0.95}, // every node replaced twice an hour, by crashing
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The two runs share nothing: side by side they take the time
			// of the longer one, and on a busy machine (load average
			// 10-40), where each runnable thread gets a small share of
			// the cores, two threads get twice the share. The package
			// must end within go test's 10 minutes there too.
			t.Parallel()
			r := run(t, Config{Nodes: 150, Lookups: 20, Keys: 60, KV: true, Churn: tc.churn, Seed: 5, Duration: 20 * time.Minute})
			t.Logf("%s: %d joins, %d leaves, %d of %d keys lost, reads %.3f", tc.name, r.Joins, r.Leaves, r.KeysLost, r.Keys, r.GetSuccessRate)
			if tc.churn > 0 && r.Leaves == 0 {
				t.Fatal("no churn happened")
			}
			if r.KeysLost > tc.maxLost || r.GetSuccessRate < tc.minReads || r.AnnounceSuccessRate < 1 {
				t.Errorf("lost %d keys (max %d), reads %.3f (min %.2f), writes %.3f", r.KeysLost, tc.maxLost, r.GetSuccessRate, tc.minReads, r.AnnounceSuccessRate)
			}
		})
	}
}
