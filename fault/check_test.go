package fault

import (
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

// Builders of hand-made operations on key "k", times in milliseconds.
func w(start, end int, value, version string) Op {
	return Op{Kind: Write, Key: "k", Value: value, Version: version, Start: at(start), End: at(end), OK: true, Node: "n1"}
}
func wFail(start, end int, value string) Op {
	return Op{Kind: Write, Key: "k", Value: value, Start: at(start), End: at(end), Err: "timeout", Node: "n1"}
}
func del(start, end int) Op {
	return Op{Kind: Delete, Key: "k", Start: at(start), End: at(end), OK: true, Node: "n1"}
}
func delFail(start, end int) Op {
	return Op{Kind: Delete, Key: "k", Start: at(start), End: at(end), Err: "quorum", Node: "n1"}
}
func rd(start, end int, value, version string) Op {
	return Op{Kind: Read, Key: "k", Value: value, Version: version, Found: true, Start: at(start), End: at(end), OK: true, Node: "n2"}
}
func rdNone(start, end int) Op {
	return Op{Kind: Read, Key: "k", Start: at(start), End: at(end), OK: true, Node: "n2"}
}
func final(op Op) Op { op.Final = true; return op }
func onKey(key string, op Op) Op {
	op.Key = key
	return op
}

func TestCheck(t *testing.T) {
	tests := []struct {
		name                              string
		ops                               []Op
		lost, stale, resurrected, unknown int
		stalePartial                      int
		acknowledged, reads               int
	}{
		{
			name: "a linear history is clean",
			ops: []Op{
				w(0, 10, "a", "01"), rd(20, 30, "a", "01"),
				w(40, 50, "b", "02"), rd(60, 70, "b", "02"),
				del(80, 90), rdNone(100, 110), final(rdNone(200, 210)),
			},
			acknowledged: 3, reads: 4,
		},
		{
			name:  "a read older than a write acknowledged before it began is stale",
			ops:   []Op{w(0, 10, "a", "01"), w(20, 30, "b", "02"), rd(40, 50, "a", "01")},
			stale: 1, acknowledged: 2, reads: 1,
		},
		{
			name: "a stale read the node marked partial is stale all the same",
			ops: []Op{w(0, 10, "a", "01"), w(20, 30, "b", "02"),
				func() Op { o := rd(40, 50, "a", "01"); o.Partial = true; return o }()},
			stale: 1, stalePartial: 1, acknowledged: 2, reads: 1,
		},
		{
			name:         "a read concurrent with a write may return the older version",
			ops:          []Op{w(0, 10, "a", "01"), w(20, 60, "b", "02"), rd(40, 50, "a", "01"), rd(45, 70, "b", "02")},
			acknowledged: 2, reads: 2,
		},
		{
			name:         "a read that began before the write was acknowledged may miss it",
			ops:          []Op{w(0, 30, "a", "01"), rdNone(20, 40)},
			acknowledged: 1, reads: 1,
		},
		{
			name:  "nothing read after an acknowledged write that no delete followed is stale",
			ops:   []Op{w(0, 10, "a", "01"), rdNone(20, 30)},
			stale: 1, acknowledged: 1, reads: 1,
		},
		{
			name:         "a delete that failed may still explain a read of nothing",
			ops:          []Op{w(0, 10, "a", "01"), delFail(20, 40), rdNone(30, 50)},
			acknowledged: 1, reads: 1,
		},
		{
			name:  "a delete that ended before the write began explains nothing",
			ops:   []Op{del(0, 10), w(20, 30, "a", "01"), rdNone(40, 50)},
			stale: 1, acknowledged: 2, reads: 1,
		},
		{
			name:        "a value written before an acknowledged delete that comes back is resurrected",
			ops:         []Op{w(0, 10, "a", "01"), del(20, 30), rd(40, 50, "a", "01")},
			resurrected: 1, acknowledged: 2, reads: 1,
		},
		{
			name:        "a resurrected value in a final read is counted too",
			ops:         []Op{w(0, 10, "a", "01"), del(20, 30), final(rd(40, 50, "a", "01"))},
			resurrected: 1, acknowledged: 2, reads: 1,
		},
		{
			name:         "a write concurrent with a delete may win over it",
			ops:          []Op{w(0, 25, "a", "01"), del(20, 30), rd(40, 50, "a", "01"), final(rd(60, 70, "a", "01"))},
			acknowledged: 2, reads: 2,
		},
		{
			name:         "a delete begun within the clock's grain of the write's end is concurrent",
			ops:          []Op{w(0, 10, "a", "01"), del(11, 20), rd(40, 50, "a", "01")},
			acknowledged: 2, reads: 1,
		},
		{
			name:         "a delete not yet acknowledged when the read began resurrects nothing",
			ops:          []Op{w(0, 10, "a", "01"), del(20, 60), rd(40, 50, "a", "01")},
			acknowledged: 2, reads: 1,
		},
		{
			name: "an acknowledged write that a final read returns older than is lost",
			ops:  []Op{w(0, 10, "a", "01"), w(20, 30, "b", "02"), final(rd(100, 110, "a", "01"))},
			lost: 1, stale: 1, acknowledged: 2, reads: 1,
		},
		{
			name: "an acknowledged write that a final read finds absent, with no delete, is lost",
			ops:  []Op{w(0, 10, "a", "01"), final(rdNone(100, 110))},
			lost: 1, stale: 1, acknowledged: 1, reads: 1,
		},
		{
			name:  "a write one final read misses and another sees is not lost, the miss is stale",
			ops:   []Op{w(0, 10, "a", "01"), final(rdNone(100, 110)), final(rd(100, 120, "a", "01"))},
			stale: 1, acknowledged: 1, reads: 2,
		},
		{
			name:         "a final read begun before the write ended proves nothing about it",
			ops:          []Op{w(0, 100, "a", "01"), final(rdNone(50, 60))},
			acknowledged: 1, reads: 1,
		},
		{
			name:         "a failed write that nobody sees is not lost",
			ops:          []Op{w(0, 10, "a", "01"), wFail(20, 30, "b"), final(rd(100, 110, "a", "01"))},
			acknowledged: 1, reads: 1,
		},
		{
			name:         "a failed write that a read sees is fine, and newer than what came before",
			ops:          []Op{w(0, 10, "a", "01"), wFail(20, 30, "b"), rd(40, 50, "b", "02"), final(rd(100, 110, "b", "02"))},
			acknowledged: 1, reads: 2,
		},
		{
			name:    "a value no write wrote is unknown",
			ops:     []Op{w(0, 10, "a", "01"), rd(20, 30, "zz", "09")},
			unknown: 1, acknowledged: 1, reads: 1,
		},
		{
			name:    "a version newer than the acknowledged one is unknown",
			ops:     []Op{w(0, 10, "a", "01"), rd(20, 30, "a", "07")},
			unknown: 1, acknowledged: 1, reads: 1,
		},
		{
			name:         "an earlier attempt of a reissued write, read while it ran, is that write",
			ops:          []Op{w(0, 10, "a", "05"), rd(2, 8, "a", "03"), final(rd(100, 110, "a", "05"))},
			acknowledged: 1, reads: 2,
		},
		{
			name:  "an earlier attempt read after the write was acknowledged is stale",
			ops:   []Op{w(0, 10, "a", "05"), rd(20, 30, "a", "03"), final(rd(100, 110, "a", "05"))},
			stale: 1, acknowledged: 1, reads: 2,
		},
		{
			name:         "reads that did not answer prove nothing",
			ops:          []Op{w(0, 10, "a", "01"), {Kind: Read, Key: "k", Start: at(20), End: at(30), Err: "timeout"}},
			acknowledged: 1,
		},
		{
			name: "a set: every key written once and read back at the end",
			ops: []Op{
				onKey("s1", w(0, 10, "1", "01")), onKey("s2", w(5, 15, "2", "02")), onKey("s3", w(8, 18, "3", "03")),
				onKey("s1", final(rd(100, 110, "1", "01"))), onKey("s2", final(rd(100, 110, "2", "02"))),
				onKey("s3", final(rd(100, 110, "3", "03"))),
			},
			acknowledged: 3, reads: 3,
		},
		{
			name: "a set with one acknowledged element missing at the end",
			ops: []Op{
				onKey("s1", w(0, 10, "1", "01")), onKey("s2", w(5, 15, "2", "02")),
				onKey("s1", final(rd(100, 110, "1", "01"))), onKey("s2", final(rdNone(100, 110))),
			},
			lost: 1, stale: 1, acknowledged: 2, reads: 2,
		},
		{
			name: "one anomaly of each kind, on different keys",
			ops: []Op{
				onKey("lost", w(0, 10, "l", "01")), onKey("lost", final(rdNone(100, 110))),
				onKey("stale", w(0, 10, "s1", "01")), onKey("stale", w(20, 30, "s2", "02")), onKey("stale", rd(40, 50, "s1", "01")),
				onKey("res", w(0, 10, "r", "01")), onKey("res", del(20, 30)), onKey("res", rd(40, 50, "r", "01")),
			},
			lost: 1, stale: 2, resurrected: 1, acknowledged: 5, reads: 3,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Check(tt.ops)
			if r.Lost != tt.lost || r.Stale != tt.stale || r.Resurrected != tt.resurrected || r.Unknown != tt.unknown {
				t.Errorf("lost %d stale %d resurrected %d unknown %d, want %d %d %d %d:%s",
					r.Lost, r.Stale, r.Resurrected, r.Unknown, tt.lost, tt.stale, tt.resurrected, tt.unknown, r.Examples(10))
			}
			if r.StalePartial != tt.stalePartial {
				t.Errorf("%d stale reads marked partial, want %d", r.StalePartial, tt.stalePartial)
			}
			if r.Acknowledged != tt.acknowledged || r.Reads != tt.reads || r.Ops != len(tt.ops) {
				t.Errorf("ops %d acknowledged %d reads %d, want %d %d %d", r.Ops, r.Acknowledged, r.Reads, len(tt.ops), tt.acknowledged, tt.reads)
			}
			if got := len(r.Anomalies); got != tt.lost+tt.stale+tt.resurrected+tt.unknown {
				t.Errorf("%d anomalies listed, want one per count", got)
			}
			if r.Clean() != (len(r.Anomalies) == 0) {
				t.Errorf("Clean() = %v with %d anomalies", r.Clean(), len(r.Anomalies))
			}
		})
	}
}
