package chord

import (
	"time"

	"github.com/dhtkit/dhtkit/replica"
	"github.com/dhtkit/dhtkit/store"
)

// AsyncCommits tells the engine that its driver runs the group commits
// Ready hands out (Ready.Commit) off the engine's lock and gives each back
// through Committed, as kademlia.Engine.AsyncCommits does, and for the
// same stores: those that sync to disk.
func (e *Engine) AsyncCommits() {
	e.commits.Async = store.Durable(e.kvStore())
}

// Committed takes back a batch of Ready.Commit once it has Run: its
// writes are on disk, and their answers go out now.
func (e *Engine) Committed(now time.Time, b *replica.Batch) {
	if e.closed {
		return
	}
	e.begin()
	e.commits.Finish(now, b, e.changed)
}
