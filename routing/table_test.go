package routing

import (
	"net/netip"
	"slices"
	"testing"
	"time"
	"unsafe"

	"github.com/dhtkit/dhtkit/id"
)

func TestBEP5Split(t *testing.T) {
	// Each case inserts, with k = 2, nodes whose shared prefix with our id
	// has the given lengths, all of them answering our queries at once.
	tests := []struct {
		name         string
		cpls         []int
		wantContacts []int // per bucket
		wantRepl     []int
	}{
		{"one bucket until full", []int{0, 3}, []int{2}, []int{0}},
		{"far bucket splits once, then never", []int{0, 0, 0, 0, 0}, []int{2, 0}, []int{2, 0}},
		{"own bucket splits until the nodes part", []int{5, 7, 9}, []int{0, 0, 0, 0, 0, 1, 2}, []int{0, 0, 0, 0, 0, 0, 0}},
		{"only the last bucket splits", []int{0, 0, 1, 1, 2, 2, 0, 1}, []int{2, 2, 2}, []int{1, 1, 0}},
		{"deepest possible", []int{159, 158, 157, 158}, append(make([]int, 157), 1, 2, 1), make([]int, 160)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := seeded(1)
			self := id.Random(r)
			tb := NewBEP5(self, 2, r)
			used := map[id.ID]bool{}
			for i, cpl := range tt.cpls {
				x := id.RandomWithPrefix(r, self, cpl)
				for used[x] { // deep prefixes leave few ids to choose from
					x = id.RandomWithPrefix(r, self, cpl)
				}
				used[x] = true
				if _, ping := tb.Observe(t0, x, addrN(i), Responded, 0); ping {
					t.Errorf("node %d: asked to ping a bucket of good nodes", i)
				}
				checkBEP5(t, tb)
			}
			bs := tb.Buckets()
			var gotC, gotR []int
			for _, b := range bs {
				gotC = append(gotC, len(b.Contacts))
				gotR = append(gotR, len(b.Replacements))
			}
			if !slices.Equal(gotC, tt.wantContacts) || !slices.Equal(gotR, tt.wantRepl) {
				t.Errorf("contacts per bucket %v, replacements %v; want %v, %v", gotC, gotR, tt.wantContacts, tt.wantRepl)
			}
			// Every bucket's advertised range holds exactly its nodes.
			for i, b := range bs {
				for _, c := range b.Contacts {
					if id.CommonPrefixLen(b.Prefix, c.ID) < b.PrefixLen {
						t.Errorf("bucket %d (%s/%d) holds %s", i, b.Prefix, b.PrefixLen, c.ID)
					}
				}
				if id.CommonPrefixLen(b.Prefix, self) < b.PrefixLen != (i < len(bs)-1) {
					t.Errorf("bucket %d of %d: our id in its range is %v", i, len(bs), i == len(bs)-1)
				}
			}
		})
	}
}

