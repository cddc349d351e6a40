package kademlia

import (
	"time"

	"github.com/dhtkit/dhtkit/id"
)

// silentFor is how long a node that stopped answering is left out of
// later lookups. Other nodes keep listing a departed node in their
// replies until their own tables notice; without this memory, every
// lookup near it would wait out its timeouts again.
const silentFor = 2 * time.Minute

// silentMisses is how many queries in a row a node must leave unanswered
// to count as silent: one lost datagram is not enough.
const silentMisses = 2

// maxSilent bounds the set's memory.
const maxSilent = 1024

// silentSet remembers nodes that recently failed to answer. Hearing from a
// node, a reply or a query, takes it out at once.
type silentSet struct {
	at map[id.ID]silence
}

type silence struct {
	since  time.Time
	first  time.Time // the first miss of this silence: the quorum rule's clock
	misses int
	left   bool // it said it is leaving
}

func (s *silentSet) mark(now time.Time, x id.ID) {
	if s.at == nil {
		s.at = make(map[id.ID]silence)
	}
	if len(s.at) >= maxSilent {
		for k, v := range s.at {
			if now.Sub(v.since) >= silentFor {
				delete(s.at, k)
			}
		}
		if len(s.at) >= maxSilent {
			return
		}
	}
	v, ok := s.at[x]
	if !ok {
		v.first = now
	}
	v.since = now
	v.misses++
	s.at[x] = v
}

// gone records a node that said it is leaving.
func (s *silentSet) gone(now time.Time, x id.ID) {
	s.mark(now, x)
	if v, ok := s.at[x]; ok {
		v.misses, v.left = silentMisses, true
		s.at[x] = v
	}
}

func (s *silentSet) has(now time.Time, x id.ID) bool {
	v, ok := s.at[x]
	return ok && v.misses >= silentMisses && now.Sub(v.since) < silentFor
}

// downFor returns how long x has been silent, and whether it said it is
// leaving; ok is false when the set holds no silence of x.
func (s *silentSet) downFor(now time.Time, x id.ID) (d time.Duration, left, ok bool) {
	v, ok := s.at[x]
	return now.Sub(v.first), v.left, ok
}

func (s *silentSet) forget(x id.ID) {
	if s.at != nil {
		delete(s.at, x)
	}
}
