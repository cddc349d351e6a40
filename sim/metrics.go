package sim

import (
	"math"
	"slices"
	"time"

	"github.com/dhtkit/dhtkit/chord"
	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/internal/stat"
	"github.com/dhtkit/dhtkit/kademlia"
	"github.com/dhtkit/dhtkit/krpc"
	"github.com/dhtkit/dhtkit/routing"
)

// measure collects the figures of a run as it goes.
type measure struct {
	lookups, lookupOK, lookupAllK, lookupBeta, lookupErr int
	hops                                                 []int32
	latency                                              []int64 // ns
	msgs, rpcs, timeouts                                 int64
	hopsSum                                              int64

	announces, announceOK int
	gets, getOK           int
	finals, finalOK       int
	finalRefused, refused int // reads refused for crashed replicas (refusedForDead)
	finalUnwritten        int // final reads not found of keys whose write no node acknowledged

	joins, leaves, joinOK, joinFail int

	sent, delivered, lost, partitioned, natDropped, toDead, undeliverable uint64
	delaySum                                                              float64
	delayN                                                                uint64

	bytesAtStart uint64

	heapAfterBuild, peakHeap uint64
	buildWall                time.Duration

	rows []LookupRow // every lookup, for lookups.csv
}

// LookupRow is one lookup of the measured phase, a row of lookups.csv.
type LookupRow struct {
	Start   time.Duration // from the start of the measured phase
	Hops    int32         // -1: it ended without a result (no node up, or its node left)
	Latency time.Duration
	OK      bool // its nearest node was the true nearest (success_rate)
}

// sample records the heap in use; the peak of the samples is reported.
func (m *measure) sample() {
	if h := heapBytes(); h > m.peakHeap {
		m.peakHeap = h
	}
}

func (m *measure) startBytes(s *Sim) {
	m.bytesAtStart = 0
	for i := range s.nodes {
		if e := s.nodes[i].e; e != nil {
			m.bytesAtStart += bytesOut(e)
		}
	}
}

// lookupFailed counts a lookup that ended without a result; now is the
// time since the measured phase began.
func (m *measure) lookupFailed(now int64) {
	m.lookups++
	m.lookupErr++
	m.rows = append(m.rows, LookupRow{Start: time.Duration(now), Hops: -1})
}

// lookupDone judges a lookup against the truth: the K reachable nodes
// nearest its target (the node that looked excluded). It succeeded when
// the nearest node it returns is the true nearest; it kept its promise
// when its first beta nodes are the true beta nearest.
func (m *measure) lookupDone(r *kademlia.Result, truth []ref, k, beta int, now int64) {
	ok := m.lookupOK
	defer func() {
		m.rows = append(m.rows, LookupRow{Start: time.Duration(now) - r.Stats.Duration, Hops: int32(r.Stats.Hops),
			Latency: r.Stats.Duration, OK: m.lookupOK > ok})
	}()
	m.lookups++
	if r.Err != nil {
		m.lookupErr++
	}
	if b := min(beta, len(truth)); b > 0 && len(r.Nodes) >= b {
		exact := true
		for i := range b {
			exact = exact && r.Nodes[i].ID == truth[i].id
		}
		if exact {
			m.lookupBeta++
		}
	}
	if len(r.Nodes) > 0 && len(truth) > 0 && r.Nodes[0].ID == truth[0].id {
		m.lookupOK++
		if len(r.Nodes) >= min(k, len(truth)) {
			all := true
			for _, t := range truth {
				all = all && slices.ContainsFunc(r.Nodes, func(n krpc.NodeInfo) bool { return n.ID == t.id })
			}
			if all {
				m.lookupAllK++
			}
		}
	}
	m.hops = append(m.hops, int32(r.Stats.Hops))
	m.hopsSum += int64(r.Stats.Hops)
	m.latency = append(m.latency, int64(r.Stats.Duration))
	m.msgs += int64(r.Stats.Queries + r.Stats.Responses)
	m.rpcs += int64(r.Stats.Queries)
	m.timeouts += int64(r.Stats.Timeouts)
}

