// Package heapq is a priority queue of any type, ordered by a function:
// the one heap the engines' timers and the test drivers' deliveries share
// instead of each writing heap.Interface again.
//
// It sifts its own slice rather than go through container/heap, whose
// Push and Pop take and return an interface: boxing an item cost an
// allocation on every Push and every Pop, and every query an engine
// sends pushes its timeout.
package heapq

// Queue holds items, the least (by Before) first. Before must be set before
// the first Push.
type Queue[T any] struct {
	Before func(a, b T) bool
	items  []T
}

// Len is the number of items.
func (q *Queue[T]) Len() int { return len(q.items) }

// Push adds x.
func (q *Queue[T]) Push(x T) {
	q.items = append(q.items, x)
	q.up(len(q.items) - 1)
}

// Pop removes and returns the least item; the queue must not be empty.
func (q *Queue[T]) Pop() T {
	n := len(q.items) - 1
	x := q.items[0]
	q.items[0] = q.items[n]
	var zero T
	q.items[n] = zero // keep no reference to what was popped
	q.items = q.items[:n]
	q.down(0)
	return x
}

// Peek returns the least item; false when the queue is empty.
func (q *Queue[T]) Peek() (T, bool) {
	if len(q.items) == 0 {
		var zero T
		return zero, false
	}
	return q.items[0], true
}

func (q *Queue[T]) up(j int) {
	for j > 0 {
		i := (j - 1) / 2 // parent
		if !q.Before(q.items[j], q.items[i]) {
			return
		}
		q.items[i], q.items[j] = q.items[j], q.items[i]
		j = i
	}
}

func (q *Queue[T]) down(i int) {
	n := len(q.items)
	for {
		j := 2*i + 1 // left child
		if j >= n {
			return
		}
		if r := j + 1; r < n && q.Before(q.items[r], q.items[j]) {
			j = r
		}
		if !q.Before(q.items[j], q.items[i]) {
			return
		}
		q.items[i], q.items[j] = q.items[j], q.items[i]
		i = j
	}
}
