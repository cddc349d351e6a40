package sim

import (
	"time"

	"github.com/dhtkit/dhtkit/kademlia"
	"github.com/dhtkit/dhtkit/replica"
)

// Permanent puts in the simulator (Config.Permanent): each permanent key
// has a writer, a node that stays up for the whole run (churn passes it
// by), and that keeps the key alive by the replication layer's own rule
// (replica.Keeper, as dhtkit.Node does): a new version of the value,
// with PermanentTTL, every TTL/3, sooner after a failure. At
// PermanentCancel the writers cancel. Every key is read once a
// PermanentReadEvery from a random node: while it is kept, each read
// should find it (permanent_read_rate); from PermanentCancel plus the TTL
// on, none should (permanent_found_after_cancel).

// Defaults of the permanent-put workload.
const (
	DefaultPermanentTTL = 10 * time.Minute
	permanentTick       = time.Second // how often the writers' keeper is asked what is due
	permanentReadEvery  = time.Minute
)

// permanent is the state of the workload.
type permanent struct {
	keeper   *replica.Keeper
	keys     []string
	writers  []int32        // the writer of each key
	isWriter map[int32]bool // nodes churn passes by
	cancelAt int64          // virtual time the writers cancel
	ttl      time.Duration

	refreshes, refreshFailed int
	reads, readOK            int // while kept
	refused                  int // of those, refused for a majority of crashed replicas
	readsAfter, foundAfter   int // past the cancel plus the TTL
}

// permanentValue is what key's writer writes.
func permanentValue(key string) []byte { return []byte("permanent " + key) }

// permanentCancel is when the writers cancel, from the measured phase's
// start: Config.PermanentCancel, else the TTL plus 10 minutes before the
// end (or half the phase, if that is later), so that reads run past the
// cancel plus the TTL.
func (c Config) permanentCancel() time.Duration {
	if c.PermanentCancel > 0 {
		return c.PermanentCancel
	}
	return max(c.Duration-c.PermanentTTL-10*time.Minute, c.Duration/2)
}

// startPermanent picks the writers, writes the keys and schedules the
// keeper's ticks, the reads and the cancel.
func (s *Sim) startPermanent() {
	if s.cfg.Permanent == 0 {
		return
	}
	p := &permanent{keeper: replica.NewKeeper(), isWriter: map[int32]bool{}, ttl: s.cfg.PermanentTTL}
	s.perm = p
	p.cancelAt = s.t0 + int64(s.cfg.permanentCancel())
	for k := 0; k < s.cfg.Permanent; k++ {
		w := int32(-1)
		for tries := 0; tries < 100; tries++ {
			if i := s.randomUp(s.rngWork, true); i >= 0 && !p.isWriter[i] {
				w = i
				break
			}
		}
		if w < 0 {
			break
		}
		key := "permanent/" + s.nodes[w].id.String()[:8]
		p.keys = append(p.keys, key)
		p.writers = append(p.writers, w)
		p.isWriter[w] = true
		p.keeper.Add(key, p.ttl, s.time())
	}
	s.q.push(event{at: s.t0, kind: evPermanent})
	for at := s.t0 + int64(permanentReadEvery); at < s.end; at += int64(permanentReadEvery) {
		if at >= p.cancelAt && at < p.cancelAt+int64(p.ttl) {
			continue // the value may or may not have expired yet
		}
		for k := range p.keys {
			s.q.push(event{at: at, kind: evPermanentGet, aux: int32(k)})
		}
	}
}

// permanentTick hands the writes the keeper says are due to their
// writers, and cancels every permanent put at cancelAt.
func (s *Sim) permanentTick() {
	p := s.perm
	if s.now >= p.cancelAt {
		for _, key := range p.keys {
			p.keeper.Cancel(key)
		}
		return // no more ticks
	}
	for _, key := range p.keeper.Due(s.time()) {
		k := p.index(key)
		w := p.writers[k]
		if !s.nodes[w].up() {
			p.keeper.Done(key, s.time(), false)
			continue
		}
		s.begin(w, kademlia.KVPut{Key: key, Value: permanentValue(key), TTL: p.ttl}, opRef{kind: evPermanent, aux: int32(k)})
	}
	s.q.push(event{at: s.now + int64(permanentTick), kind: evPermanent})
}

func (p *permanent) index(key string) int {
	for k, x := range p.keys {
		if x == key {
			return k
		}
	}
	return -1
}

// permanentGet reads key k from a random node.
func (s *Sim) permanentGet(k int32) {
	i := s.randomUp(s.rngWork, false)
	if i < 0 {
		return
	}
	s.begin(i, kademlia.KVGet{Key: s.perm.keys[k]}, opRef{kind: evPermanentGet, aux: k})
}

// permanentResult records a finished write or read of the workload.
func (s *Sim) permanentResult(ref opRef, r *kademlia.Result) {
	p := s.perm
	key := p.keys[ref.aux]
	switch ref.kind {
	case evPermanent:
		p.refreshes++
		if r.Err != nil {
			p.refreshFailed++
		}
		p.keeper.Done(key, s.time(), r.Err == nil)
	case evPermanentGet:
		found := r.Err == nil && r.Record != nil && string(r.Record.Value) == string(permanentValue(key))
		// No read starts between the cancel and the cancel plus the TTL,
		// and a read takes seconds: one that ends before that began
		// while the key was kept.
		if s.now < p.cancelAt+int64(p.ttl) {
			p.reads++
			if found {
				p.readOK++
			} else if s.refusedForDead(r) {
				p.refused++
			}
		} else {
			p.readsAfter++
			if found {
				p.foundAfter++
			}
		}
	}
}
