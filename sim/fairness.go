package sim

import (
	"slices"

	"github.com/dhtkit/dhtkit/internal/stat"
	"github.com/dhtkit/dhtkit/store"
)

// KeyLoad is how evenly the records are spread over the live nodes.
type KeyLoad struct {
	Nodes   int     `json:"nodes"` // live nodes counted
	Min     int     `json:"min"`   // records on the least loaded node
	Max     int     `json:"max"`
	Mean    float64 `json:"mean"`
	Gini    float64 `json:"gini"`     // 0: all equal; near 1: one node holds all
	Bytes   int64   `json:"bytes"`    // bytes of all records, every copy
	MaxMean float64 `json:"max_mean"` // max / mean
}

// keyLoad counts the records each live, up node holds, sorted; nil when
// none holds any.
// With virtual nodes, a node's count is the sum over its engines
// (engine i belongs to node i / VNodes).
func (s *Sim) keyLoad() (*KeyLoad, []int) {
	per := max(s.cfg.VNodes, 1)
	byNode := make(map[int32]int)
	var total, bytes int64
	for _, i := range s.live {
		n := &s.nodes[i]
		st, ok := n.e.(interface{ Store() store.Store })
		if !n.up() || !ok {
			continue
		}
		k, b := st.Store().Stats()
		byNode[i/int32(per)] += k
		total += int64(k)
		bytes += b
	}
	counts := make([]int, 0, len(byNode))
	for _, k := range byNode {
		counts = append(counts, k)
	}
	if total == 0 {
		return nil, nil
	}
	slices.Sort(counts)
	u := make([]uint32, len(counts))
	for i, v := range counts {
		u[i] = uint32(v)
	}
	mean := float64(total) / float64(len(counts))
	return &KeyLoad{
		Nodes: len(counts), Min: counts[0], Max: counts[len(counts)-1], Mean: round3(mean),
		Gini: round3(stat.Gini(u)), Bytes: bytes, MaxMean: round3(float64(counts[len(counts)-1]) / mean),
	}, counts
}

// ScenarioEvent is one thing a run does to the network, for the report.
type ScenarioEvent struct {
	Kind string `json:"kind"` // "partition" or "churn"
	// AtS and ForS: when it starts, in seconds after the measured phase
	// began, and how long it lasts (churn: the whole phase).
	AtS  float64 `json:"at_s"`
	ForS float64 `json:"for_s"`
	// Fraction: partition, the nodes on the small side; churn, the nodes
	// replaced per hour.
	Fraction float64 `json:"fraction"`
}

func scenario(c Config) []ScenarioEvent {
	var ev []ScenarioEvent
	for _, p := range c.Partitions {
		ev = append(ev, ScenarioEvent{Kind: "partition", AtS: p.At.Seconds(), ForS: p.For.Seconds(), Fraction: p.Fraction})
	}
	if c.Churn > 0 {
		ev = append(ev, ScenarioEvent{Kind: "churn", ForS: c.Duration.Seconds(), Fraction: c.Churn})
	}
	return ev
}
