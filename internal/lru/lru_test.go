package lru

import (
	"slices"
	"testing"
)

func order(l *List[int]) []int {
	var out []int
	for e := l.Front(); e != nil; e = e.Next() {
		out = append(out, e.Value)
	}
	var back []int
	for e := l.Back(); e != nil; e = e.Prev() {
		back = append(back, e.Value)
	}
	slices.Reverse(back)
	if !slices.Equal(out, back) {
		panic("links disagree")
	}
	return out
}

func TestList(t *testing.T) {
	type step struct {
		op   string // t: touch, r: remove
		elem int
	}
	tests := []struct {
		name  string
		steps []step
		want  []int
	}{
		{"empty", nil, nil},
		{"touch adds at the front", []step{{"t", 1}, {"t", 2}, {"t", 3}}, []int{3, 2, 1}},
		{"touch moves to the front", []step{{"t", 1}, {"t", 2}, {"t", 3}, {"t", 1}}, []int{1, 3, 2}},
		{"touch of the front is a no-op", []step{{"t", 1}, {"t", 2}, {"t", 2}}, []int{2, 1}},
		{"remove the back", []step{{"t", 1}, {"t", 2}, {"r", 1}}, []int{2}},
		{"remove the front", []step{{"t", 1}, {"t", 2}, {"r", 2}}, []int{1}},
		{"remove the middle", []step{{"t", 1}, {"t", 2}, {"t", 3}, {"r", 2}}, []int{3, 1}},
		{"remove twice", []step{{"t", 1}, {"r", 1}, {"r", 1}}, nil},
		{"remove then touch again", []step{{"t", 1}, {"t", 2}, {"r", 1}, {"t", 1}}, []int{1, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var l List[int]
			elems := map[int]*Elem[int]{}
			for _, s := range tt.steps {
				e := elems[s.elem]
				if e == nil {
					e = &Elem[int]{Value: s.elem}
					elems[s.elem] = e
				}
				if s.op == "t" {
					l.Touch(e)
				} else {
					l.Remove(e)
				}
			}
			if got := order(&l); !slices.Equal(got, tt.want) {
				t.Fatalf("order %v, want %v", got, tt.want)
			}
			if l.Len() != len(tt.want) {
				t.Fatalf("Len %d, want %d", l.Len(), len(tt.want))
			}
			if len(tt.want) > 0 && (l.Back().Value != tt.want[len(tt.want)-1] || l.Front().Value != tt.want[0]) {
				t.Fatalf("front %d back %d, want %v", l.Front().Value, l.Back().Value, tt.want)
			}
		})
	}
}
