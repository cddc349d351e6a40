//go:build unix

// Package cputime reads the CPU time the process has used, for benchmarks
// that report CPU per operation: on a shared machine a fairer figure than
// wall time, which the other processes' load stretches.
package cputime

import (
	"syscall"
	"time"
)

// Used is the CPU time (user and system, all threads) the process has
// used so far, or 0 if the system cannot say.
func Used() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
