package replica

import (
	"errors"
	"slices"
	"testing"

	"github.com/dhtkit/dhtkit/store"
)

// TestLeanGet follows a lean get of 3 replicas, read quorum 2, member 0
// this node: it asks itself and the nearest other, the third only when
// one of them fails or their answers disagree, and it always returns the
// newest version any quorum acknowledged.
func TestLeanGet(t *testing.T) {
	rec := func(i uint64) *store.Record {
		return &store.Record{Key: "k", Value: []byte{byte(i)}, Version: store.Version{Time: i}}
	}
	down := errors.New("down")
	cases := []struct {
		name    string
		members []Member
		// answers by member, in the order they come: nil fails it
		answers []func(o *Op, i int)
		asked   [][]int // Ask's answer after the start and each answer
		want    uint64  // version found, 0 for not found
		stale   []int
		skipped []int
	}{
		{
			name:    "agree",
			members: members(3),
			answers: []func(*Op, int){ans(rec(5)), ans(rec(5))},
			asked:   [][]int{{0, 1}, nil, nil},
			want:    5, skipped: []int{2},
		},
		{
			name:    "nothing anywhere",
			members: members(3),
			answers: []func(*Op, int){ans(nil), ans(nil)},
			asked:   [][]int{{0, 1}, nil, nil},
			skipped: []int{2},
		},
		{
			// A write the other two acknowledged while this node missed it.
			name:    "behind",
			members: members(3),
			answers: []func(*Op, int){ans(nil), ans(rec(5)), ans(rec(5))},
			asked:   [][]int{{0, 1}, nil, {2}, nil},
			want:    5, stale: []int{0},
		},
		{
			name:    "a member fails",
			members: members(3),
			answers: []func(*Op, int){ans(rec(5)), fail(down), ans(rec(5))},
			asked:   [][]int{{0, 1}, nil, {2}, nil},
			want:    5,
		},
		{
			// Not itself a replica: the two nearest.
			name:    "remote only",
			members: []Member{{}, {}, {}},
			answers: []func(*Op, int){ans(rec(4)), ans(rec(4))},
			asked:   [][]int{{0, 1}, nil, nil},
			want:    4, skipped: []int{2},
		},
		{
			// This node comes first wherever it is among the members.
			name:    "self last",
			members: []Member{{}, {}, {Self: true}},
			answers: []func(*Op, int){ans(rec(4)), ans(rec(3)), ans(rec(4))},
			asked:   [][]int{{2, 0}, nil, {1}, nil},
			want:    4, stale: []int{0},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := &Op{Key: "k", Members: c.members, Need: 2, Lean: true}
			var order []int
			got := o.Ask(nil)
			if !slices.Equal(got, c.asked[0]) {
				t.Fatalf("first Ask = %v, want %v", got, c.asked[0])
			}
			order = append(order, got...)
			for n, answer := range c.answers {
				if _, done := o.Decide(store.Version{}); done {
					t.Fatalf("decided before answer %d", n)
				}
				answer(o, order[n])
				got := o.Ask(nil)
				if !slices.Equal(got, c.asked[n+1]) {
					t.Fatalf("Ask after answer %d = %v, want %v", n, got, c.asked[n+1])
				}
				order = append(order, got...)
			}
			out, ok := o.Decide(store.Version{})
			if !ok {
				t.Fatal("not decided")
			}
			switch {
			case c.want == 0 && out.Kind != NotFound, c.want != 0 && (out.Kind != Found || out.Record.Version.Time != c.want):
				t.Fatalf("outcome %+v, want version %d", out, c.want)
			}
			if s := o.Stale(); !slices.Equal(s, c.stale) {
				t.Errorf("stale %v, want %v", s, c.stale)
			}
			var skipped []int
			for i, h := range out.Holders {
				if errors.Is(h.Err, errSkipped) {
					skipped = append(skipped, i)
				}
			}
			if !slices.Equal(skipped, c.skipped) {
				t.Errorf("skipped %v, want %v", skipped, c.skipped)
			}
			if more := o.Ask(nil); len(more) > 0 {
				t.Errorf("asked %v after the decision", more)
			}
		})
	}
}

func ans(r *store.Record) func(*Op, int) { return func(o *Op, i int) { o.Answer(i, r) } }
func fail(err error) func(*Op, int)      { return func(o *Op, i int) { o.Fail(i, err) } }
