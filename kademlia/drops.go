package kademlia

import "github.com/dhtkit/dhtkit/guard"

// DropReason says why the engine dropped a query, a reply or a stored
// entry: package guard's reasons (guard.DropRateLimit, ...), which Chord
// counts too.
type DropReason = guard.DropReason

// DropReasons lists every reason, for exporters.
func DropReasons() []DropReason { return guard.DropReasons() }
