package routing

import (
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/id"
)

func TestProbeDelay(t *testing.T) {
	tests := []struct {
		fails    int
		min, max time.Duration
	}{
		{BadFails, ProbeMin, ProbeMin * 5 / 4},
		{BadFails + 1, 2 * ProbeMin, 2 * ProbeMin * 5 / 4},
		{BadFails + 2, 4 * ProbeMin, 4 * ProbeMin * 5 / 4},
		{BadFails + 3, ProbeMax, ProbeMax * 5 / 4},
		{BadFails + 40, ProbeMax, ProbeMax * 5 / 4},
		{255, ProbeMax, ProbeMax * 5 / 4},
	}
	for _, tt := range tests {
		for _, rnd := range []uint32{0, 1, 1 << 15, 1<<16 - 1} {
			d := time.Duration(probeDelay(tt.fails, rnd))
			if d < tt.min || d >= tt.max {
				t.Errorf("probeDelay(%d, %d) = %v, want in [%v, %v)", tt.fails, rnd, d, tt.min, tt.max)
			}
		}
		if lo, hi := probeDelay(tt.fails, 0), probeDelay(tt.fails, 1<<16-1); lo == hi {
			t.Errorf("probeDelay(%d, ·): no jitter", tt.fails)
		}
	}
}

// TestProbe walks one contact through failure, probes and recovery, in
// each kind of table.
func TestProbe(t *testing.T) {
	type step struct {
		at     time.Duration
		do     string // "respond", "fail", "probe" (Probe at, expect want handed out)
		want   int
		state  State
		nextLo time.Duration // when > 0: NextProbe within [nextLo, nextHi]
		nextHi time.Duration
		none   bool // NextProbe reports no bad contact
	}
	s := ProbeMin
	tests := []struct {
		name  string
		steps []step
	}{
		{"a good contact is never probed", []step{
			{at: 0, do: "respond", state: Good, none: true},
			{at: time.Hour, do: "probe", want: 0, state: Questionable, none: true},
		}},
		{"one failure is no reason to probe", []step{
			{at: 0, do: "respond"},
			{at: time.Second, do: "fail", state: Questionable, none: true},
			{at: time.Minute, do: "probe", want: 0},
		}},
		{"a bad contact is probed after ProbeMin", []step{
			{at: 0, do: "respond"},
			{at: 0, do: "fail"},
			{at: 0, do: "fail", state: Bad, nextLo: s, nextHi: s*5/4 + 250*time.Millisecond},
			{at: s - time.Millisecond, do: "probe", want: 0},
			{at: s * 3 / 2, do: "probe", want: 1, state: Bad},
		}},
		{"a handed-out probe is not repeated before its back-off", []step{
			{at: 0, do: "respond"},
			{at: 0, do: "fail"},
			{at: 0, do: "fail"},
			{at: 2 * s, do: "probe", want: 1},
			{at: 2*s + time.Second, do: "probe", want: 0},
			{at: 2*s + 2*s*5/4 + time.Second, do: "probe", want: 1},
		}},
		{"failed probes back off up to ProbeMax", []step{
			{at: 0, do: "respond"},
			{at: 0, do: "fail"},
			{at: 0, do: "fail"},
			{at: time.Minute, do: "probe", want: 1},
			{at: time.Minute, do: "fail", nextLo: time.Minute + 2*s, nextHi: time.Minute + 2*s*5/4 + time.Second},
			{at: 2 * time.Minute, do: "probe", want: 1},
			{at: 2 * time.Minute, do: "fail", nextLo: 2*time.Minute + 4*s, nextHi: 2*time.Minute + 4*s*5/4 + time.Second},
			{at: 3 * time.Minute, do: "probe", want: 1},
			{at: 3 * time.Minute, do: "fail"},
			{at: 4 * time.Minute, do: "probe", want: 1},
			{at: 4 * time.Minute, do: "fail", nextLo: 4*time.Minute + ProbeMax, nextHi: 4*time.Minute + ProbeMax*5/4 + time.Second},
			{at: 20 * time.Minute, do: "probe", want: 1},
		}},
		{"other queries a bad contact misses do not push its probe out", []step{
			{at: 0, do: "respond"},
			{at: 0, do: "fail"},
			{at: 0, do: "fail", state: Bad, nextLo: s, nextHi: s*5/4 + 250*time.Millisecond},
			{at: time.Second, do: "fail", state: Bad, nextLo: s, nextHi: s*5/4 + 250*time.Millisecond},
			{at: 2 * time.Second, do: "fail", nextLo: s, nextHi: s*5/4 + 250*time.Millisecond},
			{at: 3 * time.Second, do: "fail", nextLo: s, nextHi: s*5/4 + 250*time.Millisecond},
			{at: s * 3 / 2, do: "probe", want: 1, state: Bad},
		}},
		{"an answer makes it good and ends the probes", []step{
			{at: 0, do: "respond"},
			{at: 0, do: "fail"},
			{at: 0, do: "fail", state: Bad},
			{at: 10 * time.Second, do: "probe", want: 1},
			{at: 10*time.Second + time.Millisecond, do: "respond", state: Good},
			{at: time.Hour, do: "probe", want: 0, none: true},
		}},
		{"a query from it refutes at once, however long its back-off", []step{
			{at: 0, do: "respond"},
			{at: 0, do: "fail"},
			{at: 0, do: "fail"},
			{at: time.Minute, do: "fail"},
			{at: 2 * time.Minute, do: "fail"},
			{at: 3 * time.Minute, do: "fail"},
			{at: 3*time.Minute + time.Second, do: "query", state: Good},
			{at: time.Hour, do: "probe", want: 0, none: true},
		}},
	}
	for _, kind := range tables {
		for _, tt := range tests {
			t.Run(kind.name+"/"+tt.name, func(t *testing.T) {
				r := seeded(3)
				tb := kind.new(id.Random(r), 8, r)
				x := id.Random(r)
				for i, st := range tt.steps {
					switch st.do {
					case "respond":
						tb.Observe(at(st.at), x, addrN(1), Responded, time.Millisecond)
					case "query":
						tb.Observe(at(st.at), x, addrN(1), Queried, 0)
					case "fail":
						tb.Failed(at(st.at), x)
					case "probe":
						got := tb.Probe(at(st.at), 4, nil)
						if len(got) != st.want {
							t.Fatalf("step %d: Probe handed out %d contacts, want %d", i, len(got), st.want)
						}
						if len(got) == 1 && (got[0].ID != x || got[0].Addr != addrN(1)) {
							t.Fatalf("step %d: Probe handed out %+v", i, got[0])
						}
					}
					if st.state != Good || st.do == "respond" {
						c, ok := tb.Get(x)
						if !ok {
							t.Fatalf("step %d: the contact is gone", i)
						}
						if st.state != 0 || st.do == "respond" {
							if want := st.state; c.State != want {
								t.Errorf("step %d: state %v, want %v", i, c.State, want)
							}
						}
					}
					next, ok := tb.NextProbe()
					if st.none && ok {
						// A stale lower bound is allowed until the next
						// scan; the scan must then find nothing.
						if got := tb.Probe(next, 4, nil); len(got) != 0 {
							t.Errorf("step %d: a probe is due at %v: %+v", i, next.Sub(t0), got)
						}
						if _, ok := tb.NextProbe(); ok {
							t.Errorf("step %d: NextProbe still set after a scan found nothing", i)
						}
					}
					if st.nextLo > 0 {
						// NextProbe is a lower bound; a scan that hands
						// out nothing makes it exact.
						tb.Probe(at(st.at), 0, nil)
						next, ok = tb.NextProbe()
						if !ok || next.Before(at(st.nextLo)) || next.After(at(st.nextHi)) {
							t.Errorf("step %d: NextProbe %v (%v), want in [%v, %v]", i, next.Sub(t0), ok, st.nextLo, st.nextHi)
						}
					}
				}
			})
		}
	}
}

