package stat

import (
	"math"
	"testing"
)

func TestGini(t *testing.T) {
	for _, tt := range []struct {
		name   string
		sorted []int64
		want   float64
	}{
		{"no values", nil, 0},
		{"all zero", []int64{0, 0, 0}, 0},
		{"all equal", []int64{5, 5, 5, 5}, 0},
		{"one of four holds everything", []int64{0, 0, 0, 8}, 0.75},
		{"one of two holds everything", []int64{0, 1}, 0.5},
		{"1 2 3 4", []int64{1, 2, 3, 4}, 0.25},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := Gini(tt.sorted); math.Abs(got-tt.want) > 1e-9 {
				t.Errorf("Gini(%v) = %v, want %v", tt.sorted, got, tt.want)
			}
		})
	}
}
