package sim

import (
	"fmt"
	"io"
	"slices"
	"text/tabwriter"
)

// Name labels a run in a comparison: the protocol, and Chord's routing.
func (r *Report) Name() string {
	if r.Protocol == "chord" {
		if r.VNodes > 1 {
			return fmt.Sprintf("chord/%s/v%d", r.Routing, r.VNodes)
		}
		return "chord/" + r.Routing
	}
	return r.Protocol
}

// HopsRange is the fewest and most hops of the lookups that ended with a
// result.
func (r *Report) HopsRange() (lo, hi int32) {
	if len(r.HopsSamples) == 0 {
		return 0, 0
	}
	return slices.Min(r.HopsSamples), slices.Max(r.HopsSamples)
}

// tableHeader and tableRow are the comparison's columns.
var tableHeader = []string{"run", "success", "hops_min", "hops_median", "hops_mean", "hops_max",
	"latency_ms_median", "messages_per_lookup", "get_success", "keys_lost", "message_gini",
	"key_gini", "keys_min", "keys_mean", "keys_max"}

func (r *Report) tableRow() []string {
	lo, hi := r.HopsRange()
	row := []string{r.Name(), fmt.Sprintf("%.3f", r.SuccessRate), fmt.Sprint(lo), fmt.Sprint(r.HopsMedian),
		fmt.Sprintf("%.2f", r.HopsMean), fmt.Sprint(hi), fmt.Sprintf("%.0f", r.LatencyMsMedian),
		fmt.Sprintf("%.1f", r.MessagesPerLookup), fmt.Sprintf("%.3f", r.GetSuccessRate), fmt.Sprint(r.KeysLost),
		fmt.Sprintf("%.3f", r.LoadGini)}
	if k := r.KeyLoad; k != nil {
		return append(row, fmt.Sprintf("%.3f", k.Gini), fmt.Sprint(k.Min), fmt.Sprintf("%.1f", k.Mean), fmt.Sprint(k.Max))
	}
	return append(row, "-", "-", "-", "-")
}

// WriteTable prints runs side by side, one row each, aligned for a
// terminal.
func WriteTable(w io.Writer, runs []*Report) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	line := func(cells []string) {
		for _, c := range cells {
			fmt.Fprint(tw, c, "\t")
		}
		fmt.Fprintln(tw)
	}
	line(tableHeader)
	for _, r := range runs {
		line(r.tableRow())
	}
	return tw.Flush()
}

// WriteTableCSV writes the same table as CSV.
func WriteTableCSV(w io.Writer, runs []*Report) error {
	rows := [][]string{tableHeader}
	for _, r := range runs {
		rows = append(rows, r.tableRow())
	}
	for _, row := range rows {
		for i, c := range row {
			sep := ","
			if i == len(row)-1 {
				sep = "\n"
			}
			if _, err := fmt.Fprint(w, c, sep); err != nil {
				return err
			}
		}
	}
	return nil
}
