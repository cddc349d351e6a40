package dhtkit

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sync"

	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/internal/stat"
	"github.com/dhtkit/dhtkit/kademlia"
	"github.com/dhtkit/dhtkit/krpc"
)

// NodeLoad is what one node holds for the network.
type NodeLoad struct {
	Node  krpc.NodeInfo
	Keys  int64 // records, tombstones included
	Bytes int64
	Err   error // it did not answer dk_load; Keys and Bytes are zero
}

// Load is the spread of records over the network's nodes.
type Load struct {
	Nodes []NodeLoad // every node found, in id order; this node among them
	// Over the nodes that answered:
	Min, Max int64
	Mean     float64
	Gini     float64 // 0: all hold the same; near 1: one node holds all
	Keys     int64   // records in all, every copy counted
	Bytes    int64
}

// MaxLoadNodes bounds the nodes Load asks: beyond it, Load reports the
// first MaxLoadNodes nodes it finds.
const MaxLoadNodes = 4096

// loadParallel is how many dk_load queries Load keeps in flight.
const loadParallel = 16

// Load finds the nodes of the network (a Chord node walks the ring, its
// successor lists end to end, then asks for the successors of every node
// found, which catches a node the walk stepped over; a Kademlia node looks up 256 targets
// spread over the id space, which finds every node of a network of a
// few thousand) and asks each how many records and bytes it holds
// (dk_load). It is a research tool: it costs a few queries per node.
func (n *Node) Load(ctx context.Context) (Load, error) {
	members, err := n.members(ctx)
	if err != nil {
		return Load{}, err
	}
	out := make([]NodeLoad, len(members))
	var wg sync.WaitGroup
	sem := make(chan struct{}, loadParallel)
	for i, m := range members {
		out[i].Node = m
		if m.ID == n.ID() {
			st := n.eng.Store()
			k, b := st.Stats()
			out[i].Keys, out[i].Bytes = int64(k), b
			continue
		}
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			res, err := n.rt.Do(ctx, kademlia.Load{Addr: m.Addr})
			if err != nil {
				out[i].Err = fmt.Errorf("dk_load %v: %w", m.Addr, err)
				return
			}
			out[i].Keys, out[i].Bytes = res.Load.Keys, res.Load.Bytes
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		return Load{}, fmt.Errorf("dhtkit: load: %w", ctx.Err())
	}
	return summarize(out), nil
}

// summarize computes the figures of Load over the nodes that answered.
func summarize(nodes []NodeLoad) Load {
	l := Load{Nodes: nodes}
	var keys []int64
	for _, x := range nodes {
		if x.Err == nil {
			keys = append(keys, x.Keys)
			l.Keys += x.Keys
			l.Bytes += x.Bytes
		}
	}
	if len(keys) == 0 {
		return l
	}
	slices.Sort(keys)
	l.Min, l.Max = keys[0], keys[len(keys)-1]
	l.Mean = math.Round(float64(l.Keys)/float64(len(keys))*1000) / 1000
	l.Gini = math.Round(stat.Gini(keys)*1000) / 1000
	return l
}

// members lists the nodes of the network this node can find, itself
// included, in id order.
func (n *Node) members(ctx context.Context) ([]krpc.NodeInfo, error) {
	seen := map[id.ID]krpc.NodeInfo{n.ID(): {ID: n.ID(), Addr: n.Addr()}}
	add := func(ns []krpc.NodeInfo) {
		for _, x := range ns {
			if len(seen) < MaxLoadNodes && !x.ID.IsZero() && x.Addr.IsValid() {
				if _, ok := seen[x.ID]; !ok {
					seen[x.ID] = x
				}
			}
		}
	}
	if n.chord != nil {
		// Walk the ring: each lookup returns a successor list, the next
		// starts right after its last node, until the walk comes round.
		at := n.ID()
		for len(seen) < MaxLoadNodes {
			nodes, err := n.Lookup(ctx, id.AddPow2(at, 0))
			if err != nil {
				return nil, fmt.Errorf("dhtkit: load: walking the ring: %w", err)
			}
			before := len(seen)
			add(nodes)
			if len(nodes) == 0 || len(seen) == before {
				break // round the ring
			}
			last := nodes[len(nodes)-1].ID
			if last == n.ID() || id.Between(n.ID(), at, last) {
				break
			}
			at = last
		}
		// A walk through a ring still settling can step over a node: ask
		// for the successors of every node found, until none turns up.
		for round := 0; round < 3; round++ {
			before := len(seen)
			var mu sync.Mutex
			var wg sync.WaitGroup
			sem := make(chan struct{}, loadParallel)
			starts := make([]id.ID, 0, len(seen))
			for k := range seen {
				starts = append(starts, k)
			}
			for _, k := range starts {
				wg.Go(func() {
					sem <- struct{}{}
					defer func() { <-sem }()
					nodes, _ := n.Lookup(ctx, id.AddPow2(k, 0))
					mu.Lock()
					defer mu.Unlock()
					add(nodes)
				})
			}
			wg.Wait()
			if ctx.Err() != nil {
				return nil, fmt.Errorf("dhtkit: load: %w", ctx.Err())
			}
			if len(seen) == before {
				break
			}
		}
	} else {
		// 256 lookups, loadParallel at a time, of targets that share the
		// node's id but for the first byte.
		var mu sync.Mutex
		var wg sync.WaitGroup
		var firstErr error
		sem := make(chan struct{}, loadParallel)
		for b := range 256 {
			wg.Go(func() {
				sem <- struct{}{}
				defer func() { <-sem }()
				t := n.ID()
				t[0] = byte(b)
				nodes, err := n.Lookup(ctx, t)
				mu.Lock()
				defer mu.Unlock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				add(nodes)
			})
		}
		wg.Wait()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("dhtkit: load: %w", ctx.Err())
		}
		if len(seen) == 1 && firstErr != nil {
			return nil, fmt.Errorf("dhtkit: load: %w", firstErr)
		}
	}
	out := make([]krpc.NodeInfo, 0, len(seen))
	for _, x := range seen {
		out = append(out, x)
	}
	slices.SortFunc(out, func(a, b krpc.NodeInfo) int { return id.Compare(a.ID, b.ID) })
	return out, nil
}