func TestStates(t *testing.T) {
	type event struct {
		at  time.Duration
		how Source
		rtt time.Duration
		bad bool // a failed query instead of an observation
	}
	obs := func(at time.Duration, how Source) event { return event{at: at, how: how} }
	fail := func(at time.Duration) event { return event{at: at, bad: true} }
	tests := []struct {
		name   string
		events []event
		check  time.Duration
		want   State
	}{
		{"learned only", []event{obs(0, Learned)}, time.Second, Questionable},
		{"queried only", []event{obs(0, Queried)}, time.Second, Questionable},
		{"responded now", []event{obs(0, Responded)}, time.Second, Good},
		{"responded 14m59s ago", []event{obs(0, Responded)}, 15*time.Minute - time.Second, Good},
		{"responded 15m ago", []event{obs(0, Responded)}, 15 * time.Minute, Questionable},
		{"responded once, queried us since", []event{obs(0, Responded), obs(20*time.Minute, Queried)}, 30 * time.Minute, Good},
		{"responded once, queried us long ago", []event{obs(0, Responded), obs(10*time.Minute, Queried)}, 25 * time.Minute, Questionable},
		{"queried, then responded", []event{obs(0, Queried), obs(time.Minute, Responded)}, 2 * time.Minute, Good},
		{"one failure makes it suspect", []event{obs(0, Responded), fail(time.Minute)}, 2 * time.Minute, Questionable},
		{"an answer refutes the suspicion", []event{obs(0, Responded), fail(time.Minute), obs(2*time.Minute, Responded)}, 3 * time.Minute, Good},
		{"two failures make it bad", []event{obs(0, Responded), fail(time.Minute), fail(2 * time.Minute)}, 3 * time.Minute, Bad},
		{"a query refutes: it clears failures", []event{obs(0, Responded), fail(time.Minute), fail(2 * time.Minute), obs(3*time.Minute, Queried)}, 4 * time.Minute, Good},
		{"a query refutes a suspect (one lost datagram)", []event{obs(0, Responded), fail(time.Minute), obs(2*time.Minute, Queried)}, 3 * time.Minute, Good},
		{"a query refutes a suspect at once", []event{obs(0, Responded), fail(time.Minute), obs(time.Minute+time.Second, Queried)}, time.Minute + time.Second, Good},
		{"a query makes a stale contact good (BEP 5)", []event{obs(0, Responded), obs(20*time.Minute, Queried)}, 20 * time.Minute, Good},
		{"a refuted suspect needs two new failures to be bad", []event{obs(0, Responded), fail(time.Minute), obs(2*time.Minute, Queried), fail(3 * time.Minute)}, 4 * time.Minute, Questionable},
		{"a query from a suspect that never answered: questionable", []event{obs(0, Queried), fail(time.Minute), obs(2*time.Minute, Queried)}, 3 * time.Minute, Questionable},
		{"a query from a node that never answered: questionable", []event{obs(0, Queried), fail(time.Minute), fail(2 * time.Minute), obs(3*time.Minute, Queried)}, 4 * time.Minute, Questionable},
		{"a learned echo does not refute", []event{obs(0, Responded), fail(time.Minute), fail(2 * time.Minute), obs(3*time.Minute, Learned)}, 4 * time.Minute, Bad},
		{"an answer clears failures", []event{obs(0, Responded), fail(time.Minute), fail(2 * time.Minute), obs(3*time.Minute, Responded)}, 4 * time.Minute, Good},
		{"failures need not be recent", []event{obs(0, Queried), fail(time.Minute), fail(time.Hour)}, 2 * time.Hour, Bad},
		{"a learned echo does not refresh", []event{obs(0, Responded), obs(14*time.Minute, Learned)}, 16 * time.Minute, Questionable},
	}
	for _, kind := range tables {
		for _, tt := range tests {
			t.Run(kind.name+"/"+tt.name, func(t *testing.T) {
				r := seeded(2)
				self := id.Random(r)
				tb := kind.new(self, 8, r)
				x := id.Random(r)
				for _, ev := range tt.events {
					if ev.bad {
						tb.Failed(at(ev.at), x)
					} else {
						tb.Observe(at(ev.at), x, addrN(1), ev.how, ev.rtt)
					}
				}
				advance(tb, at(tt.check))
				c, ok := tb.Get(x)
				if !ok {
					t.Fatal("the node is not in the table")
				}
				if c.State != tt.want {
					t.Errorf("state %v, want %v (%+v)", c.State, tt.want, c)
				}
				inClosest := len(tb.Closest(x, 1, nil)) == 1
				if inClosest != (tt.want != Bad) {
					t.Errorf("in Closest: %v, state %v", inClosest, c.State)
				}
			})
		}
	}
}

