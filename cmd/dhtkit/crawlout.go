package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/kademlia"
	"github.com/dhtkit/dhtkit/krpc"
)

// crawlNode is a line of nodes.jsonl.
type crawlNode struct {
	ID        string  `json:"id"`
	Addr      string  `json:"addr"`
	Version   string  `json:"version,omitempty"` // the client version it sent ("v"), as bytes; hex in version_hex
	VersionX  string  `json:"version_hex,omitempty"`
	Responded bool    `json:"responded"`        // it answered a query of the crawl
	RTTMs     float64 `json:"rtt_ms,omitempty"` // of its sample_infohashes answer
	BEP51     *bool   `json:"bep51"`            // null: not known (no answer)
	Num       int     `json:"num,omitempty"`    // BEP 51: infohashes it says it holds
	IntervalS int     `json:"interval_s,omitempty"`
	Samples   int     `json:"samples,omitempty"`        // distinct infohashes it returned, over all its samples
	Queries   int     `json:"sample_queries,omitempty"` // sample_infohashes it answered

	next time.Time      // BEP 51: when it may be asked again
	got  map[id.ID]bool // the infohashes it returned
}

// maxResamples bounds the sample_infohashes queries a crawl sends one node.
const maxResamples = 8

// due lists the nodes to sample again now: they answered BEP 51, hold
// more infohashes than they returned, and their interval has passed.
// next is the earliest time another one becomes due; more is false when
// none will before deadline.
func (x *export) due(now, deadline time.Time) (due []krpc.NodeInfo, next time.Time, more bool) {
	for k, cn := range x.nodes {
		if cn.BEP51 == nil || !*cn.BEP51 || len(cn.got) >= cn.Num || cn.Queries >= maxResamples || cn.next.After(deadline) {
			continue
		}
		more = true
		if !cn.next.After(now) {
			a, err := netip.ParseAddrPort(cn.Addr)
			if err == nil {
				due = append(due, krpc.NodeInfo{ID: k, Addr: a})
				cn.next = deadline.Add(time.Hour) // in flight: not due again until it answers
			}
			continue
		}
		if next.IsZero() || cn.next.Before(next) {
			next = cn.next
		}
	}
	return due, next, more
}

// crawlInfohash is a line of infohashes.jsonl.
type crawlInfohash struct {
	Infohash string   `json:"infohash"`
	Nodes    []string `json:"nodes"` // ids of the nodes whose samples held it
	// With --scrape: BEP 33 estimates from the filters of the nodes
	// closest to it, and how many nodes sent filters.
	Seeds       *float64 `json:"seeds,omitempty"`
	Peers       *float64 `json:"peers,omitempty"`
	ScrapeNodes int      `json:"scrape_nodes,omitempty"`
}

// maxHoldersListed bounds the nodes listed per infohash.
const maxHoldersListed = 16

// export collects what --out writes. Its methods are called under the
// crawl's lock.
type export struct {
	nodes      map[id.ID]*crawlNode
	infohashes map[id.ID][]string
	scrapes    map[id.ID]*kademlia.Scrape // --scrape
}

func newExport() *export {
	return &export{nodes: make(map[id.ID]*crawlNode), infohashes: make(map[id.ID][]string), scrapes: make(map[id.ID]*kademlia.Scrape)}
}

func (x *export) sampled(n krpc.NodeInfo, res kademlia.Result, err error, rtt time.Duration, at time.Time) {
	cn := x.nodes[n.ID]
	if cn == nil {
		cn = &crawlNode{ID: n.ID.String(), Addr: n.Addr.String(), got: make(map[id.ID]bool)}
		x.nodes[n.ID] = cn
	}
	if err != nil && cn.BEP51 != nil && *cn.BEP51 {
		cn.Queries = maxResamples // it answered before and not now: leave it be
		return
	}
	var re *kademlia.RemoteError
	switch {
	case errors.As(err, &re) && re.Code == krpc.CodeMethodUnknown:
		no := false
		cn.BEP51, cn.RTTMs = &no, ms(rtt)
	case err == nil:
		yes := true
		cn.BEP51, cn.RTTMs = &yes, ms(rtt)
		cn.Num, cn.IntervalS = res.Num, int(res.Interval/time.Second)
		cn.Queries++
		cn.next = at.Add(max(res.Interval, time.Second)) // an interval of 0 still waits a second
		for _, s := range res.Samples {
			if cn.got[s] || len(cn.got) > cn.Num+maxResamples*64 {
				continue // seen from this node, or a node lying about its num
			}
			cn.got[s] = true
			if h := x.infohashes[s]; len(h) < maxHoldersListed {
				x.infohashes[s] = append(h, cn.ID)
			}
		}
		cn.Samples = len(cn.got)
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// write writes DIR/nodes.jsonl (every node heard of, in id order) and
// DIR/infohashes.jsonl, each through a temporary file renamed at the end:
// an interrupted crawl leaves no partial file.
func (x *export) write(dir string, seen, responded map[id.ID]netip.AddrPort, versions map[id.ID]string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("crawl --out: %w", err)
	}
	ids := make([]id.ID, 0, len(seen))
	for k := range seen {
		ids = append(ids, k)
	}
	slices.SortFunc(ids, id.Compare)
	nodes := make([]any, 0, len(ids))
	for _, k := range ids {
		cn := x.nodes[k]
		if cn == nil {
			cn = &crawlNode{ID: k.String(), Addr: seen[k].String()}
		}
		_, cn.Responded = responded[k]
		if cn.BEP51 != nil {
			cn.Responded = true
		}
		if v, ok := versions[k]; ok {
			cn.Version, cn.VersionX = asciiVersion(v), fmt.Sprintf("%x", v)
		}
		nodes = append(nodes, cn)
	}
	hs := make([]id.ID, 0, len(x.infohashes))
	for k := range x.infohashes {
		hs = append(hs, k)
	}
	slices.SortFunc(hs, id.Compare)
	ihs := make([]any, 0, len(hs))
	for _, h := range hs {
		line := crawlInfohash{Infohash: h.String(), Nodes: x.infohashes[h]}
		if sc := x.scrapes[h]; sc != nil {
			seeds, peers := sc.SeedCount(), sc.PeerCount()
			line.Seeds, line.Peers, line.ScrapeNodes = &seeds, &peers, sc.Filters
		}
		ihs = append(ihs, line)
	}
	if err := writeJSONLines(filepath.Join(dir, "nodes.jsonl"), nodes); err != nil {
		return err
	}
	return writeJSONLines(filepath.Join(dir, "infohashes.jsonl"), ihs)
}

// asciiVersion is v when every byte is printable ASCII, else "".
func asciiVersion(v string) string {
	for i := range len(v) {
		if v[i] < 0x20 || v[i] > 0x7e {
			return ""
		}
	}
	return v
}

func writeJSONLines(path string, lines []any) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".crawl-*")
	if err != nil {
		return fmt.Errorf("crawl --out: %w", err)
	}
	defer os.Remove(tmp.Name()) // after the rename: nothing
	w := bufio.NewWriter(tmp)
	enc := json.NewEncoder(w)
	for _, l := range lines {
		if err := enc.Encode(l); err != nil {
			tmp.Close()
			return fmt.Errorf("crawl --out: %w", err)
		}
	}
	if err := w.Flush(); err != nil {
		tmp.Close()
		return fmt.Errorf("crawl --out: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("crawl --out: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("crawl --out: %w", err)
	}
	return nil
}
