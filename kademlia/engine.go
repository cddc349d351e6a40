// Package kademlia is the Kademlia protocol engine of the BitTorrent DHT
// (BEP 5, with BEP 32, 42, 43, 44 and 51), written as a deterministic state
// machine in the manner of etcd-io/raft: it does no I/O and reads no clock.
// A driver hands it time, datagrams and user operations, and applies what
// Ready returns: datagrams to send and operations finished. The UDP runtime
// and the simulator are two such drivers around the same code.
package kademlia

import (
	"net/netip"
	"time"

	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/krpc"
	"github.com/dhtkit/dhtkit/routing"
)

// Stats are the engine's counters since it started.
type Stats struct {
	QueriesIn   [krpc.NumMethods]uint64 // by method; MethodUnknown counts unknown methods
	QueriesOut  [krpc.NumMethods]uint64
	ResponsesIn uint64
	ErrorsIn    uint64
	ErrorsOut   uint64 // error replies sent
	Malformed   uint64 // packets that failed to decode or validate
	RateLimited uint64 // queries dropped by the per-IP limit
	ForeignNet  uint64 // messages dropped for carrying another network name
	Timeouts    uint64 // queries of ours that got no answer
	BytesIn     uint64
	BytesOut    uint64
}

// Engine is one DHT node's protocol state. It is not safe for concurrent
// use: its driver serializes calls.
type Engine struct {
	cfg Config
}

// New returns an engine for cfg, started at now.
func New(cfg Config, now time.Time) *Engine {
	panic("unimplemented")
}

// ID is the node's id.
func (e *Engine) ID() id.ID { return e.cfg.ID }

// Receive hands the engine a datagram that arrived from a peer. The engine
// does not keep packet after it returns.
func (e *Engine) Receive(now time.Time, from netip.AddrPort, packet []byte) {}

// Start begins an operation; its Result comes out of Ready.
func (e *Engine) Start(now time.Time, op Op) OpID { return 0 }

// Cancel ends an operation early; its Result carries ErrCanceled.
func (e *Engine) Cancel(now time.Time, op OpID) {}

// Tick advances the engine's timers to now.
func (e *Engine) Tick(now time.Time) {}

// Ready returns what the driver should do now and clears it. Packet data
// is valid until the next call on the engine.
func (e *Engine) Ready() Ready { return Ready{} }

// Deadline is the time of the engine's next timer; the driver calls Tick
// then (or earlier). Zero means no timer is pending.
func (e *Engine) Deadline() time.Time { return time.Time{} }

// Close ends every operation with ErrClosed.
func (e *Engine) Close(now time.Time) {}

// Table is the routing table (read it only from the driver's goroutine).
func (e *Engine) Table() routing.Table { return nil }

// Stats returns the engine's counters.
func (e *Engine) Stats() Stats { return Stats{} }

// ExternalAddr is the address peers most often report for us in the "ip"
// field (BEP 42), and how many distinct peers reported it.
func (e *Engine) ExternalAddr() (netip.AddrPort, int) { return netip.AddrPort{}, 0 }

// Infohashes returns the infohashes in the peer store, up to n.
func (e *Engine) Infohashes(n int) []id.ID { return nil }
