package fault

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// clockGrain is how far apart in real time two operations must be for
// the checker to take their versions as ordered like them. Versions are
// hybrid-logical-clock readings in milliseconds; every node of a test
// runs on one machine and so reads one clock, hence a version issued
// after another operation ended, in a later millisecond, is newer than
// any version issued within that operation.
const clockGrain = time.Millisecond

// Anomaly names one operation that broke a guarantee.
type Anomaly struct {
	Kind   string // "lost", "stale", "resurrected" or "unknown"
	Key    string
	Op     Op
	Detail string
}

func (a Anomaly) String() string {
	return fmt.Sprintf("%s %q: %s (%s through %s, %s → %s)", a.Kind, a.Key, a.Detail, a.Op.Kind,
		a.Op.Node, a.Op.Start.Format("15:04:05.000"), a.Op.End.Format("15:04:05.000"))
}

// Report is what Check found in a history.
type Report struct {
	Ops          int // operations of every kind
	Reads        int // reads that answered
	Writes       int // writes and deletes attempted
	Acknowledged int // writes and deletes acknowledged
	// Lost counts acknowledged writes that no final read saw: each
	// returned an older version, or nothing while no delete could have
	// removed the write.
	Lost int
	// Stale counts reads (the final ones too) that returned a version
	// older than a write acknowledged before the read began, or nothing
	// although such a write was not deleted.
	Stale int
	// StalePartial counts the stale reads the node marked partial (fewer
	// replicas than a read quorum answered): counted in Stale too, since
	// a read is stale whatever it says, but the node was honest about it.
	StalePartial int
	// Resurrected counts reads that returned a value written before a
	// delete of its key that was acknowledged before the read began.
	Resurrected int
	// Unknown counts reads of a value no write of that key wrote (or
	// whose version is newer than the one its write was acknowledged
	// with; an older one is an earlier attempt of the same write, which
	// went again past a newer version a replica held: replica/reissue.go).
	Unknown   int
	Anomalies []Anomaly // every one, in history order
}

// Clean reports whether the history shows no anomaly.
func (r Report) Clean() bool { return r.Lost+r.Stale+r.Resurrected+r.Unknown == 0 }

// Summary is one line of figures.
func (r Report) Summary() string {
	return fmt.Sprintf("ops %d, reads %d, writes %d, acknowledged %d, lost %d, stale %d (%d marked partial), resurrected %d, unknown %d",
		r.Ops, r.Reads, r.Writes, r.Acknowledged, r.Lost, r.Stale, r.StalePartial, r.Resurrected, r.Unknown)
}

// Examples returns up to n anomalies, one line each.
func (r Report) Examples(n int) string {
	var b strings.Builder
	for i, a := range r.Anomalies {
		if i == n {
			fmt.Fprintf(&b, "\n  … and %d more", len(r.Anomalies)-n)
			break
		}
		b.WriteString("\n  ")
		b.WriteString(a.String())
	}
	return b.String()
}

// Check finds the anomalies in a history of register operations (reads,
// writes and deletes of keys; a set workload is the special case of one
// write per key). Its rules assume what dhtkit promises: the newest
// version wins on every replica, and a read sees every write
// acknowledged before it began.
func Check(ops []Op) Report {
	var r Report
	byKey := map[string][]Op{}
	var keys []string
	for _, op := range ops {
		r.Ops++
		switch {
		case op.Kind == Read && op.OK:
			r.Reads++
		case op.Kind != Read:
			r.Writes++
			if op.OK {
				r.Acknowledged++
			}
		}
		if _, ok := byKey[op.Key]; !ok {
			keys = append(keys, op.Key)
		}
		byKey[op.Key] = append(byKey[op.Key], op)
	}
	slices.Sort(keys)
	for _, k := range keys {
		checkKey(&r, k, byKey[k])
	}
	slices.SortStableFunc(r.Anomalies, func(a, b Anomaly) int { return a.Op.Start.Compare(b.Op.Start) })
	return r
}

