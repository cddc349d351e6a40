// Package lru is an intrusive recency list: the elements are the caller's
// own, allocated once and reused, so that a table bounded by evicting its
// least recent entry (the rate limiter's sources, the peer store's swarms)
// allocates nothing under a flood of new keys. The map from key to
// element stays the caller's, who knows its key type.
package lru

// Elem is one element of a List: a value and its links.
type Elem[T any] struct {
	Value      T
	prev, next *Elem[T]
	in         bool
}

// List orders elements from the most recently used (front) to the least
// (back). The zero value is an empty list.
type List[T any] struct {
	head, tail *Elem[T]
	n          int
}

// Len is the number of elements in the list.
func (l *List[T]) Len() int { return l.n }

// Front is the most recent element, or nil.
func (l *List[T]) Front() *Elem[T] { return l.head }

// Back is the least recent element, or nil.
func (l *List[T]) Back() *Elem[T] { return l.tail }

// Touch makes e the most recent element, adding it if it is not in the
// list.
func (l *List[T]) Touch(e *Elem[T]) {
	if e.in {
		if l.head == e {
			return
		}
		l.Remove(e)
	}
	e.prev, e.next, e.in = nil, l.head, true
	if l.head != nil {
		l.head.prev = e
	}
	l.head = e
	if l.tail == nil {
		l.tail = e
	}
	l.n++
}

// Remove takes e out of the list; an element not in it is left alone.
func (l *List[T]) Remove(e *Elem[T]) {
	if !e.in {
		return
	}
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		l.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		l.tail = e.prev
	}
	e.prev, e.next, e.in = nil, nil, false
	l.n--
}

// Next is the element after e, one less recent, or nil.
func (e *Elem[T]) Next() *Elem[T] { return e.next }

// Prev is the element before e, one more recent, or nil.
func (e *Elem[T]) Prev() *Elem[T] { return e.prev }
