//go:build race

package sim

// raceEnabled: the race detector slows the simulator about tenfold.
const raceEnabled = true

// permanentRaceNodes is the ring TestPermanentThroughChurn's Chord run
// uses under the race detector.
const permanentRaceNodes = 60
