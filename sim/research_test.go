package sim

import (
	"bytes"
	"encoding/csv"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestLookupRowsAndScenario: lookups.csv has a row per lookup with its
// start time and success, the partition and churn are in the report, and
// lookups that start inside the partition fail more than the others.
func TestLookupRowsAndScenario(t *testing.T) {
	c := Config{Nodes: 300, Lookups: 600, Duration: 6 * time.Minute, Churn: 0.5,
		Partitions: []Partition{{At: 2 * time.Minute, For: 2 * time.Minute, Fraction: 0.5}}}
	r := run(t, c)
	if len(r.Rows) != r.Lookups {
		t.Fatalf("%d rows, %d lookups", len(r.Rows), r.Lookups)
	}
	if len(r.Scenario) != 2 || r.Scenario[0] != (ScenarioEvent{Kind: "partition", AtS: 120, ForS: 120, Fraction: 0.5}) || r.Scenario[1].Kind != "churn" {
		t.Fatalf("scenario %+v", r.Scenario)
	}
	var buf bytes.Buffer
	if err := r.writeLookupsCSV(&buf); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&buf).ReadAll()
	if err != nil || len(recs) != r.Lookups+1 || strings.Join(recs[0], ",") != "lookup,hops,latency_ms,start_s,success" {
		t.Fatalf("lookups.csv: %v, %d rows, header %v", err, len(recs), recs[0])
	}
	var in, inOK, out, outOK float64
	for _, rec := range recs[1:] {
		start, err := strconv.ParseFloat(rec[3], 64)
		if err != nil || start < 0 || start > c.Duration.Seconds() || (rec[4] != "0" && rec[4] != "1") {
			t.Fatalf("row %v", rec)
		}
		ok := 0.0
		if rec[4] == "1" {
			ok = 1
		}
		if start >= 125 && start < 235 {
			in, inOK = in+1, inOK+ok
		} else if start < 115 {
			out, outOK = out+1, outOK+ok
		}
	}
	if in == 0 || out == 0 || inOK/in >= outOK/out {
		t.Errorf("success inside the partition %.0f/%.0f, before it %.0f/%.0f: want a dip", inOK, in, outOK, out)
	}
}

// TestChordWordsAndKeyLoad: a Chord run reports its routing and the key
// load; linear routing takes many more hops than fingers, and the key
// load's Gini is what its records per node give.
func TestChordWordsAndKeyLoad(t *testing.T) {
	hops := map[string]float64{}
	for _, routing := range []string{"", "linear"} {
		r := run(t, Config{Protocol: "chord", Nodes: 60, Lookups: 60, Keys: 180, KV: true, Duration: time.Minute, Routing: routing})
		if strings.Contains(r.Params(), "α") || !strings.Contains(r.Params(), "routing") {
			t.Errorf("chord params %q", r.Params())
		}
		k := r.KeyLoad
		if k == nil || k.Nodes != 60 || k.Min > k.Max || k.Mean < 8 || k.Mean > 10 || k.Gini <= 0 || k.Gini >= 1 || len(r.KeyLoadSamples) != 60 {
			t.Fatalf("key load %+v, want 180×3 copies over 60 nodes", k)
		}
		hops[r.Routing] = r.HopsMean
	}
	if hops["fingers"] > 6 || hops["linear"] < 15 {
		t.Errorf("mean hops %v: want fingers about ½·log2(60)+1, linear about 60/2", hops)
	}
	if r := run(t, Config{Nodes: 100, Lookups: 10, Duration: time.Minute}); r.KeyLoad != nil || !strings.Contains(r.Params(), "k=8 α=3") {
		t.Errorf("kademlia without records: key load %+v, params %q", r.KeyLoad, r.Params())
	}
	if _, err := New(Config{Routing: "linear"}); err == nil {
		t.Error("linear routing on kademlia accepted")
	}
}

// TestVirtualNodesEvenTheKeyLoad: more virtual nodes per node, a lower
// Gini of the records per node (Stoica et al., §6.3), with every key
// still found.
func TestVirtualNodesEvenTheKeyLoad(t *testing.T) {
	var last float64 = 1
	for _, v := range []int{1, 4, 16} {
		r := run(t, Config{Protocol: "chord", Nodes: 40, VNodes: v, Lookups: 20, Keys: 400, KV: true, Duration: 30 * time.Second})
		if r.Nodes != 40 || r.KeyLoad == nil || r.KeyLoad.Nodes != 40 || r.KeysLost > 0 || r.SuccessRate < 1 {
			t.Fatalf("vnodes %d: nodes %d, key load %+v, %d lost, success %.3f", v, r.Nodes, r.KeyLoad, r.KeysLost, r.SuccessRate)
		}
		if r.KeyLoad.Gini >= last {
			t.Errorf("vnodes %d: key Gini %.3f, not below %.3f", v, r.KeyLoad.Gini, last)
		}
		last = r.KeyLoad.Gini
	}
	for _, c := range []Config{{VNodes: 4}, {Protocol: "chord", VNodes: 4, Churn: 1}, {Protocol: "chord", VNodes: 65}} {
		if _, err := New(c); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}
