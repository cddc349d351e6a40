package replica

import (
	"time"

	"github.com/dhtkit/dhtkit/store"
)

// Pulled stores the records of x, the answer to a round's pull (a
// dk_fetch of the keys it found newer at its peer), that are newer than
// st's copy (Apply): observe tells the engine's clock of each version,
// changed its listeners of each record stored. It returns the error of
// an answer that does not parse, for the engine's count.
func Pulled(now time.Time, st store.Store, x []byte, observe func(time.Time, store.Version) error, changed func(time.Time, store.Record)) error {
	recs, err := ParseRecords(x)
	if err != nil {
		return err
	}
	Apply(now, st, recs, func(v store.Version) error { return observe(now, v) }, func(r store.Record) { changed(now, r) })
	return nil
}
