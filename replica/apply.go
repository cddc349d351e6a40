package replica

import (
	"time"

	"github.com/dhtkit/dhtkit/store"
)

// Apply stores the records a pull brought back (a dk_fetch answer of
// anti-entropy): those whose version the node's clock accepts (observe,
// store.Clock.Observe) and that are not expired, newest version winning
// in the store. A store limit keeps what fits: the records before the one
// that broke PutAll are stored, and the rest are tried one by one. It
// calls changed for each record the store took, for both engines alike.
func Apply(now time.Time, st store.Store, recs []store.Record, observe func(store.Version) error, changed func(store.Record)) {
	valid := recs[:0]
	for _, r := range recs {
		if observe(r.Version) == nil && !Expired(&r, now) {
			valid = append(valid, r)
		}
	}
	applied, err := st.PutAll(valid)
	if err != nil {
		for _, r := range valid[len(applied):] {
			ok, _ := st.Put(r)
			applied = append(applied, ok)
		}
	}
	for i, ok := range applied {
		if ok {
			changed(valid[i])
		}
	}
}
