//go:build !race

package sim

const raceEnabled = false

// permanentRaceNodes matters only under the race detector
// (race_on_test.go).
const permanentRaceNodes = 120