// TestProbeBound: Probe hands out at most n contacts per call; the rest
// stay due for the next call, and every bad contact is handed out once.
func TestProbeBound(t *testing.T) {
	for _, kind := range tables {
		t.Run(kind.name, func(t *testing.T) {
			r := seeded(4)
			self := id.Random(r)
			tb := kind.new(self, 8, r)
			var xs []id.ID
			for i := range 20 {
				x := id.RandomWithPrefix(r, self, i%4)
				xs = append(xs, x)
				tb.Observe(t0, x, addrN(i), Responded, 0)
			}
			for _, x := range xs {
				tb.Failed(t0, x)
				tb.Failed(t0, x)
			}
			seen := map[id.ID]int{}
			now := at(time.Minute)
			for range 10 {
				got := tb.Probe(now, 3, nil)
				if len(got) > 3 {
					t.Fatalf("Probe handed out %d, want at most 3", len(got))
				}
				for _, c := range got {
					seen[c.ID]++
				}
			}
			bad := 0
			for _, b := range tb.Buckets() {
				for _, c := range b.Contacts {
					if c.State == Bad {
						bad++
						if seen[c.ID] != 1 {
							t.Errorf("bad contact %v handed out %d times", c.ID, seen[c.ID])
						}
					}
				}
			}
			if bad == 0 {
				t.Fatal("no bad contact in the table")
			}
		})
	}
}

// TestProbeDeterministic: the same seed gives the same probe times.
func TestProbeDeterministic(t *testing.T) {
	run := func(seed uint64) []time.Time {
		r := seeded(seed)
		tb := NewBEP5(id.Random(r), 8, r)
		var out []time.Time
		for i := range 8 {
			x := id.Random(r)
			tb.Observe(t0, x, addrN(i), Responded, 0)
			tb.Failed(t0, x)
			tb.Failed(t0, x)
			next, _ := tb.NextProbe()
			out = append(out, next)
			tb.Probe(next, 8, nil)
		}
		return out
	}
	a, b := run(7), run(7)
	for i := range a {
		if !a[i].Equal(b[i]) {
			t.Fatalf("probe %d: %v then %v with one seed", i, a[i], b[i])
		}
	}
}
