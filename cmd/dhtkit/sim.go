package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/dhtkit/dhtkit/sim"
)

// newSimCmd is `dhtkit sim`: a whole network in one process, on the real
// engine, over a modelled network with a virtual clock.
func newSimCmd() *cobra.Command {
	var (
		jsonOut    bool
		out        string
		scenario   string
		latency    string
		session    string
		build      string
		partitions []string
		selfLookup bool
		memLimit   float64
		vnodes     string
		cfg        = sim.Defaults()
	)
	cmd := &cobra.Command{
		Use:   "sim",
		Short: "Simulate a DHT network in one process (virtual time, modelled network)",
		Long: `sim runs many nodes of the real kademlia (or chord) engine in one process, over a
modelled network (latency, loss, partitions, NAT, churn) with a virtual
clock, then reports lookup success, hops, latency, messages and load.
The same seed and flags give the same figures.

A scenario file (--scenario FILE) is a JSON object whose keys are flag
names, e.g. {"nodes": 10000, "churn": 0.5, "partition": ["2m+3m:0.5"]};
flags given on the command line win over it.`,
		Example: `  dhtkit sim --nodes 100000 --lookups 10000 --json
  dhtkit sim --nodes 10000 --churn 0.5 --session weibull:0.5 --duration 1h --out results/
  dhtkit sim --nodes 2000 --build join --loss 0.05 --latency uniform:10ms-200ms`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if scenario != "" {
				if err := applyScenario(cmd, scenario); err != nil {
					return err
				}
			}
			var err error
			if cfg.Latency, err = sim.ParseLatency(latency); err != nil {
				return usageError("%v", err)
			}
			if cfg.Session, err = sim.ParseSession(session); err != nil {
				return usageError("%v", err)
			}
			cfg.Partitions = cfg.Partitions[:0]
			for _, p := range partitions {
				part, err := sim.ParsePartition(p)
				if err != nil {
					return usageError("%v", err)
				}
				cfg.Partitions = append(cfg.Partitions, part)
			}
			if strings.Contains(cfg.Protocol, "chord") {
				cfg.KV = true // Chord stores key-value records only (no get_peers)
			}
			cfg.Build = sim.Build(build)
			cfg.SelfLookup = &selfLookup
			if memLimit > 0 {
				debug.SetMemoryLimit(int64(memLimit * (1 << 30)))
			}
			vn, err := parseInts(vnodes)
			if err != nil {
				return usageError("--vnodes %q: want a number of virtual nodes, or a comma-separated list", vnodes)
			}
			cfg.VNodes = vn[0]
			if runs := simRuns(cfg, vn); len(runs) > 1 {
				return compareRuns(cmd, runs, jsonOut, out)
			}
			s, err := sim.New(cfg)
			if err != nil {
				return usageError("%v", err)
			}
			rep, err := s.Run(cmd.Context())
			if err != nil {
				return err
			}
			if out != "" {
				if err := sim.WriteFiles(out, rep); err != nil {
					return err
				}
			}
			w := cmd.OutOrStdout()
			if jsonOut {
				b, err := json.Marshal(rep)
				if err != nil {
					return err
				}
				_, err = fmt.Fprintf(w, "%s\n", b)
				return err
			}
			printReport(w, rep, out)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Protocol, "protocol", cfg.Protocol, "kademlia or chord; a comma-separated list runs each on the same workload and prints one table")
	f.IntVar(&cfg.Nodes, "nodes", cfg.Nodes, "nodes in the network")
	f.IntVar(&cfg.Lookups, "lookups", cfg.Lookups, "lookups of random targets, spread over --duration")
	f.IntVar(&cfg.Keys, "keys", 100, "infohashes announced, re-announced and searched (get_peers)")
	f.BoolVar(&cfg.KV, "kv", false, "make the keys key-value records: written once (KVPut), read back (KVGet); implied by --protocol chord")
	f.Float64Var(&cfg.Churn, "churn", 0, "fraction of nodes replaced per simulated hour")
	f.StringVar(&session, "session", "exp", "session lengths under churn: exp or weibull:SHAPE")
	f.Float64Var(&cfg.Loss, "loss", 0, "packet loss probability")
	f.StringVar(&latency, "latency", "internet", "latency model: internet[:SPAN], uniform:MIN-MAX or constant:D")
	f.DurationVar(&cfg.Duration, "duration", cfg.Duration, "simulated time of the measured phase")
	f.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "random seed")
	f.StringVar(&out, "out", "", "directory for CSV files, SVG plots and report.json")
	f.BoolVar(&jsonOut, "json", false, "print one JSON object")
	f.IntVar(&cfg.K, "k", cfg.K, "bucket size and lookup width (K)")
	f.IntVar(&cfg.Alpha, "alpha", cfg.Alpha, "lookup parallelism (α)")
	f.IntVar(&cfg.Beta, "beta", 0, "closest nodes that must answer before a lookup that reads ends (0: the engine's default, 3; K: wait for all K)")
	f.BoolVar(&cfg.StrictBEP5, "strict-bep5", false, "routing tables keep BEP 5's rule: a full bucket of good nodes turns newcomers away, however fast")
	f.IntVar(&cfg.Seen, "seen", cfg.Seen, "oracle build-up: responders each node has heard from, of which its buckets keep the fastest")

	f.StringVar(&build, "build", string(sim.Oracle), "build-up: oracle (tables filled from the global id list) or join (nodes bootstrap one by one)")
	f.BoolVar(&selfLookup, "self-lookup", true, "oracle build-up: every node looks itself up before the measured phase")
	f.DurationVar(&cfg.JoinInterval, "join-interval", cfg.JoinInterval, "join build-up: time between two nodes' starts")
	f.Float64Var(&cfg.NAT, "nat", 0, "fraction of nodes behind a NAT (unreachable unless they spoke first)")
	f.Float64Var(&cfg.Silent, "silent", 0, "fraction of nodes that fall silent when the measured phase starts")
	f.Float64Var(&cfg.Liars, "liars", 0, "fraction of nodes that answer with made-up nodes next to the target (kademlia)")
	f.StringArrayVar(&partitions, "partition", nil, "a partition AT+FOR:FRACTION, e.g. 2m+3m:0.5 (repeatable)")
	f.StringVar(&cfg.Table, "table", cfg.Table, "routing table: bep5 or keepall")
	f.StringVar(&vnodes, "vnodes", "1", "chord: virtual nodes per node, each at its own id (evens out the key load; no churn); \"1,4,16\" compares them in one table")
	f.StringVar(&cfg.Routing, "routing", "", "chord: lookup routing, fingers (default) or linear (one successor at a time); \"fingers,linear\" compares them in one table")
	f.DurationVar(&cfg.QueryTimeout, "query-timeout", 0, "engine QueryTimeout (0: the engine's default)")
	f.DurationVar(&cfg.MinQueryTimeout, "min-query-timeout", 0, "engine MinQueryTimeout (0: the engine's default)")
	f.StringVar(&scenario, "scenario", "", "JSON file of flag values")
	f.IntVar(&cfg.Permanent, "permanent", 0, "with --kv: permanent puts, each refreshed by a writer that stays up, cancelled at --permanent-cancel")
	f.DurationVar(&cfg.PermanentTTL, "permanent-ttl", 0, "the permanent puts' TTL (0: 10m)")
	f.DurationVar(&cfg.PermanentCancel, "permanent-cancel", 0, "when the writers cancel, from the measured phase's start (0: the TTL plus 10m before the end)")
	f.Float64Var(&memLimit, "mem-limit", 0, "Go memory limit in GiB (0: none; GOMEMLIMIT also works)")
	return cmd
}

