package dhtkit

import (
	"time"

	"github.com/dhtkit/dhtkit/chord"
	"github.com/dhtkit/dhtkit/guard"
	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/kademlia"
	"github.com/dhtkit/dhtkit/krpc"
	"github.com/dhtkit/dhtkit/routing"
	"github.com/dhtkit/dhtkit/store"
)

// newChord makes the Chord engine of a node configured by cfg, with the
// id and the store of dir when the node has a data directory. Its abuse
// bounds are the Kademlia configuration's (the same flags set both)
// unless cfg.Chord sets its own; sender names a sealed datagram's sender
// under a network key (nil without one).
func newChord(cfg Config, dir *dataDir, sender func() (id.ID, bool)) *chord.Engine {
	cc := cfg.Chord
	if cc.Guard == (guard.Config{}) {
		cc.Guard = cfg.Kademlia.Guard()
	}
	if cc.Sender == nil {
		cc.Sender = sender
	}
	cc.Alone = cc.Alone || cfg.Alone
	cc.Network = chordNetwork(cfg.Network)
	if cfg.Replicas > 0 {
		cc.Replicas = cfg.Replicas
	}
	if dir != nil {
		cc.ID = dir.id
		cc.Store = dir.store
	} else if cc.Store == nil {
		cc.Store = store.NewMemory(cfg.Limits)
	}
	return chord.New(cc, time.Now())
}

// chordNetwork is the network name a Chord node uses for network: the
// default one is Chord's own, so that a Chord node and a Kademlia node
// started with the defaults drop each other's messages rather than
// answer them with errors.
func chordNetwork(network string) string {
	if network == "" || network == DefaultNetwork {
		return chord.DefaultNetwork
	}
	return network
}

// Protocol is the routing protocol the node runs: Kademlia or Chord.
func (n *Node) Protocol() string {
	if n.chord != nil {
		return Chord
	}
	return Kademlia
}

// ChordStats returns the Chord engine's counters, by Chord method; false
// when the node runs another protocol.
func (n *Node) ChordStats() (chord.Stats, bool) {
	if n.chord == nil {
		return chord.Stats{}, false
	}
	var s chord.Stats
	n.rt.Inspect(func() { s = n.chord.Stats() })
	return s, true
}

// chordRouting is a Chord engine's neighbours as one routing bucket, so
// that what shows a Kademlia table (the web page, the status, the saved
// contacts) shows them too: the predecessor, the successor list, then the
// fingers, each node once, all Good (the engine drops a neighbour at its
// first failure); then the neighbours that stopped answering and are
// being probed (chord.Engine.Lost), as Bad.
func chordRouting(e *chord.Engine) []routing.Bucket {
	seen := make(map[id.ID]bool)
	var contacts []routing.Contact
	state := routing.Good
	add := func(ns ...krpc.NodeInfo) {
		for _, c := range ns {
			if seen[c.ID] || c.ID == e.ID() {
				continue
			}
			seen[c.ID] = true
			contacts = append(contacts, routing.Contact{ID: c.ID, Addr: c.Addr, State: state})
		}
	}
	if p, ok := e.Predecessor(); ok {
		add(p)
	}
	add(e.Successors()...)
	add(e.Fingers()...)
	state = routing.Bad
	add(e.Lost()...)
	return []routing.Bucket{{Prefix: e.ID(), Contacts: contacts}}
}

// chordMethods maps the Chord methods counted by chord.Stats onto the
// Kademlia methods that do the same work: a lookup step is a find_node, a
// leave a dk_bye. The stabilization methods (ch_get_predecessor,
// ch_notify, ch_hint) have no counterpart and count as unknown.
var chordMethods = map[string]krpc.Method{
	"ping":              krpc.MethodPing,
	"ch_find_successor": krpc.MethodFindNode,
	"ch_leave":          krpc.MethodBye,
	"dk_store":          krpc.MethodStore,
	"dk_fetch":          krpc.MethodFetch,
	"dk_load":           krpc.MethodLoad,
}

// chordStats converts a Chord engine's counters into kademlia.Stats, which
// the web page and the metrics read.
func chordStats(c chord.Stats) kademlia.Stats {
	s := kademlia.Stats{
		ResponsesIn: c.ResponsesIn,
		ErrorsIn:    c.ErrorsIn,
		ErrorsOut:   c.ErrorsOut,
		Malformed:   c.Malformed,
		ForeignNet:  c.ForeignNet,
		Unsolicited: c.Unsolicited,
		Timeouts:    c.Timeouts,
		Probes:      c.Probes,
		Reissues:    c.Reissues,
		BytesIn:     c.BytesIn,
		BytesOut:    c.BytesOut,
	}
	s.Drops = c.Drops
	for i := range c.QueriesIn {
		m := chordMethods[chord.MethodName(i)] // MethodUnknown when absent
		s.QueriesIn[m] += c.QueriesIn[i]
		s.QueriesOut[m] += c.QueriesOut[i]
	}
	return s
}
