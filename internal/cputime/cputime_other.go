//go:build !unix

package cputime

import "time"

// Used is 0 where getrusage is missing: benchmarks report no CPU figure.
func Used() time.Duration { return 0 }