func (m *measure) announced(ok bool) {
	m.announces++
	if ok {
		m.announceOK++
	}
}

func (m *measure) getDone(final, ok bool) { m.getEnded(final, ok, false, true) }

// getEnded counts a read; refused says it failed by the quorum rule with
// most of the replicas it asked crashed (Sim.refusedForDead), acked that
// a write of the key was acknowledged.
func (m *measure) getEnded(final, ok, refused, acked bool) {
	if final {
		m.finals++
		switch {
		case ok:
			m.finalOK++
		case !acked:
			m.finalUnwritten++
		case refused:
			m.finalRefused++
		}
		return
	}
	m.gets++
	if ok {
		m.getOK++
	} else if refused {
		m.refused++
	}
}

func (m *measure) joined(ok bool) {
	if ok {
		m.joinOK++
	} else {
		m.joinFail++
	}
}

// Report is the outcome of a run: the JSON of `dhtkit sim --json`. All
// fields but WallSeconds, PeakHeapBytes, MessagesPerWallSecond,
// BuildWallSeconds and MemBytesPerNode depend only on the Config.
type Report struct {
	Protocol string  `json:"protocol"`
	Nodes    int     `json:"nodes"`
	Lookups  int     `json:"lookups"`
	Seed     uint64  `json:"seed"`
	K        int     `json:"k"`
	Alpha    int     `json:"alpha"`
	Beta     int     `json:"beta"`
	Strict   bool    `json:"strict_bep5,omitempty"`
	Seen     int     `json:"seen"`
	Build    Build   `json:"build"`
	Latency  string  `json:"latency"`
	Loss     float64 `json:"loss"`
	Churn    float64 `json:"churn"`
	Session  string  `json:"session"`
	NAT      float64 `json:"nat"`
	Silent   float64 `json:"silent"`
	Liars    float64 `json:"liars"`

	// SuccessRate: lookups whose nearest result is the true nearest
	// reachable node. AllKRate: lookups that found all K true nearest.
	SuccessRate float64 `json:"success_rate"`
	AllKRate    float64 `json:"all_k_rate"`
	// BetaRate: lookups whose first Beta nodes are the true Beta nearest,
	// which is what a lookup that ends on Beta answers promises.
	BetaRate  float64 `json:"beta_rate"`
	ErrorRate float64 `json:"error_rate"` // lookups that ended with an error or were cut short by churn

	HopsMedian float64 `json:"hops_median"`
	HopsP99    float64 `json:"hops_p99"`
	HopsMean   float64 `json:"hops_mean"`

	LatencyMsMedian float64 `json:"latency_ms_median"`
	LatencyMsP90    float64 `json:"latency_ms_p90"`
	LatencyMsP99    float64 `json:"latency_ms_p99"`
	// RTTMs is the network's mean round-trip time: the mean, over random
	// pairs of nodes, of the expected time for a query and its answer.
	// LatencyRTTs* are lookup latencies in units of it. It is a property
	// of the network, not of the traffic: a node that prefers nearby
	// contacts makes its datagrams faster (TrafficRTTMs, twice the mean
	// one-way delay of the datagrams delivered) but not the network.
	RTTMs             float64 `json:"rtt_ms"`
	TrafficRTTMs      float64 `json:"traffic_rtt_ms"`
	LatencyRTTsMedian float64 `json:"latency_rtts_median"`
	LatencyRTTsP99    float64 `json:"latency_rtts_p99"`

	// MessagesPerLookup counts datagrams (queries sent plus responses
	// received); RPCsPerLookup only the queries.
	MessagesPerLookup float64 `json:"messages_per_lookup"`
	RPCsPerLookup     float64 `json:"rpcs_per_lookup"`
	TimeoutsPerLookup float64 `json:"timeouts_per_lookup"`

	Keys                int     `json:"keys"`
	KeysLost            int     `json:"keys_lost"`
	KeysRefused         int     `json:"keys_refused,omitempty"`
	KeysUnwritten       int     `json:"keys_unwritten,omitempty"`
	GetsRefused         int     `json:"gets_refused,omitempty"`
	GetSuccessRate      float64 `json:"get_success_rate"`
	AnnounceSuccessRate float64 `json:"announce_success_rate"`

	// The permanent puts (Config.Permanent, permanent.go); omitted
	// without them.
	Permanent              int     `json:"permanent,omitempty"`
	PermanentReads         int     `json:"permanent_reads,omitempty"`
	PermanentReadRate      float64 `json:"permanent_read_rate,omitempty"`
	PermanentReadsRefused  int     `json:"permanent_reads_refused,omitempty"`
	PermanentRefreshes     int     `json:"permanent_refreshes,omitempty"`
	PermanentRefreshFailed int     `json:"permanent_refresh_failed,omitempty"`
	PermanentReadsAfter    int     `json:"permanent_reads_after_cancel,omitempty"`
	PermanentFoundAfter    *int    `json:"permanent_found_after_cancel,omitempty"`
	PermanentCancelS       float64 `json:"permanent_cancel_s,omitempty"`
	PermanentTTLS          float64 `json:"permanent_ttl_s,omitempty"`

	// LoadGini and LoadMaxMean describe the datagrams received per live
	// node during the measured phase.
	LoadGini    float64 `json:"load_gini"`
	LoadMaxMean float64 `json:"load_max_mean"`

	// RoutingCorrectness: over a sample of live nodes, the fraction of
	// their K true nearest reachable nodes that their table holds.
	// RoutingDead: the fraction of table entries that point to nodes that
	// are gone or silent.
	RoutingCorrectness float64 `json:"routing_correctness"`
	RoutingDead        float64 `json:"routing_dead"`
	// RoutingFalseBad: the fraction of table entries marked bad (Chord:
	// lost neighbours being probed) whose node is up and reachable, at
	// the end of the run. After a partition heals it should fall to 0
	// within about routing.ProbeMax.
	RoutingFalseBad float64 `json:"routing_false_bad"`

	Joins   int `json:"joins"`
	Leaves  int `json:"leaves"`
	JoinsOK int `json:"joins_ok"`

	Messages       uint64  `json:"messages"` // datagrams sent, whole run
	Lost           uint64  `json:"lost"`
	Partitioned    uint64  `json:"partitioned"`
	NATDropped     uint64  `json:"nat_dropped"`
	ToDead         uint64  `json:"to_dead"`
	Events         uint64  `json:"events"`
	SentBytesNodeS float64 `json:"sent_bytes_per_node_s"` // measured phase

	SimSeconds float64 `json:"sim_seconds"`

	WallSeconds           float64 `json:"wall_seconds"`
	BuildWallSeconds      float64 `json:"build_wall_seconds"`
	MessagesPerWallSecond float64 `json:"messages_per_wall_second"`
	PeakHeapBytes         uint64  `json:"peak_heap_bytes"`
	MemBytesPerNode       float64 `json:"mem_bytes_per_node"` // live heap after build-up / nodes

	// VNodes is Chord's virtual nodes per node (omitted: one).
	VNodes int `json:"vnodes,omitempty"`
	// Routing is Chord's lookup routing ("fingers" or "linear").
	Routing string `json:"routing,omitempty"`
	// Scenario lists the events the run put the network through:
	// partitions, and churn.
	Scenario []ScenarioEvent `json:"scenario,omitempty"`
	// KeyLoad describes the records each live node holds at the end of the
	// run (copies included): the fairness of key placement, where
	// load_gini is that of the messages. Absent when no node holds a
	// record (get_peers keys live in peer stores, not counted).
	KeyLoad *KeyLoad `json:"key_load,omitempty"`

	// Per-lookup figures, for CSV and plots; not in the JSON.
	Rows           []LookupRow `json:"-"`
	KeyLoadSamples []int       `json:"-"`
	HopsSamples    []int32     `json:"-"`
	LatencySamples []int64     `json:"-"` // ns
	LoadSamples    []uint32    `json:"-"`
}

