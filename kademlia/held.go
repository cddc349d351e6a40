package kademlia

// Held is what an engine holds for others, each part bounded by Config:
// what a flood can make it keep.
type Held struct {
	Swarms    int // infohashes in the peer store (MaxInfohashes)
	Peers     int // peers over all swarms (MaxPeersPerInfohash each)
	Items     int // BEP 44 items (MaxItems)
	Listeners int // dk_listen registrations (MaxListeners)
	Sources   int // sources the rate limiter tracks (65,536)
	Contacts  int // routing table contacts
}

// Held returns what the engine holds now.
func (e *Engine) Held() Held {
	h := Held{
		Swarms:    e.peers.len(),
		Items:     len(e.items.items),
		Listeners: e.listeners.Len(),
		Sources:   e.limiter.Sources(),
		Contacts:  e.table.Len(),
	}
	for _, sw := range e.peers.swarms {
		h.Peers += len(sw.peers)
	}
	return h
}
