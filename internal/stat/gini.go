// Package stat holds the small statistics that the node's fairness report
// (package dhtkit, dhtkit load) and the simulator's both compute, so that
// the two cannot disagree on a definition.
package stat

// Gini is the Gini coefficient of sorted non-negative values: 0 when all
// are equal, (n-1)/n when one of n holds everything, 0 for no values or a
// zero sum.
func Gini[T ~int | ~int64 | ~uint32 | ~uint64](sorted []T) float64 {
	n := float64(len(sorted))
	var sum, weighted float64
	for i, v := range sorted {
		sum += float64(v)
		weighted += float64(i+1) * float64(v)
	}
	if sum == 0 {
		return 0
	}
	return 2*weighted/(n*sum) - (n+1)/n
}