// applyScenario sets every flag named in the JSON file that the command
// line did not set.
func applyScenario(cmd *cobra.Command, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return usageError("scenario: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return usageError("scenario %s: not a JSON object of flag values: %v", path, err)
	}
	f := cmd.Flags()
	for name, v := range m {
		if name == "scenario" || name == "comment" {
			continue
		}
		fl := f.Lookup(name)
		if fl == nil {
			return usageError("scenario %s: unknown flag %q (see dhtkit sim --help)", path, name)
		}
		if fl.Changed {
			continue
		}
		vals := []any{v}
		if list, ok := v.([]any); ok {
			vals = list
		}
		for _, x := range vals {
			text := fmt.Sprint(x)
			if n, ok := x.(float64); ok {
				text = strconv.FormatFloat(n, 'f', -1, 64) // 1000000, not 1e+06
			}
			if err := f.Set(name, text); err != nil {
				return usageError("scenario %s: %s: %v", path, name, err)
			}
		}
	}
	return nil
}

func printReport(w io.Writer, r *sim.Report, out string) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	vn := ""
	if r.VNodes > 1 {
		vn = fmt.Sprintf(" × %d virtual", r.VNodes)
	}
	p("%s: %d nodes%s (%s build-up), %s, latency %s, loss %g, churn %g/h (%s), seed %d",
		r.Protocol, r.Nodes, vn, r.Build, r.Params(), r.Latency, r.Loss, r.Churn, r.Session, r.Seed)
	for _, e := range r.Scenario {
		switch e.Kind {
		case "partition":
			p("scenario         partition of %.0f%% of the nodes from %gs for %gs", 100*e.Fraction, e.AtS, e.ForS)
		case "churn":
			p("scenario         churn %g of the nodes per hour for %gs", e.Fraction, e.ForS)
		}
	}
	p("lookups          %d: %.2f%% found the nearest node, %.2f%% the %d nearest in order, %.2f%% all %d nearest", r.Lookups, 100*r.SuccessRate, 100*r.BetaRate, r.Beta, 100*r.AllKRate, r.K)

	p("hops             median %g, mean %.2f, p99 %g", r.HopsMedian, r.HopsMean, r.HopsP99)
	p("latency          median %.0f ms (%.2f RTT), p90 %.0f ms, p99 %.0f ms (%.2f RTT); mean RTT %.0f ms",
		r.LatencyMsMedian, r.LatencyRTTsMedian, r.LatencyMsP90, r.LatencyMsP99, r.LatencyRTTsP99, r.RTTMs)
	p("messages/lookup  %.1f datagrams (%.1f queries, %.2f timeouts)", r.MessagesPerLookup, r.RPCsPerLookup, r.TimeoutsPerLookup)
	if r.Keys > 0 {
		how := "get_peers"
		if r.KeyLoad != nil {
			how = "get" // key-value records (--kv, and always on Chord)
		}
		p("keys             %d: %s found %.1f%%, %d lost at the end", r.Keys, how, 100*r.GetSuccessRate, r.KeysLost)
	}
	p("message load     Gini %.3f, max/mean %.2f (datagrams received per node)", r.LoadGini, r.LoadMaxMean)
	if k := r.KeyLoad; k != nil {
		p("key load         Gini %.3f, records per node min %d, mean %.1f, max %d (max/mean %.2f)", k.Gini, k.Min, k.Mean, k.Max, k.MaxMean)
	}
	if r.Protocol == "chord" {
		p("ring             %.1f%% of successor-list entries are the true successors, %.1f%% of successors and fingers dead, %.1f%% call a live node bad", 100*r.RoutingCorrectness, 100*r.RoutingDead, 100*r.RoutingFalseBad)
	} else {
		p("routing tables   %.1f%% of the true %d nearest held, %.1f%% of entries dead, %.1f%% call a live node bad", 100*r.RoutingCorrectness, r.K, 100*r.RoutingDead, 100*r.RoutingFalseBad)
	}
	if r.Joins+r.Leaves > 0 {
		p("churn            %d left, %d joined", r.Leaves, r.Joins)
	}
	p("simulated        %s in %.1f s wall (%.0f datagrams/s), peak heap %.2f GiB, %.0f B/node",
		(time.Duration(r.SimSeconds * float64(time.Second))).Round(time.Second), r.WallSeconds, r.MessagesPerWallSecond,
		float64(r.PeakHeapBytes)/(1<<30), r.MemBytesPerNode)
	if out != "" {
		p("files            %s: report.json, lookups.csv, load.csv, latency_cdf.svg, hops.svg, load.svg", out)
	}
}