// TestPingBeforeEvict walks one bucket through BEP 5's replacement
// procedure, with k = 2.
func TestPingBeforeEvict(t *testing.T) {
	r := seeded(3)
	self := id.Random(r)
	tb := NewBEP5(self, 2, r)
	names := map[id.ID]string{}
	ids := map[string]id.ID{}
	addrs := map[string]int{}
	node := func(name string, cpl int) {
		x := id.RandomWithPrefix(r, self, cpl)
		ids[name], names[x], addrs[name] = x, name, len(addrs)+1
	}
	// N and M are near us; after them the far half of the space (bucket
	// 0) is its own bucket, which never splits.
	node("N", 9)
	node("M", 10)
	for _, n := range []string{"A", "B", "C", "D", "E", "F", "G", "H", "I"} {
		node(n, 0)
	}
	const s = time.Second
	const later = 16 * time.Minute // everything heard before 1m is questionable now
	type op int
	const (
		observe op = iota
		fail
	)
	steps := []struct {
		at       time.Duration
		op       op
		node     string
		how      Source
		ping     string   // whom Observe asks to ping; "" nobody
		contacts []string // bucket 0 afterwards, when not nil
		repl     []string
	}{
		{0, observe, "N", Responded, "", nil, nil},
		{0, observe, "M", Responded, "", nil, nil},
		{0, observe, "A", Responded, "", []string{"A"}, []string{}},
		{1 * s, observe, "B", Responded, "", []string{"A", "B"}, []string{}},
		// Full of good nodes: the newcomer waits, nobody is pinged.
		{2 * s, observe, "C", Queried, "", []string{"A", "B"}, []string{"C"}},
		// A and B are questionable now; A was seen least recently.
		{later + 2*s, observe, "D", Queried, "A", nil, []string{"C", "D"}},
		// One ping per bucket at a time; the full cache drops its stalest.
		{later + 3*s, observe, "E", Queried, "", nil, []string{"D", "E"}},
		{later + 4*s, fail, "A", 0, "", []string{"A", "B"}, nil},
		// A failed once: it is still questionable and pinged again.
		{later + 5*s, observe, "F", Queried, "A", nil, []string{"E", "F"}},
		// A second failure: A is bad, the freshest replacement takes over.
		{later + 6*s, fail, "A", 0, "", []string{"B", "F"}, []string{"E"}},
		{later + 7*s, observe, "G", Queried, "B", nil, []string{"E", "G"}},
		// B answers and stays; the next questionable node (F, which has
		// never answered) is pinged while newcomers wait.
		{later + 8*s, observe, "B", Responded, "F", []string{"B", "F"}, nil},
		{later + 9*s, observe, "F", Responded, "", []string{"B", "F"}, []string{"E", "G"}},
		// A good node that fails twice goes too.
		{later + 10*s, fail, "F", 0, "", nil, nil},
		{later + 11*s, fail, "F", 0, "", []string{"B", "G"}, []string{"E"}},
		{later + 12*s, fail, "G", 0, "", nil, nil},
		{later + 13*s, fail, "G", 0, "", []string{"B", "E"}, []string{}},
		// With no replacement left, a bad node stays...
		{later + 14*s, fail, "E", 0, "", nil, nil},
		{later + 15*s, fail, "E", 0, "", []string{"B", "E"}, []string{}},
		// ...a learned node does not push it out...
		{later + 16*s, observe, "H", Learned, "", []string{"B", "E"}, []string{}},
		// ...and a node that queries us replaces it at once.
		{later + 17*s, observe, "I", Queried, "", []string{"B", "I"}, []string{}},
	}
	for i, st := range steps {
		now := at(st.at)
		var c Contact
		var ping bool
		switch st.op {
		case observe:
			c, ping = tb.Observe(now, ids[st.node], addrN(addrs[st.node]), st.how, 0)
		case fail:
			tb.Failed(now, ids[st.node])
		}
		checkBEP5(t, tb)
		got := ""
		if ping {
			got = names[c.ID]
			if c.Addr != addrN(addrs[got]) {
				t.Errorf("step %d: ping %s at %v, want %v", i, got, c.Addr, addrN(addrs[got]))
			}
		}
		if got != st.ping {
			t.Errorf("step %d (%s %s): ping %q, want %q", i, st.node, st.how, got, st.ping)
		}
		b := tb.Buckets()[0]
		nameList := func(cs []Contact) []string {
			out := []string{}
			for _, c := range cs {
				out = append(out, names[c.ID])
			}
			slices.Sort(out)
			return out
		}
		if st.contacts != nil && !slices.Equal(nameList(b.Contacts), st.contacts) {
			t.Errorf("step %d: contacts %v, want %v", i, nameList(b.Contacts), st.contacts)
		}
		if st.repl != nil && !slices.Equal(nameList(b.Replacements), st.repl) {
			t.Errorf("step %d: replacements %v, want %v", i, nameList(b.Replacements), st.repl)
		}
	}
}

