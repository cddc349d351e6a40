package sim

// Event kinds. Deliveries and engine deadlines are the bulk; the rest are
// the scenario's workload, scheduled up front or as nodes come and go.
const (
	evDeliver      uint8 = iota // a datagram reaches node `to`
	evTimer                     // node `to`'s engine deadline
	evLookup                    // a measured lookup starts (aux: lookup index)
	evAnnounce                  // a key is announced (aux: key index)
	evGet                       // a key is looked up (aux: key index; from: 1 for the final get)
	evLeave                     // node `to` leaves the network (churn)
	evJoin                      // a new node joins (join build-up or churn)
	evSilence                   // the silent nodes stop answering
	evPermanent                 // the permanent puts' writers refresh what is due (permanent.go)
	evPermanentGet              // a permanent key is read (aux: its index)
)

// event is one entry of the simulator's single priority queue. Events at
// the same virtual time run in the order they were scheduled (seq), which
// is what makes a run repeatable.
type event struct {
	at   int64 // virtual nanoseconds since the start
	seq  uint64
	data []byte // evDeliver: the datagram, owned by the event
	to   int32
	from int32
	aux  int32
	kind uint8
}

// queue is a binary min-heap of events by (at, seq), written out rather
// than through container/heap so that pushing an event allocates nothing
// beyond the slice's growth.
type queue struct {
	ev  []event
	seq uint64
}

func less(a, b *event) bool {
	if a.at != b.at {
		return a.at < b.at
	}
	return a.seq < b.seq
}

func (q *queue) push(e event) {
	q.seq++
	e.seq = q.seq
	q.ev = append(q.ev, e)
	h := q.ev
	i := len(h) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !less(&h[i], &h[p]) {
			break
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
}

// peek returns the earliest event's time; ok is false when the queue is
// empty.
func (q *queue) peek() (at int64, ok bool) {
	if len(q.ev) == 0 {
		return 0, false
	}
	return q.ev[0].at, true
}

func (q *queue) pop() event {
	h := q.ev
	top := h[0]
	n := len(h) - 1
	h[0] = h[n]
	h[n] = event{}
	h = h[:n]
	i := 0
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && less(&h[r], &h[l]) {
			m = r
		}
		if !less(&h[m], &h[i]) {
			break
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
	q.ev = h
	return top
}