// simRuns expands comma-separated --protocol and --routing into one
// configuration per run, all on the same seed and workload.
func simRuns(cfg sim.Config, vnodes []int) []sim.Config {
	var runs []sim.Config
	for _, p := range strings.Split(cfg.Protocol, ",") {
		c := cfg
		c.Protocol = strings.TrimSpace(p)
		if c.Protocol != "chord" {
			c.Routing = ""
			runs = append(runs, c)
			continue
		}
		for _, r := range strings.Split(cfg.Routing, ",") {
			c.Routing = strings.TrimSpace(r)
			for _, v := range vnodes {
				c.VNodes = v
				runs = append(runs, c)
			}
		}
	}
	return runs
}

// compareRuns runs each configuration and prints one table (or, with
// --json, one JSON object per run, a line each); --out gets a directory
// per run and compare.csv.
func compareRuns(cmd *cobra.Command, runs []sim.Config, jsonOut bool, out string) error {
	w := cmd.OutOrStdout()
	var reps []*sim.Report
	for _, c := range runs {
		s, err := sim.New(c)
		if err != nil {
			return usageError("%v", err)
		}
		rep, err := s.Run(cmd.Context())
		if err != nil {
			return err
		}
		if out != "" {
			if err := sim.WriteFiles(filepath.Join(out, strings.ReplaceAll(rep.Name(), "/", "-")), rep); err != nil {
				return err
			}
		}
		if jsonOut {
			b, err := json.Marshal(rep)
			if err != nil {
				return err
			}
			fmt.Fprintf(w, "%s\n", b)
		}
		reps = append(reps, rep)
	}
	if out != "" {
		var buf strings.Builder
		if err := sim.WriteTableCSV(&buf, reps); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(out, "compare.csv"), []byte(buf.String()), 0o644); err != nil {
			return fmt.Errorf("sim: %w", err)
		}
	}
	if jsonOut {
		return nil
	}
	r := reps[0]
	fmt.Fprintf(w, "%d nodes (%s build-up), %d lookups, %d keys, latency %s, loss %g, churn %g/h, seed %d\n",
		r.Nodes, r.Build, r.Lookups, r.Keys, r.Latency, r.Loss, r.Churn, r.Seed)
	return sim.WriteTable(w, reps)
}

// parseInts reads a comma-separated list of non-negative integers.
func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 0 {
			return nil, fmt.Errorf("%q: not a count", f)
		}
		out = append(out, n)
	}
	return out, nil
}
