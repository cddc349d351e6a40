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

func TestMap(t *testing.T) {
	tests := []struct {
		name    string
		max     int
		touch   []string
		held    []string
		gone    []string
		evicted uint64
		oldest  string
	}{
		{"under the bound", 3, []string{"a", "b"}, []string{"a", "b"}, nil, 0, "a"},
		{"the least recent gives way", 2, []string{"a", "b", "c"}, []string{"b", "c"}, []string{"a"}, 1, "b"},
		{"a touch keeps an entry", 2, []string{"a", "b", "a", "c"}, []string{"a", "c"}, []string{"b"}, 1, "a"},
		{"a flood stays bounded", 2, []string{"a", "b", "c", "d", "e"}, []string{"d", "e"}, []string{"a", "b", "c"}, 3, "d"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := Map[string, int]{Max: tt.max}
			for i, k := range tt.touch {
				*m.Touch(k) = i
			}
			for _, k := range tt.held {
				if _, ok := m.Peek(k); !ok {
					t.Errorf("%s gone", k)
				}
			}
			for _, k := range tt.gone {
				if _, ok := m.Peek(k); ok {
					t.Errorf("%s still held", k)
				}
			}
			if m.Len() > tt.max || m.Evicted() != tt.evicted {
				t.Errorf("len %d evicted %d, want at most %d and %d", m.Len(), m.Evicted(), tt.max, tt.evicted)
			}
			if k, _, ok := m.Oldest(); !ok || k != tt.oldest {
				t.Errorf("oldest %q, want %q", k, tt.oldest)
			}
			m.Delete(tt.oldest)
			if _, ok := m.Peek(tt.oldest); ok {
				t.Error("deleted entry still held")
			}
		})
	}
}
