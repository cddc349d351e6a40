package cputime

import (
	"runtime"
	"testing"
	"time"
)

// TestUsedGrows: spinning for a while shows as CPU time used.
func TestUsedGrows(t *testing.T) {
	if runtime.GOOS == "windows" || runtime.GOOS == "plan9" {
		t.Skip("no getrusage here")
	}
	before := Used()
	x := 0
	for start := time.Now(); time.Since(start) < 50*time.Millisecond; {
		x++
	}
	if after := Used(); after <= before {
		t.Errorf("CPU time used went from %v to %v after 50 ms of spinning (%d loops)", before, after, x)
	}
}
