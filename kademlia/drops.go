package kademlia

import "github.com/dhtkit/dhtkit/guard"

// DropReason says why the engine dropped a query, a reply or a stored
// entry: package guard's reasons, which Chord counts too.
type DropReason = guard.DropReason

// The reasons, as package guard names them.
const (
	DropRateLimit       = guard.DropRateLimit
	DropGlobalRate      = guard.DropGlobalRate
	DropByteBudget      = guard.DropByteBudget
	DropGlobalBytes     = guard.DropGlobalBytes
	DropOversize        = guard.DropOversize
	DropUnproven        = guard.DropUnproven
	DropSourceEvicted   = guard.DropSourceEvicted
	DropPeerEvicted     = guard.DropPeerEvicted
	DropItemEvicted     = guard.DropItemEvicted
	DropListenerEvicted = guard.DropListenerEvicted
	DropNodeDiversity   = guard.DropNodeDiversity
	NumDropReasons      = guard.NumDropReasons
)

// DropReasons lists every reason, for exporters.
func DropReasons() []DropReason { return guard.DropReasons() }