func TestPingWaitExpires(t *testing.T) {
	// An engine that never reports on a ping does not freeze the bucket.
	r := seeded(4)
	self := id.Random(r)
	tb := NewBEP5(self, 1, r)
	tb.Observe(t0, id.RandomWithPrefix(r, self, 5), addrN(1), Responded, 0)
	a := id.RandomWithPrefix(r, self, 0)
	tb.Observe(t0, a, addrN(2), Queried, 0) // splits; bucket 0 holds a
	c, ping := tb.Observe(at(time.Second), id.RandomWithPrefix(r, self, 0), addrN(3), Queried, 0)
	if !ping || c.ID != a {
		t.Fatalf("ping %v %s, want a ping of %s", ping, c.ID, a)
	}
	if _, ping := tb.Observe(at(2*time.Second), id.RandomWithPrefix(r, self, 0), addrN(4), Queried, 0); ping {
		t.Fatal("asked for a second ping while the first is outstanding")
	}
	c, ping = tb.Observe(at(time.Second+PingWait), id.RandomWithPrefix(r, self, 0), addrN(5), Queried, 0)
	if !ping || c.ID != a {
		t.Fatalf("after PingWait: ping %v %s, want a ping of %s", ping, c.ID, a)
	}
}

func TestAddressHijack(t *testing.T) {
	const home, other = 1, 2
	type event struct {
		addr int
		how  Source
		fail bool
	}
	tests := []struct {
		name   string
		events []event
		want   int // the address the table holds afterwards
	}{
		{"answer from elsewhere", []event{{home, Responded, false}, {other, Responded, false}}, home},
		{"query from elsewhere", []event{{home, Responded, false}, {other, Queried, false}}, home},
		{"questionable node keeps its address", []event{{home, Queried, false}, {other, Responded, false}}, home},
		{"one failure is not enough", []event{{home, Responded, false}, {0, 0, true}, {other, Responded, false}}, home},
		{"a bad node's id may move", []event{{home, Responded, false}, {0, 0, true}, {0, 0, true}, {other, Queried, false}}, other},
		{"but not on hearsay", []event{{home, Responded, false}, {0, 0, true}, {0, 0, true}, {other, Learned, false}}, home},
	}
	for _, kind := range tables {
		for _, tt := range tests {
			t.Run(kind.name+"/"+tt.name, func(t *testing.T) {
				r := seeded(5)
				tb := kind.new(id.Random(r), 8, r)
				x := id.Random(r)
				for i, ev := range tt.events {
					now := at(time.Duration(i) * time.Second)
					if ev.fail {
						tb.Failed(now, x)
					} else {
						tb.Observe(now, x, addrN(ev.addr), ev.how, 0)
					}
				}
				c, ok := tb.Get(x)
				if !ok {
					t.Fatal("the node is gone")
				}
				if c.Addr != addrN(tt.want) {
					t.Errorf("address %v, want %v", c.Addr, addrN(tt.want))
				}
				if tt.want == other && (c.State == Bad || c.Fails != 0) {
					t.Errorf("the moved entry kept the old one's failures: %+v", c)
				}
				if tb.Len() != 1 {
					t.Errorf("Len = %d, want 1", tb.Len())
				}
			})
		}
	}
}

func TestReplacementHijack(t *testing.T) {
	r := seeded(6)
	self := id.Random(r)
	tb := NewBEP5(self, 1, r)
	tb.Observe(t0, id.RandomWithPrefix(r, self, 7), addrN(1), Responded, 0)
	tb.Observe(t0, id.RandomWithPrefix(r, self, 0), addrN(2), Responded, 0)
	x := id.RandomWithPrefix(r, self, 0)
	tb.Observe(t0, x, addrN(3), Queried, 0)
	tb.Observe(at(time.Second), x, addrN(4), Responded, 0)
	repl := tb.Buckets()[0].Replacements
	if len(repl) != 1 || repl[0].ID != x || repl[0].Addr != addrN(3) {
		t.Errorf("replacements %+v, want %s at %v", repl, x, addrN(3))
	}
}

func TestObserveIgnores(t *testing.T) {
	for _, kind := range tables {
		t.Run(kind.name, func(t *testing.T) {
			r := seeded(7)
			self := id.Random(r)
			tb := kind.new(self, 8, r)
			tb.Observe(t0, self, addrN(1), Responded, 0)
			if tb.Len() != 0 {
				t.Error("our own id was added")
			}
			if _, ok := tb.Get(self); ok {
				t.Error("Get found our own id")
			}
			var zero Contact
			tb.Observe(t0, id.Random(r), zero.Addr, Responded, 0)
			if tb.Len() != 0 {
				t.Error("a node without an address was added")
			}
		})
	}
}