// report assembles the Report.
func (s *Sim) report(wall time.Duration) *Report {
	m := &s.m
	c := s.cfg
	r := &Report{
		Protocol: c.Protocol, Nodes: c.Nodes, Lookups: m.lookups, Seed: c.Seed,
		K: c.K, Alpha: c.Alpha, Beta: s.beta(), Strict: c.StrictBEP5, Seen: c.Seen, Build: c.Build, Latency: c.Latency.String(),

		Loss: c.Loss, Churn: c.Churn, Session: c.Session.String(), NAT: c.NAT, Silent: c.Silent, Liars: c.Liars,
		Keys: c.Keys, Joins: m.joins, Leaves: m.leaves, JoinsOK: m.joinOK,
		Messages: m.sent, Lost: m.lost, Partitioned: m.partitioned, NATDropped: m.natDropped,
		ToDead: m.toDead, Events: s.events,
		SimSeconds:       time.Duration(s.now).Seconds(),
		WallSeconds:      wall.Seconds(),
		BuildWallSeconds: m.buildWall.Seconds(),
		PeakHeapBytes:    m.peakHeap,
		MemBytesPerNode:  float64(m.heapAfterBuild) / float64(c.Nodes),
	}
	if wall > 0 {
		r.MessagesPerWallSecond = float64(m.sent) / wall.Seconds()
	}
	if m.lookups > 0 {
		n := float64(m.lookups)
		r.SuccessRate = float64(m.lookupOK) / n
		r.AllKRate = float64(m.lookupAllK) / n
		r.BetaRate = float64(m.lookupBeta) / n

		r.ErrorRate = float64(m.lookupErr) / n
	}
	if len(m.hops) > 0 {
		n := float64(len(m.hops))
		h := slices.Clone(m.hops)
		slices.Sort(h)
		r.HopsMedian = float64(quantile(h, 0.5))
		r.HopsP99 = float64(quantile(h, 0.99))
		r.HopsMean = round3(float64(m.hopsSum) / n)
		l := slices.Clone(m.latency)
		slices.Sort(l)
		r.LatencyMsMedian = ms(quantile(l, 0.5))
		r.LatencyMsP90 = ms(quantile(l, 0.9))
		r.LatencyMsP99 = ms(quantile(l, 0.99))
		if m.delayN > 0 {
			r.TrafficRTTMs = round3(2 * m.delaySum / float64(m.delayN) / 1e6)
		}
		if rtt := s.meanRTT(); rtt > 0 {
			r.RTTMs = round3(rtt / 1e6)

			r.LatencyRTTsMedian = round3(float64(quantile(l, 0.5)) / rtt)
			r.LatencyRTTsP99 = round3(float64(quantile(l, 0.99)) / rtt)
		}
		r.MessagesPerLookup = round3(float64(m.msgs) / n)
		r.RPCsPerLookup = round3(float64(m.rpcs) / n)
		r.TimeoutsPerLookup = round3(float64(m.timeouts) / n)
		r.HopsSamples, r.LatencySamples = m.hops, m.latency
	}
	if m.finals > 0 {
		r.KeysLost = m.finals - m.finalOK
		r.KeysRefused, r.KeysUnwritten = m.finalRefused, m.finalUnwritten
	}
	if m.gets > 0 {
		r.GetSuccessRate = round3(float64(m.getOK) / float64(m.gets))
		r.GetsRefused = m.refused
	}
	if m.announces > 0 {
		r.AnnounceSuccessRate = round3(float64(m.announceOK) / float64(m.announces))
	}
	if p := s.perm; p != nil {
		r.Permanent, r.PermanentReads, r.PermanentRefreshes, r.PermanentRefreshFailed = len(p.keys), p.reads, p.refreshes, p.refreshFailed
		r.PermanentReadsAfter, r.PermanentFoundAfter, r.PermanentReadsRefused = p.readsAfter, &p.foundAfter, p.refused
		if p.reads > 0 {
			r.PermanentReadRate = round3(float64(p.readOK) / float64(p.reads))
		}
		r.PermanentCancelS, r.PermanentTTLS = time.Duration(p.cancelAt-s.t0).Seconds(), p.ttl.Seconds()
	}
	var bytes uint64
	load := make([]uint32, 0, len(s.live))
	for _, i := range s.live {
		n := &s.nodes[i]
		bytes += bytesOut(n.e)
		if n.up() {
			load = append(load, n.recv)
		}
	}
	if d := float64(s.end-s.t0) / 1e9; d > 0 && len(s.live) > 0 && bytes > m.bytesAtStart {
		// Nodes that left took their counters with them: this slightly
		// undercounts under churn.
		r.SentBytesNodeS = round3(float64(bytes-m.bytesAtStart) / float64(len(s.live)) / d)
	}
	slices.Sort(load)
	r.LoadGini = round3(stat.Gini(load))
	if len(load) > 0 {
		var sum float64
		for _, v := range load {
			sum += float64(v)
		}
		if sum > 0 {
			r.LoadMaxMean = round3(float64(load[len(load)-1]) / (sum / float64(len(load))))
		}
	}
	r.LoadSamples = load
	r.Rows = m.rows
	r.Routing = c.Routing
	if c.VNodes > 1 {
		r.Nodes, r.VNodes = c.Nodes/c.VNodes, c.VNodes
	}
	if c.Protocol == "chord" && r.Routing == "" {
		r.Routing = chord.RoutingFingers
	}
	r.Scenario = scenario(c)
	r.KeyLoad, r.KeyLoadSamples = s.keyLoad()
	r.RoutingCorrectness, r.RoutingDead, r.RoutingFalseBad = s.tableQuality(1000)
	return r
}

