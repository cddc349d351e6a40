package main

import (
	"math"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// numberRule is the range of a numeric flag.
type numberRule struct {
	min, max float64 // inclusive
	want     string  // what to give instead, for the error
}

// numberRules are the ranges of the numeric flags, by name, for every
// command that has a flag of that name: one rule per name, checked in one
// place (checkNumbers) for every flag given on the command line. A flag
// left at its default is not checked: some defaults are 0 for "the
// node's default".
var numberRules = map[string]numberRule{
	"ttl":               {1, math.Inf(1), "a positive duration such as 90s, 30m or 24h"},
	"timeout":           {1, math.Inf(1), "a positive duration such as 5s or 1m"},
	"duration":          {1, math.Inf(1), "a positive duration such as 30s or 2h"},
	"join-interval":     {0, math.Inf(1), "a duration of 0 or more"},
	"query-timeout":     {0, math.Inf(1), "a duration of 0 or more (0: the engine's default)"},
	"min-query-timeout": {0, math.Inf(1), "a duration of 0 or more (0: the engine's default)"},
	"replicas":          {1, 20, "a number of copies from 1 to 20"},
	"max-bytes":         {1, math.Inf(1), "a positive number of bytes"},
	"max-per-source":    {1, math.Inf(1), "a positive number of records"},
	"parallel":          {1, 1024, "a number from 1 to 1024"},
	"port":              {1, 65535, "a port from 1 to 65535"},
	"http-port":         {-1, 65535, "a port from 1 to 65535, 0 for any free port, or -1 for no web UI"},
	"nodes":             {1, math.Inf(1), "a positive number of nodes"},
	"lookups":           {0, math.Inf(1), "a number of 0 or more"},
	"keys":              {0, math.Inf(1), "a number of 0 or more"},
	"churn":             {0, math.Inf(1), "a fraction of 0 or more per hour"},
	"loss":              {0, 1, "a probability from 0 to 1"},
	"nat":               {0, 1, "a fraction from 0 to 1"},
	"silent":            {0, 1, "a fraction from 0 to 1"},
	"liars":             {0, 1, "a fraction from 0 to 1"},
	"k":                 {1, 1024, "a bucket size from 1 to 1024"},
	"alpha":             {1, 1024, "a parallelism from 1 to 1024"},
	"beta":              {0, 1024, "a number from 0 to 1024"},
	"seen":              {0, math.Inf(1), "a number of 0 or more"},
	"mem-limit":         {0, math.Inf(1), "a number of GiB, 0 for none"},
	"seq":               {0, math.MaxInt64, "a sequence number of 0 or more"},
	"cas":               {0, math.MaxInt64, "a sequence number of 0 or more"},
	"permanent":         {0, 1000, "a number of permanent puts from 0 to 1000"},
	"permanent-ttl":     {0, math.Inf(1), "a duration of 0 or more (0: 10m)"},
	"permanent-cancel":  {0, math.Inf(1), "a duration of 0 or more (0: the TTL plus 10m before the end)"},
}

// checkNumbers returns a usage error for the first numeric flag given on
// cmd's command line that is out of its rule's range.
func checkNumbers(cmd *cobra.Command) error {
	var bad error
	cmd.Flags().Visit(func(f *pflag.Flag) {
		r, ok := numberRules[f.Name]
		if !ok || bad != nil {
			return
		}
		var x float64
		switch f.Value.Type() {
		case "duration":
			d, err := time.ParseDuration(f.Value.String())
			if err != nil {
				return // pflag parsed it: cannot happen
			}
			x = float64(d) // nanoseconds: a min of 1 means positive
		case "int", "int64", "uint64", "float64":
			v, err := strconv.ParseFloat(f.Value.String(), 64)
			if err != nil {
				return
			}
			x = v
		default:
			return
		}
		if x < r.min || x > r.max || math.IsNaN(x) {
			bad = usageError("--%s %s: want %s (%s)", f.Name, f.Value.String(), r.want, helpHint(cmd))
		}
	})
	return bad
}
