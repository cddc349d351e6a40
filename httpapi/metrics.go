package httpapi

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/dhtkit/dhtkit/kademlia"
	"github.com/dhtkit/dhtkit/krpc"
	"github.com/dhtkit/dhtkit/runtime"
)

// metrics is the Prometheus registry of one node. Every handler has its
// own registry, so that many nodes in one process (the demo, tests) do not
// collide in the global one.
type metrics struct {
	reg      *prometheus.Registry
	ops      *prometheus.HistogramVec
	opErrors *prometheus.CounterVec
	apiErrs  *prometheus.CounterVec
	requests *prometheus.CounterVec
}

func newMetrics(s *server) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		ops: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "dhtkit_lookup_duration_seconds",
			Help:    "Duration of the network operations this node ran for its API, by operation.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16), // 1ms to 32s
		}, []string{"op"}),
		opErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dhtkit_operation_errors_total",
			Help: "Network operations run for the API that failed, by operation.",
		}, []string{"op"}),
		apiErrs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dhtkit_http_errors_total",
			Help: "API requests answered with an error, by status code.",
		}, []string{"code"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dhtkit_http_requests_total",
			Help: "HTTP requests served, by method and status code.",
		}, []string{"method", "code"}),
	}
	m.reg.MustRegister(m.ops, m.opErrors, m.apiErrs, m.requests, nodeCollector{s},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// instrument counts the requests h serves.
func (m *metrics) instrument(h http.Handler) http.Handler {
	return promhttp.InstrumentHandlerCounter(m.requests, h)
}

func (m *metrics) observeOp(op string, d time.Duration, err error) {
	m.ops.WithLabelValues(op).Observe(d.Seconds())
	if err != nil {
		m.opErrors.WithLabelValues(op).Inc()
	}
}

func (m *metrics) apiError(code int) {
	m.apiErrs.WithLabelValues(strconv.Itoa(code)).Inc()
}

// nodeCollector reads the node's counters at each scrape: they live in the
// engine, and copying them on demand costs nothing between scrapes.
type nodeCollector struct{ s *server }

var (
	descQueriesIn  = prometheus.NewDesc("dhtkit_queries_in_total", "Queries received, by method.", []string{"method"}, nil)
	descQueriesOut = prometheus.NewDesc("dhtkit_queries_out_total", "Queries sent, by method.", []string{"method"}, nil)
	descResponses  = prometheus.NewDesc("dhtkit_responses_in_total", "Responses received.", nil, nil)
	descErrors     = prometheus.NewDesc("dhtkit_errors_total", "KRPC errors and dropped messages, by kind.", []string{"kind"}, nil)
	descBytes      = prometheus.NewDesc("dhtkit_bytes_total", "Bytes of KRPC messages, by direction.", []string{"direction"}, nil)
	descPackets    = prometheus.NewDesc("dhtkit_packets_total", "UDP datagrams, by direction.", []string{"direction"}, nil)
	descContacts   = prometheus.NewDesc("dhtkit_routing_contacts", "Contacts in the routing table, by state.", []string{"state"}, nil)
	descBuckets    = prometheus.NewDesc("dhtkit_routing_buckets", "Buckets of the routing table.", nil, nil)
	descKeys       = prometheus.NewDesc("dhtkit_store_keys", "Values this node stores (tombstones excluded).", nil, nil)
	descStoreBytes = prometheus.NewDesc("dhtkit_store_bytes", "Bytes of the values this node stores, keys included.", nil, nil)
	descSealDrops  = prometheus.NewDesc("dhtkit_seal_dropped_total", "Datagrams dropped unanswered by a node with a network key, by reason: unsealed (sender has no key), unknown_key (another key), forged, replayed, stale, short.", []string{"reason"}, nil)
	descUptime     = prometheus.NewDesc("dhtkit_uptime_seconds", "Seconds since the node started.", nil, nil)
	descProbes     = prometheus.NewDesc("dhtkit_probes_total", "Pings of bad contacts (Chord: lost neighbours), to see whether they are back.", nil, nil)
	descLate       = prometheus.NewDesc("dhtkit_late_responses_total", "Responses that came after their query timed out; each still proves its node alive.", nil, nil)
	descReissues   = prometheus.NewDesc("dhtkit_put_reissues_total", "Puts this node issued again past a newer version a replica kept over them (docs/architecture.md, \"A later write wins\").", nil, nil)
	descDropped    = prometheus.NewDesc("dhtkit_dropped_total", "Queries, replies and stored entries the node dropped, by reason (kademlia.DropReason).", []string{"reason"}, nil)
	descCommits    = prometheus.NewDesc("dhtkit_store_commit_duration_seconds", "Group commits of a durable store (--data), each one log append and one fdatasync for every write waiting: how long they took. Empty for a node in memory.", nil, nil)
	descCommitRecs = prometheus.NewDesc("dhtkit_store_commit_records_total", "Records the group commits held: divided by dhtkit_store_commit_duration_seconds_count, the writes that shared a sync.", nil, nil)
	descStorage    = prometheus.NewDesc("dhtkit_storage_events_total", "Storage events: damaged records dropped (damaged_record), writes the disk refused (write_error), chunk records released (chunk_released).", []string{"event"}, nil)
)

func (c nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descQueriesIn, descQueriesOut, descResponses, descErrors, descBytes,
		descPackets, descContacts, descBuckets, descKeys, descStoreBytes, descUptime, descProbes, descLate, descReissues, descDropped, descSealDrops, descStorage, descCommits, descCommitRecs} {
		ch <- d
	}
}

