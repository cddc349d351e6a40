package guard

// DropReason says why an engine (Kademlia or Chord) dropped a query, a
// reply or a stored entry. kademlia.Stats.Drops counts each; /metrics
// exports them as dhtkit_dropped_total{reason}.
type DropReason uint8

const (
	// DropRateLimit: a query over its source's query rate (RateLimit).
	DropRateLimit DropReason = iota + 1
	// DropGlobalRate: a query over the node's query rate (GlobalRate).
	DropGlobalRate
	// DropByteBudget: a reply to an unproven source over the source's
	// byte budget (RateBytes).
	DropByteBudget
	// DropGlobalBytes: a reply to an unproven source over the node's byte
	// budget for unproven sources (GlobalBytes).
	DropGlobalBytes
	// DropOversize: a message that would exceed MaxDatagram.
	DropOversize
	// DropUnproven: a dhtkit reply refused to a source without a token
	// because it would be over 3× the query's bytes.
	DropUnproven
	// DropSourceEvicted: the rate limiter forgot its least recent source
	// to make room for a new one.
	DropSourceEvicted
	// DropPeerEvicted: the peer store dropped its least recently announced
	// swarm (MaxInfohashes) to make room.
	DropPeerEvicted
	// DropItemEvicted: the BEP 44 store dropped its least recently put
	// item (MaxItems) to make room.
	DropItemEvicted
	// DropListenerEvicted: a dk_listen registration gave its place to a
	// newer one (see replica.Listeners.Add).
	DropListenerEvicted
	// DropNodeDiversity: a node kept out of the routing table or a lookup
	// because its IP or prefix already had its share.
	DropNodeDiversity
	// NumDropReasons sizes Stats.Drops.
	NumDropReasons
)

var dropNames = [NumDropReasons]string{
	DropRateLimit:       "rate_limit",
	DropGlobalRate:      "global_rate",
	DropByteBudget:      "byte_budget",
	DropGlobalBytes:     "global_bytes",
	DropOversize:        "oversize",
	DropUnproven:        "unproven",
	DropSourceEvicted:   "source_evicted",
	DropPeerEvicted:     "peer_evicted",
	DropItemEvicted:     "item_evicted",
	DropListenerEvicted: "listener_evicted",
	DropNodeDiversity:   "node_diversity",
}

func (r DropReason) String() string {
	if r > 0 && r < NumDropReasons {
		return dropNames[r]
	}
	return "unknown"
}

// DropReasons lists every reason, for exporters.
func DropReasons() []DropReason {
	rs := make([]DropReason, 0, NumDropReasons-1)
	for r := DropRateLimit; r < NumDropReasons; r++ {
		rs = append(rs, r)
	}
	return rs
}
