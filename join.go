package dhtkit

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Honest answers at start and restart. A node that has not joined a
// network would answer a read from its own disk alone (a restarted node:
// stale values, deleted keys back) and acknowledge a write with itself as
// the only holder. So reads and writes wait until the node is ready:
//
//   - a node given bootstrap addresses (Config.Bootstrap, or the contacts
//     a data directory saved) has joined through one of them, and
//   - it knows at least the other nodes a write quorum needs, a majority
//     of the configured replicas counting itself (1 other node for 3
//     replicas, 2 for 5), not counting bad contacts.
//
// A node that is alone on purpose (Config.Alone, `dhtkit node --bootstrap
// none`) is always ready. Once ready, a node stays ready: later faults are
// the replication layer's to handle (its write quorum, its repair).
//
// The wait lasts while the request's context does, at most JoinWait; then
// the request fails with ErrNotJoined, saying why.

// JoinWait bounds how long a read or a write waits for the node to be
// ready when its context allows longer.
const JoinWait = 30 * time.Second

// ErrNotJoined is returned by reads and writes of a node that has not
// joined a network (or knows too few nodes) within their context, at most
// JoinWait.
var ErrNotJoined = errors.New("dhtkit: the node has not joined a network")

// bootSilence is how long a node waits for a bootstrap node to answer
// before it says so in its log (a variable for tests).
var bootSilence = 30 * time.Second

// readyPoll is how often a waiting request looks at the node again.
const readyPoll = 50 * time.Millisecond

// othersNeeded is how many other nodes a write quorum of replicas needs:
// a majority of them, less the node itself.
func othersNeeded(replicas int) int { return max(replicas, 1) / 2 }

// peersKnown is how many other nodes the node can route through: good
// and questionable contacts (a Chord node: its successors).
func (n *Node) peersKnown(atLeast int) int {
	var k int
	n.rt.Inspect(func() {
		if n.kad != nil {
			k = len(n.kad.Table().Closest(n.ID(), atLeast, nil))
		} else {
			k = len(n.chord.Successors())
		}
	})
	return k
}

// readiness reports whether the node may serve reads and writes, and if
// not, why, in words that say what to do.
func (n *Node) readiness() (bool, string) {
	if n.alone || n.ready.Load() {
		return true, ""
	}
	if n.hasBoot && !n.booted.Load() {
		return false, fmt.Sprintf("no node has answered at %s yet (the node keeps trying; check that they run with the same --network and --protocol)", strings.Join(n.bootList, ","))
	}
	if k := n.peersKnown(n.need); k < n.need {
		how := "give --bootstrap HOST:PORT of a node of the network"
		if n.hasBoot {
			how = "start more nodes"
		}
		return false, fmt.Sprintf("it knows %d other nodes, fewer than the %d a write quorum of %d replicas needs (%s, or run a one-node network on purpose with --bootstrap none)", k, n.need, n.replicas, how)
	}
	n.ready.Store(true)
	return true, ""
}

// waitReady waits until the node is ready, within ctx and at most
// JoinWait, and says why not when it is not.
func (n *Node) waitReady(ctx context.Context) error {
	ok, why := n.readiness()
	if ok {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, JoinWait)
	defer cancel()
	t := time.NewTicker(readyPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %s", ErrNotJoined, why)
		case <-n.ctx.Done():
			return fmt.Errorf("%w: the node is closed", ErrNotJoined)
		case <-t.C:
		}
		if ok, why = n.readiness(); ok {
			return nil
		}
	}
}

// Ready reports whether the node serves reads and writes now, and if not,
// why.
func (n *Node) Ready() (bool, string) { return n.readiness() }

// OthersNeeded is how many other nodes the node must know before it
// serves reads and writes (none when it is alone on purpose).
func (n *Node) OthersNeeded() int {
	if n.alone {
		return 0
	}
	return n.need
}