func (c nodeCollector) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	n := c.s.n
	st := n.Stats()
	for _, m := range krpc.Methods() {
		counter(descQueriesIn, st.QueriesIn[m], m.String())
		counter(descQueriesOut, st.QueriesOut[m], m.String())
	}
	counter(descQueriesIn, st.QueriesIn[krpc.MethodUnknown], "unknown")
	counter(descResponses, st.ResponsesIn)
	for kind, v := range map[string]uint64{
		"error_in": st.ErrorsIn, "error_out": st.ErrorsOut, "malformed": st.Malformed,
		"rate_limited": st.RateLimited, "foreign_network": st.ForeignNet,
		"unsolicited": st.Unsolicited, "timeout": st.Timeouts,
	} {
		counter(descErrors, v, kind)
	}
	counter(descProbes, st.Probes)
	counter(descLate, st.LateReplies)
	counter(descReissues, st.Reissues)
	for _, r := range kademlia.DropReasons() {
		counter(descDropped, st.Drops[r], r.String())
	}
	counter(descBytes, st.BytesIn, "in")
	counter(descBytes, st.BytesOut, "out")
	io := n.IOStats()
	counter(descPackets, io.PacketsIn, "in")
	counter(descPackets, io.PacketsOut, "out")
	counter(descErrors, io.Oversize, "oversize")
	counter(descCommitRecs, io.CommitRecords)
	ch <- commitHistogram(io.Commit)
	if n.NetworkKeyIDs() != nil {
		ss := n.SealStats()
		for reason, v := range map[string]uint64{
			"unsealed": ss.Unsealed, "unknown_key": ss.UnknownKey, "forged": ss.Forged,
			"replayed": ss.Replayed, "stale": ss.Stale, "short": ss.Short,
		} {
			counter(descSealDrops, v, reason)
		}
	}

	buckets := n.Routing()
	states := map[string]int{"good": 0, "questionable": 0, "bad": 0}
	for _, b := range buckets {
		for _, ct := range b.Contacts {
			states[ct.State.String()]++
		}
	}
	for state, k := range states {
		gauge(descContacts, float64(k), state)
	}
	gauge(descBuckets, float64(len(buckets)))
	sz := c.s.storeSize()
	gauge(descKeys, float64(sz.Keys))
	gauge(descStoreBytes, float64(sz.Bytes))
	gauge(descUptime, c.s.uptime().Seconds())
	sf := n.StorageFaults()
	counter(descStorage, uint64(sf.DamagedRecords), "damaged_record")
	counter(descStorage, uint64(sf.WriteErrors), "write_error")
	counter(descStorage, uint64(sf.ChunksReleased), "chunk_released")
}

// commitHistogram is h as Prometheus's cumulative histogram.
func commitHistogram(h runtime.Histogram) prometheus.Metric {
	buckets := make(map[float64]uint64, len(runtime.HistogramBounds))
	var below uint64
	for i, bound := range runtime.HistogramBounds {
		below += h.Counts[i]
		buckets[bound.Seconds()] = below
	}
	return prometheus.MustNewConstHistogram(descCommits, h.Count(), h.Sum.Seconds(), buckets)
}
