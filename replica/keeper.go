package replica

import (
	"slices"
	"time"
)

// Keeper schedules the refreshes of permanent puts: values their writer
// keeps alive by writing them again, each time with a new version and a
// fresh expiry, before the last write expires. It is sans-I/O like the
// rest of the layer: the writer (dhtkit.Node over the network, the
// simulator over its modelled one) asks it what is due, does the writes,
// and reports how each went. One rule for both, so what the simulator
// measures under churn is what a node does.
//
// Why a new version each time and not the same one again: a store caps a
// record's expiry at its version's time plus MaxTTL, and a replica that
// already holds a version takes the same version again as nothing new
// (anti-entropy compares keys and versions, never expiries), so a
// refresh under the old version could neither outlive MaxTTL nor reach
// the replicas that hold the record already. A new version is an
// ordinary write: it goes to the key's replica set as it is now (nodes
// that joined since included), replaces every older copy by newest-wins,
// and repair carries it as it carries any write.
//
// When: every TTL/RefreshDivisor after a write that succeeded, so that a
// value whose refresh fails has RefreshDivisor-1 more chances, each
// RetryEvery apart at most, before it expires.
type Keeper struct {
	entries map[string]*keeperEntry
}

// RefreshDivisor is how many refreshes a TTL holds: a permanent value is
// written again every TTL/RefreshDivisor.
const RefreshDivisor = 3

// MinRefresh is the shortest time between two writes of one permanent
// value, whatever its TTL.
const MinRefresh = time.Second

// RetryEvery is the longest wait before a failed refresh is tried again
// (shorter when a tenth of the TTL is).
const RetryEvery = 30 * time.Second

type keeperEntry struct {
	ttl  time.Duration
	next time.Time // when the next write is due
	busy bool      // a write was handed out and has not been reported
}

// NewKeeper returns an empty Keeper.
func NewKeeper() *Keeper { return &Keeper{entries: map[string]*keeperEntry{}} }

// Add starts keeping key alive with writes of ttl; the first is due at
// first (now for a new permanent put that has not been written yet, or
// the refresh time of one already written). Adding a key already kept
// replaces its TTL and schedule.
func (k *Keeper) Add(key string, ttl time.Duration, first time.Time) {
	k.entries[key] = &keeperEntry{ttl: ttl, next: first}
}

// Cancel stops keeping key alive; it reports whether it was kept.
func (k *Keeper) Cancel(key string) bool {
	_, ok := k.entries[key]
	delete(k.entries, key)
	return ok
}

// Has reports whether key is kept alive.
func (k *Keeper) Has(key string) bool { return k.entries[key] != nil }

// Len is how many keys are kept alive.
func (k *Keeper) Len() int { return len(k.entries) }

// Due returns, in key order, the keys whose write is due at now and marks
// them busy until Done reports them.
func (k *Keeper) Due(now time.Time) []string {
	var due []string
	for key, e := range k.entries {
		if !e.busy && !now.Before(e.next) {
			e.busy = true
			due = append(due, key)
		}
	}
	slices.Sort(due)
	return due
}

// Done reports the write of key handed out by Due (or made by the writer
// itself, the first put) that ended at now: ok, and the next is due a
// refresh interval later; failed, and it is tried again soon.
func (k *Keeper) Done(key string, now time.Time, ok bool) {
	e := k.entries[key]
	if e == nil {
		return // cancelled meanwhile
	}
	e.busy = false
	if ok {
		e.next = now.Add(RefreshInterval(e.ttl))
	} else {
		e.next = now.Add(min(RetryEvery, max(e.ttl/10, MinRefresh)))
	}
}

// Deadline is when the next write is due; zero when nothing is kept or
// every due write is out.
func (k *Keeper) Deadline() time.Time {
	var d time.Time
	for _, e := range k.entries {
		if !e.busy && (d.IsZero() || e.next.Before(d)) {
			d = e.next
		}
	}
	return d
}

// RefreshInterval is the time between two writes of a permanent value of
// ttl that succeed.
func RefreshInterval(ttl time.Duration) time.Duration {
	return max(ttl/RefreshDivisor, MinRefresh)
}