func TestLearned(t *testing.T) {
	r := seeded(8)
	self := id.Random(r)
	tb := NewBEP5(self, 2, r)
	// A fresh table takes what it learns, so that lookups can start.
	a, b := id.RandomWithPrefix(r, self, 0), id.RandomWithPrefix(r, self, 0)
	near := id.RandomWithPrefix(r, self, 3)
	tb.Observe(t0, a, addrN(1), Learned, 0)
	tb.Observe(t0, b, addrN(2), Learned, 0)
	tb.Observe(t0, near, addrN(3), Learned, 0) // splits the one bucket
	checkBEP5(t, tb)
	if tb.Len() != 3 {
		t.Fatalf("Len = %d, want 3", tb.Len())
	}
	if c, _ := tb.Get(a); c.State != Questionable || !c.LastSeen.IsZero() {
		t.Errorf("learned contact %+v, want questionable and never seen", c)
	}
	// Bucket 0 is full and no longer ours: a learned node neither evicts,
	// nor waits, nor makes anyone be pinged.
	c := id.RandomWithPrefix(r, self, 0)
	if _, ping := tb.Observe(at(time.Hour), c, addrN(4), Learned, 0); ping {
		t.Error("a learned node asked for a ping")
	}
	if _, ok := tb.Get(c); ok || len(tb.Buckets()[0].Replacements) != 0 {
		t.Error("a learned node got into a full bucket or its cache")
	}
	// A node that answers does wait, and the learned ones get pinged.
	if p, ping := tb.Observe(at(time.Hour), c, addrN(4), Responded, 0); !ping || (p.ID != a && p.ID != b) {
		t.Errorf("ping %v %s, want one of the learned nodes pinged", ping, p.ID)
	}
}

func TestRTT(t *testing.T) {
	ms := time.Millisecond
	for _, kind := range tables {
		t.Run(kind.name, func(t *testing.T) {
			r := seeded(9)
			tb := kind.new(id.Random(r), 8, r)
			x := id.Random(r)
			for i, tt := range []struct {
				sample, want time.Duration
			}{
				{0, 0},
				{100 * ms, 100 * ms},
				{0, 100 * ms},
				{200 * ms, 112500 * time.Microsecond},
				{112500 * time.Microsecond, 112500 * time.Microsecond},
			} {
				tb.Observe(at(time.Duration(i)*time.Second), x, addrN(1), Responded, tt.sample)
				if c, _ := tb.Get(x); c.RTT != tt.want {
					t.Errorf("after sample %v: RTT %v, want %v", tt.sample, c.RTT, tt.want)
				}
			}
		})
	}
}

func TestRemove(t *testing.T) {
	r := seeded(10)
	self := id.Random(r)
	tb := NewBEP5(self, 1, r)
	tb.Observe(t0, id.RandomWithPrefix(r, self, 4), addrN(1), Responded, 0)
	a, b := id.RandomWithPrefix(r, self, 0), id.RandomWithPrefix(r, self, 0)
	tb.Observe(t0, a, addrN(2), Responded, 0)
	tb.Observe(t0, b, addrN(3), Responded, 0) // waits in bucket 0's cache
	tb.Remove(a)
	checkBEP5(t, tb)
	if _, ok := tb.Get(a); ok {
		t.Error("removed node still there")
	}
	if _, ok := tb.Get(b); !ok {
		t.Error("the replacement did not take the free place")
	}
	tb.Remove(b)
	tb.Remove(b) // removing an absent node is harmless
	if tb.Len() != 1 {
		t.Errorf("Len = %d, want 1", tb.Len())
	}

	ka := NewKeepAll(self, 8, r)
	for i := range 3000 {
		ka.Observe(t0, id.Random(r), addrN(i), Responded, 0)
	}
	gone := ka.Closest(self, 2000, nil)
	for _, c := range gone {
		ka.Remove(c.ID) // enough to make it compact
	}
	if ka.Len() != 1000 {
		t.Fatalf("Len = %d, want 1000", ka.Len())
	}
	for _, c := range ka.Closest(self, 3000, nil) {
		if slices.ContainsFunc(gone, func(g Contact) bool { return g.ID == c.ID }) {
			t.Fatalf("Closest returned removed %s", c.ID)
		}
	}
	ka.Observe(t0, gone[0].ID, gone[0].Addr, Queried, 0)
	if c := ka.Closest(self, 1, nil); len(c) != 1 || c[0].ID != gone[0].ID {
		t.Errorf("a removed node that came back is not the closest again")
	}
}