// before reports whether a ended, in a clock grain of its own, before b
// began: whatever version b issued is newer than any a issued.
func before(a, b Op) bool { return a.End.Add(clockGrain).Before(b.Start) }

func checkKey(r *Report, key string, ops []Op) {
	var writes, deletes, reads []Op
	byValue := map[string]Op{}
	for _, op := range ops {
		switch op.Kind {
		case Write:
			writes = append(writes, op)
			byValue[op.Value] = op
		case Delete:
			deletes = append(deletes, op)
		case Read:
			if op.OK {
				reads = append(reads, op)
			}
		}
	}
	add := func(kind string, op Op, format string, args ...any) {
		r.Anomalies = append(r.Anomalies, Anomaly{Kind: kind, Key: key, Op: op, Detail: fmt.Sprintf(format, args...)})
		switch kind {
		case "lost":
			r.Lost++
		case "stale":
			r.Stale++
			if op.Partial {
				r.StalePartial++
			}
		case "resurrected":
			r.Resurrected++
		case "unknown":
			r.Unknown++
		}
	}
	// deletedAfter reports whether some delete, acknowledged or not,
	// may have removed w's value by the time read rd ended: it began
	// before rd ended and did not end before w began.
	deletedAfter := func(w, rd Op) bool {
		for _, d := range deletes {
			if d.Start.Before(rd.End) && !before(d, w) {
				return true
			}
		}
		return false
	}
	for _, rd := range reads {
		if rd.Found {
			w, ok := byValue[rd.Value]
			switch {
			case !ok:
				add("unknown", rd, "read %.40q, which no write of the key wrote", rd.Value)
				continue
			case w.OK && rd.Version > w.Version:
				// Newer than acknowledged: no attempt wrote it. An older
				// version of the value is an earlier attempt of a write
				// that went again past a newer version a replica held
				// (replica/reissue.go): the same write, judged below as
				// any read of it (stale, if the write was acknowledged
				// before the read began).
				add("unknown", rd, "read version %s of a write acknowledged as %s", rd.Version, w.Version)
				continue
			case !w.Start.Before(rd.End):
				add("unknown", rd, "read a value written only after the read ended")
				continue
			}
			resurrected := false
			for _, d := range deletes {
				if d.OK && before(d, rd) && before(w, d) {
					add("resurrected", rd, "read version %s, written before a delete acknowledged at %s",
						rd.Version, d.End.Format("15:04:05.000"))
					resurrected = true
					break
				}
			}
			if resurrected {
				continue
			}
			for _, w2 := range writes {
				if w2.OK && w2.End.Before(rd.Start) && w2.Version > rd.Version {
					add("stale", rd, "read version %s, older than version %s acknowledged at %s",
						rd.Version, w2.Version, w2.End.Format("15:04:05.000"))
					break
				}
			}
			continue
		}
		for _, w := range writes {
			if w.OK && w.End.Before(rd.Start) && !deletedAfter(w, rd) {
				add("stale", rd, "read nothing, though version %s was acknowledged at %s and not deleted",
					w.Version, w.End.Format("15:04:05.000"))
				break
			}
		}
	}
	// Lost: an acknowledged write that no final read begun after it saw
	// (each returned an older version, or nothing with no delete to
	// explain it). A final read that misses a write another final read
	// sees is only stale: the write survives, one node does not show it.
	for _, w := range writes {
		if !w.OK {
			continue
		}
		var missed []Op
		seen := false
		for _, rd := range reads {
			if !rd.Final || !w.End.Before(rd.Start) {
				continue
			}
			if (rd.Found && rd.Version >= w.Version) || (!rd.Found && deletedAfter(w, rd)) {
				seen = true
				break
			}
			missed = append(missed, rd)
		}
		if seen || len(missed) == 0 {
			continue
		}
		rd := missed[0]
		got := "nothing, and no delete followed"
		if rd.Found {
			got = "version " + rd.Version
		}
		add("lost", w, "acknowledged as version %s; none of the %d final reads saw it (through %s: %s)",
			w.Version, len(missed), rd.Node, got)
	}
}