// tableQuality samples up to n reachable live nodes and compares their
// tables with the truth.
func (s *Sim) tableQuality(n int) (correct, dead, falseBad float64) {
	rng := s.rngWork
	var found, want, entries, gone, wrongBad int
	alive := func(c krpc.NodeInfo) bool {
		j := indexOf(c.Addr)
		return j >= 0 && s.nodes[j].reachable() && s.nodes[j].id == c.ID
	}
	var truth []ref
	for range n {
		i := s.randomUp(rng, true)
		if i < 0 {
			break
		}
		self := s.nodes[i].id
		if ce, ok := s.nodes[i].e.(*chord.Engine); ok {
			// Chord: the successor list against the true successors.
			truth = s.idx.successors(id.AddPow2(self, 0), len(ce.Successors()), func(x int32) bool { return x != i && s.nodes[x].reachable() }, truth[:0])
			succs := ce.Successors()
			for k, r := range truth {
				want++
				if k < len(succs) && succs[k].ID == r.id {
					found++
				}
			}
			for _, c := range append(succs, ce.Fingers()...) {
				entries++
				if j := indexOf(c.Addr); j < 0 || !s.nodes[j].up() || s.nodes[j].id != c.ID {
					gone++
				}
			}
			for _, c := range ce.Lost() {
				entries++
				if alive(c) {
					wrongBad++
				}
			}
			continue
		}
		truth = s.idx.closest(self, s.cfg.K, func(x int32) bool { return x != i && s.nodes[x].reachable() }, truth[:0])
		t := s.nodes[i].e.(*kademlia.Engine).Table()
		for _, r := range truth {
			want++
			if _, ok := t.Get(r.id); ok {
				found++
			}
		}
		for _, b := range t.Buckets() {
			for _, c := range b.Contacts {
				entries++
				if j := indexOf(c.Addr); j < 0 || !s.nodes[j].up() || s.nodes[j].id != c.ID {
					gone++
				}
				if c.State == routing.Bad && alive(krpc.NodeInfo{ID: c.ID, Addr: c.Addr}) {
					wrongBad++
				}
			}
		}
	}
	if want > 0 {
		correct = round3(float64(found) / float64(want))
	}
	if entries > 0 {
		dead = round3(float64(gone) / float64(entries))
		falseBad = round3(float64(wrongBad) / float64(entries))
	}
	return correct, dead, falseBad
}

// quantile is the nearest-rank quantile of sorted values.
func quantile[T int32 | int64](sorted []T, q float64) T {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func ms(ns int64) float64 { return round3(float64(ns) / 1e6) }

func round3(x float64) float64 { return math.Round(x*1000) / 1000 }