// TestEntrySize guards the per-contact footprint the simulator's million
// tables depend on.
func TestEntrySize(t *testing.T) {
	if got := unsafe.Sizeof(entry{}); got > 56 {
		t.Errorf("entry is %d bytes, want at most 56", got)
	}
}

// One address, many made-up ids: only the first gets in, until it proves
// dead.
func TestBEP5OneContactPerAddress(t *testing.T) {
	self := id.ID{}
	tb := NewBEP5(self, 8, nil)
	now := time.Unix(0, 0)
	addr := netip.MustParseAddrPort("127.0.0.1:7000")
	rng := seeded(1)
	first := id.Random(rng)
	tb.Observe(now, first, addr, Queried, 0)
	for range 100 {
		tb.Observe(now, id.Random(rng), addr, Queried, 0)
	}
	if tb.Len() != 1 {
		t.Fatalf("one address holds %d contacts", tb.Len())
	}
	tb.Failed(now, first)
	tb.Failed(now, first) // bad now
	newer := id.Random(rng)
	tb.Observe(now, newer, addr, Responded, 0)
	if _, ok := tb.Get(newer); !ok || tb.Len() != 1 {
		t.Fatalf("a new id did not take the address of a dead contact (len %d)", tb.Len())
	}
}

func TestPreferFast(t *testing.T) {
	const ms = time.Millisecond
	// A far bucket (k = 3) holds A, B and C with these round-trip times
	// (0: none measured); then N arrives.
	tests := []struct {
		name     string
		strict   bool
		rtts     [3]time.Duration
		how      Source
		rtt      time.Duration
		contacts []string
		repl     []string
	}{
		{"faster newcomer takes the slowest place", false, [3]time.Duration{100 * ms, 300 * ms, 200 * ms}, Responded, 50 * ms, []string{"A", "C", "N"}, []string{"B"}},
		{"not faster by a quarter: it waits", false, [3]time.Duration{100 * ms, 300 * ms, 200 * ms}, Responded, 230 * ms, []string{"A", "B", "C"}, []string{"N"}},
		{"a query carries no round trip", false, [3]time.Duration{100 * ms, 300 * ms, 200 * ms}, Queried, 0, []string{"A", "B", "C"}, []string{"N"}},
		{"unmeasured contacts are not judged", false, [3]time.Duration{0, 0, 0}, Responded, 10 * ms, []string{"A", "B", "C"}, []string{"N"}},
		{"strict BEP 5 turns it away", true, [3]time.Duration{100 * ms, 300 * ms, 200 * ms}, Responded, 10 * ms, []string{"A", "B", "C"}, []string{"N"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := seeded(9)
			self := id.Random(r)
			tb := NewBEP5(self, 3, r)
			tb.SetPreferFast(!tt.strict)
			names := map[id.ID]string{}
			// Fill our own side first so that bucket 0 is split off.
			for i := range 4 {
				tb.Observe(t0, id.RandomWithPrefix(r, self, 5+i), addrN(100+i), Responded, 0)
			}
			for i, name := range []string{"A", "B", "C"} {
				x := id.RandomWithPrefix(r, self, 0)
				names[x] = name
				tb.Observe(t0, x, addrN(i), Responded, tt.rtts[i])
			}
			n := id.RandomWithPrefix(r, self, 0)
			names[n] = "N"
			tb.Observe(at(time.Second), n, addrN(9), tt.how, tt.rtt)
			checkBEP5(t, tb)
			b := tb.Buckets()[0]
			list := func(cs []Contact) []string {
				out := []string{}
				for _, c := range cs {
					out = append(out, names[c.ID])
				}
				slices.Sort(out)
				return out
			}
			if got := list(b.Contacts); !slices.Equal(got, tt.contacts) {
				t.Errorf("contacts %v, want %v", got, tt.contacts)
			}
			if got := list(b.Replacements); !slices.Equal(got, tt.repl) {
				t.Errorf("replacements %v, want %v", got, tt.repl)
			}
		})
	}
}
