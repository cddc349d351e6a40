package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/spf13/cobra"

	"github.com/dhtkit/dhtkit/kademlia"
)

// nodeOut is a node as the API lists it.
type nodeOut struct {
	ID   string `json:"id"`
	Addr string `json:"addr"`
}

func (n nodeOut) String() string { return n.Addr + " " + n.ID }

// ringOut is GET /v1/ring.
type ringOut struct {
	ID          string    `json:"id"`
	Predecessor *nodeOut  `json:"predecessor"`
	Successors  []nodeOut `json:"successors"`
	Fingers     []struct {
		Index int     `json:"index"`
		Start string  `json:"start"`
		Node  nodeOut `json:"node"`
	} `json:"fingers"`
}

func newRingCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "ring",
		Short: "Print a Chord node's predecessor, successor list and finger table",
		Long: `ring asks the Chord node at --api for its view of the ring: its predecessor,
its successor list (nearest first) and the rows of its finger table where the
node changes, each "i START NODEID HOST:PORT" with START = id + 2^i.`,
		Args: args(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), g.timeout)
			defer cancel()
			var r ringOut
			if err := g.apiClient().getJSON(ctx, http.MethodGet, "/v1/ring", &r); err != nil {
				var ee *exitError
				if errors.As(err, &ee) && ee.code == exitNotFound {
					return ee.err // not a missing key: a Kademlia node
				}
				return err
			}
			printRing(g.stdout, r)
			return nil
		},
	}
}

func printRing(w io.Writer, r ringOut) {
	fmt.Fprintf(w, "node         %s\n", r.ID)
	if r.Predecessor != nil {
		fmt.Fprintf(w, "predecessor  %s %s\n", r.Predecessor.ID, r.Predecessor.Addr)
	} else {
		fmt.Fprintln(w, "predecessor  (not known yet)")
	}
	for i, s := range r.Successors {
		fmt.Fprintf(w, "successor %-2d %s %s\n", i+1, s.ID, s.Addr)
	}
	if len(r.Successors) == 0 {
		fmt.Fprintln(w, "successors   (none: the node is alone)")
	}
	fmt.Fprintf(w, "fingers      %d rows where the node changes (start = id + 2^i)\n", len(r.Fingers))
	for _, f := range r.Fingers {
		fmt.Fprintf(w, "finger %-5d %s %s %s\n", f.Index, f.Start, f.Node.ID, f.Node.Addr)
	}
}

// hopOut is one hop of GET /v1/lookup/{target}?trace=1.
type hopOut struct {
	Node  nodeOut   `json:"node"`
	Depth int       `json:"depth"`
	RTTMs float64   `json:"rtt_ms"`
	Nodes []nodeOut `json:"nodes"`
	Done  bool      `json:"done"`
	Error string    `json:"error"`
}

// printTrace writes a traced lookup: one line per query, in the order the
// answers came, then the hop count.
func printTrace(w io.Writer, trace []hopOut, hops, queries, timeouts int, ms float64) {
	for i, h := range trace {
		node := h.Node.Addr
		if h.Node.ID != "" && strings.Trim(h.Node.ID, "0") != "" {
			node += " " + h.Node.ID
		}
		var what string
		switch {
		case h.Error != "":
			what = "no answer: " + h.Error
		case h.Done:
			what = fmt.Sprintf("the target's successor %s (and %d after it)", first(h.Nodes), max(len(h.Nodes)-1, 0))
		default:
			what = fmt.Sprintf("%d nodes, nearest %s", len(h.Nodes), first(h.Nodes))
		}
		rtt := "      -"
		if h.Error == "" {
			rtt = fmt.Sprintf("%7.1fms", h.RTTMs)
		}
		fmt.Fprintf(w, "hop %-3d depth %-2d %s  %s  → %s\n", i+1, h.Depth, rtt, node, what)
	}
	fmt.Fprintf(w, "%d hops, %d queries, %d timeouts, %.1f ms\n", hops, queries, timeouts, ms)
}

func first(ns []nodeOut) string {
	if len(ns) == 0 {
		return "-"
	}
	return ns[0].ID
}

// traceOut is a Go trace as the API would list it.
func traceOut(hops []kademlia.Hop) []hopOut {
	out := make([]hopOut, 0, len(hops))
	for _, h := range hops {
		ho := hopOut{Node: nodeOut{ID: h.Node.ID.String(), Addr: h.Node.Addr.String()}, Depth: h.Depth,
			RTTMs: float64(h.RTT.Microseconds()) / 1000, Done: h.Done, Error: h.Err}
		for _, n := range h.Nodes {
			ho.Nodes = append(ho.Nodes, nodeOut{ID: n.ID.String(), Addr: n.Addr.String()})
		}
		out = append(out, ho)
	}
	return out
}

func newLoadCmd(g *globals) *cobra.Command {
	var jsonOut bool
	cmd := &cobra.Command{
		Use:   "load",
		Short: "Print the records and bytes each node of the network holds, with min, max, mean and Gini",
		Long: `load asks the node at --api to find the nodes of the network and ask each how
many records (every copy) and bytes it holds. It prints "NODEID HOST:PORT KEYS BYTES"
per node, in id order, then "nodes N keys K bytes B min MIN max MAX mean MEAN gini G".
A Gini of 0 means every node holds as many records; near 1, one holds them all.`,
		Args: args(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), g.timeout)
			defer cancel()
			var l struct {
				Nodes []struct {
					ID, Addr, Error string
					Keys, Bytes     int64
				} `json:"nodes"`
				Min, Max, Keys, Bytes int64
				Mean, Gini            float64
			}
			if jsonOut {
				resp, err := g.apiClient().do(ctx, http.MethodGet, "/v1/load", nil, "")
				if err != nil {
					return err
				}
				defer resp.Body.Close()
				_, err = io.Copy(g.stdout, resp.Body)
				return err
			}
			if err := g.apiClient().getJSON(ctx, http.MethodGet, "/v1/load", &l); err != nil {
				return err
			}
			answered := 0
			for _, n := range l.Nodes {
				if n.Error != "" {
					fmt.Fprintf(g.stdout, "%s %s - - %s\n", n.ID, n.Addr, n.Error)
					continue
				}
				answered++
				fmt.Fprintf(g.stdout, "%s %s %d %d\n", n.ID, n.Addr, n.Keys, n.Bytes)
			}
			fmt.Fprintf(g.stdout, "nodes %d keys %d bytes %d min %d max %d mean %.1f gini %.3f\n",
				answered, l.Keys, l.Bytes, l.Min, l.Max, l.Mean, l.Gini)
			return nil
		},
	}
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print GET /v1/load's JSON")
	return cmd
}
