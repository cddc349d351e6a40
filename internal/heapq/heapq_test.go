package heapq

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestQueue pushes each input and pops it back in order, checking Peek
// against every Pop.
func TestQueue(t *testing.T) {
	inputs := [][]int{nil, {4}, {1, 2, 3, 4}, {4, 3, 2, 1}, {2, 1, 2, 1}, rand.New(rand.NewPCG(1, 1)).Perm(100)}
	for _, in := range inputs {
		q := Queue[int]{Before: func(a, b int) bool { return a < b }}
		for _, x := range in {
			q.Push(x)
		}
		var got []int
		for q.Len() > 0 {
			p, ok := q.Peek()
			if x := q.Pop(); !ok || x != p {
				t.Fatalf("%v: Pop %d after Peek %d, %v", in, x, p, ok)
			}
			got = append(got, p)
		}
		if want := slices.Sorted(slices.Values(in)); !slices.Equal(got, want) {
			t.Fatalf("%v: popped %v, want %v", in, got, want)
		}
		if _, ok := q.Peek(); ok {
			t.Fatalf("%v: Peek on an empty queue", in)
		}
	}
}

// TestQueueAllocs checks that Push and Pop box nothing: every query an
// engine sends pushes its timeout.
func TestQueueAllocs(t *testing.T) {
	type item struct {
		at  int64
		tid uint16
	}
	q := Queue[item]{Before: func(a, b item) bool { return a.at < b.at }}
	for i := range 64 { // grow the slice first: growth is amortized
		q.Push(item{at: int64(i)})
	}
	for q.Len() > 0 {
		q.Pop()
	}
	if n := testing.AllocsPerRun(100, func() {
		q.Push(item{at: 3, tid: 3})
		q.Push(item{at: 1, tid: 1})
		if a, b := q.Pop(), q.Pop(); a.tid != 1 || b.tid != 3 {
			t.Fatalf("popped %v then %v, want tid 1 then 3", a, b)
		}
	}); n != 0 {
		t.Fatalf("%v allocations per two Push and two Pop, want 0", n)
	}
}
