// Package heapq is a priority queue of any type, ordered by a function:
// the one heap the engines' timers and the test drivers' deliveries share
// instead of each writing heap.Interface again.
package heapq

import "container/heap"

// Queue holds items, the least (by Before) first. Before must be set before
// the first Push.
type Queue[T any] struct {
	Before func(a, b T) bool
	items  []T
}

// Len is the number of items.
func (q *Queue[T]) Len() int { return len(q.items) }

// Push adds x.
func (q *Queue[T]) Push(x T) { heap.Push((*adapter[T])(q), x) }

// Pop removes and returns the least item; the queue must not be empty.
func (q *Queue[T]) Pop() T { return heap.Pop((*adapter[T])(q)).(T) }

// Peek returns the least item; false when the queue is empty.
func (q *Queue[T]) Peek() (T, bool) {
	if len(q.items) == 0 {
		var zero T
		return zero, false
	}
	return q.items[0], true
}

// adapter is Queue as a heap.Interface.
type adapter[T any] Queue[T]

func (a *adapter[T]) Len() int           { return len(a.items) }
func (a *adapter[T]) Less(i, j int) bool { return a.Before(a.items[i], a.items[j]) }
func (a *adapter[T]) Swap(i, j int)      { a.items[i], a.items[j] = a.items[j], a.items[i] }
func (a *adapter[T]) Push(x any)         { a.items = append(a.items, x.(T)) }
func (a *adapter[T]) Pop() any {
	n := len(a.items) - 1
	x := a.items[n]
	var zero T
	a.items[n] = zero
	a.items = a.items[:n]
	return x
}
