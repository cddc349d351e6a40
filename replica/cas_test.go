package replica

import (
	"errors"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/store"
)

var casT0 = time.Unix(1_800_000_000, 0)

func bal(ms int64, w uint64) store.Version {
	return store.Version{Time: uint64(casT0.Add(time.Duration(ms)*time.Millisecond).UnixMilli()) << 16, Writer: w}
}

func TestCondCheck(t *testing.T) {
	now := casT0.Add(time.Hour)
	v := bal(1, 1)
	liveRec := &store.Record{Key: "k", Version: v, Value: []byte("x"), Expires: now.Add(time.Minute)}
	expired := &store.Record{Key: "k", Version: v, Value: []byte("x"), Expires: now.Add(-time.Minute)}
	deleted := &store.Record{Key: "k", Version: v, Deleted: true}
	for _, tc := range []struct {
		name    string
		c       Cond
		cur     *store.Record
		ok      bool
		current store.Version
		absent  bool
	}{
		{"absent, none", Cond{IfAbsent: true}, nil, true, store.Version{}, false},
		{"absent, deleted", Cond{IfAbsent: true}, deleted, true, store.Version{}, false},
		{"absent, expired", Cond{IfAbsent: true}, expired, true, store.Version{}, false},
		{"absent, live", Cond{IfAbsent: true}, liveRec, false, v, false},
		{"version, same", Cond{IfVersion: v}, liveRec, true, store.Version{}, false},
		{"version, other", Cond{IfVersion: bal(2, 1)}, liveRec, false, v, false},
		{"version, none", Cond{IfVersion: v}, nil, false, store.Version{}, true},
		{"version, deleted", Cond{IfVersion: v}, deleted, false, store.Version{}, true},
		{"none", Cond{}, liveRec, true, store.Version{}, false},
	} {
		err := tc.c.Check("k", tc.cur, now)
		if (err == nil) != tc.ok {
			t.Errorf("%s: %v, want ok %v", tc.name, err, tc.ok)
			continue
		}
		if err == nil {
			continue
		}
		var ce *ConflictError
		if !errors.As(err, &ce) || !errors.Is(err, ErrConflict) || ce.Current != tc.current || ce.Absent != tc.absent {
			t.Errorf("%s: %v (%+v), want current %v absent %v", tc.name, err, ce, tc.current, tc.absent)
		}
	}
}

func TestAcceptor(t *testing.T) {
	st := store.NewMemory(store.Config{})
	a := NewAcceptor(casT0, true)
	rec := func(ms int64, w uint64) *store.Record {
		return &store.Record{Key: "k", Version: bal(ms, w), Value: []byte("v" + strconv.FormatInt(ms, 10)), Expires: casT0.Add(time.Hour)}
	}
	after := int64(store.DefaultMaxSkew / time.Millisecond) // past the start floor
	for i, tc := range []struct {
		m    CASMsg
		ok   bool
		seen store.Version
	}{
		// Below the floor of a fresh start: refused.
		{CASMsg{Phase: PhasePrepare, Key: "k", Ballot: bal(10, 1)}, false, NewAcceptor(casT0, true).floor},
		{CASMsg{Phase: PhasePrepare, Key: "k", Ballot: bal(after+10, 1)}, true, store.Version{}},
		// An older or equal ballot than promised: refused.
		{CASMsg{Phase: PhasePrepare, Key: "k", Ballot: bal(after+5, 2)}, false, bal(after+10, 1)},
		{CASMsg{Phase: PhasePrepare, Key: "k", Ballot: bal(after+10, 1)}, false, bal(after+10, 1)},
		{CASMsg{Phase: PhaseAccept, Key: "k", Ballot: bal(after+5, 2), Rec: rec(after+5, 2)}, false, bal(after+10, 1)},
		// The promised ballot's accept: stored; again (a retry): ok.
		{CASMsg{Phase: PhaseAccept, Key: "k", Ballot: bal(after+10, 1), Rec: rec(after+10, 1)}, true, store.Version{}},
		{CASMsg{Phase: PhaseAccept, Key: "k", Ballot: bal(after+10, 1), Rec: rec(after+10, 1)}, true, store.Version{}},
		// A newer ballot: promised, and the answer carries what is held.
		{CASMsg{Phase: PhasePrepare, Key: "k", Ballot: bal(after+20, 3)}, true, store.Version{}},
		{CASMsg{Phase: PhaseAccept, Key: "k", Ballot: bal(after+15, 2), Rec: rec(after+15, 2)}, false, bal(after+20, 3)},
	} {
		ans, err := a.Handle(st, tc.m)
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if ans.OK != tc.ok || !tc.ok && ans.Seen != tc.seen {
			t.Fatalf("step %d: %+v, want ok %v seen %v", i, ans, tc.ok, tc.seen)
		}
	}
	ans, _ := a.Handle(st, CASMsg{Phase: PhasePrepare, Key: "k", Ballot: bal(after+30, 1)})
	if !ans.OK || ans.Rec == nil || ans.Rec.Version != bal(after+10, 1) {
		t.Fatalf("a promise after an accept: %+v, want the accepted record", ans)
	}
	// A plain write newer than a promised ballot beats its accept.
	if _, err := st.Put(*rec(after+40, 9)); err != nil {
		t.Fatal(err)
	}
	if ans, _ := a.Handle(st, CASMsg{Phase: PhaseAccept, Key: "k", Ballot: bal(after+30, 1), Rec: rec(after+30, 1)}); ans.OK || ans.Seen != bal(after+40, 9) {
		t.Fatalf("an accept older than the record held: %+v", ans)
	}
	// Malformed accepts are the sender's error.
	if _, err := a.Handle(st, CASMsg{Phase: PhaseAccept, Key: "k", Ballot: bal(after+50, 1), Rec: rec(after+51, 1)}); err == nil {
		t.Fatal("an accept whose record is not under its ballot was taken")
	}
}

func TestAcceptorBounded(t *testing.T) {
	st := store.NewMemory(store.Config{})
	a := NewAcceptor(casT0, true)
	base := int64(store.DefaultMaxSkew/time.Millisecond) + 1
	for i := range MaxPromises + 10 {
		if ans, err := a.Handle(st, CASMsg{Phase: PhasePrepare, Key: "k" + strconv.Itoa(i), Ballot: bal(base+int64(i), 1)}); err != nil || !ans.OK {
			t.Fatalf("prepare %d: %+v %v", i, ans, err)
		}
	}
	if a.Promises() > MaxPromises {
		t.Fatalf("%d promises kept, bound %d", a.Promises(), MaxPromises)
	}
	// A forgotten promise is still kept by the floor.
	if ans, _ := a.Handle(st, CASMsg{Phase: PhasePrepare, Key: "k0", Ballot: bal(base, 2)}); ans.OK {
		t.Fatal("a ballot below a forgotten promise was promised")
	}
}

// TestCASIncrementers is the layer's promise in a model of the network:
// n incrementers run read-then-compare-and-swap loops on one counter key
// against three acceptors, every message delivered in random order;
// midway one acceptor dies (messages to it are lost) and later restarts
// with its store but without its promises. Each increment has an id, and
// the counter's value keeps the ids of the last increments, so that a
// write that ended ErrIndeterminate is settled as an application does:
// a new round whose change keeps the counter when the id is in it and
// increments it otherwise. The final count equals the number of
// acknowledged increments, and no id is counted twice.
func TestCASIncrementers(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3, 4, 5, 6, 7, 8} {
		t.Run(strconv.FormatUint(seed, 10), func(t *testing.T) { casModel(t, seed, 6, 20) })
	}
}

// counter is the model's value: the count and the ids of the last
// increments, newest last.
type counter struct {
	n   int
	ids []string
}

const counterIDs = 64

func parseCounter(r *store.Record) counter {
	if r == nil || r.Deleted {
		return counter{}
	}
	n, ids, _ := strings.Cut(string(r.Value), ";")
	c := counter{}
	c.n, _ = strconv.Atoi(n)
	if ids != "" {
		c.ids = strings.Split(ids, ",")
	}
	return c
}

func (c counter) inc(id string) []byte {
	ids := append(c.ids, id)
	ids = ids[max(0, len(ids)-counterIDs):]
	return []byte(strconv.Itoa(c.n+1) + ";" + strings.Join(ids, ","))
}

func casModel(t *testing.T, seed uint64, n, each int) {
	rng := rand.New(rand.NewPCG(seed, 99))
	const members = 3
	stores := make([]store.Store, members)
	acc := make([]*Acceptor, members)
	for i := range stores {
		stores[i] = store.NewMemory(store.Config{})
		acc[i] = NewAcceptor(casT0, true)
	}
	now := casT0.Add(2 * store.DefaultMaxSkew)
	expires := now.Add(24 * time.Hour)
	dead := -1
	type msg struct {
		from, to int
		m        CASMsg
		reply    *CASAnswer
		phase    uint8
		p        *Proposer
	}
	var flight []msg
	type worker struct {
		clock    store.Clock
		p        *Proposer
		done     int    // acknowledged increments
		op       string // the increment under way
		settling bool   // its write ended ErrIndeterminate
	}
	ws := make([]*worker, n)
	for i := range ws {
		ws[i] = &worker{clock: store.Clock{Writer: uint64(i + 1)}}
	}
	acked := map[string]bool{}
	// read is a quorum read: the newest record among a majority of the
	// live members (the model lets it be instantaneous).
	read := func() *store.Record {
		var best *store.Record
		k := 0
		for i := range stores {
			if i == dead {
				continue
			}
			if r, ok, _ := stores[i].Get("counter"); ok && (best == nil || r.Version.Newer(best.Version)) {
				best = &r
			}
			if k++; k == 2 {
				break
			}
		}
		return best
	}
	propose := func(w *worker, from int, change Change) {
		w.p = NewProposer("counter", w.clock.Now(now), change, members, Majority(members))
		for to := range members {
			flight = append(flight, msg{from: from, to: to, m: w.p.Prepare(), phase: PhasePrepare, p: w.p})
		}
	}
	// attempt reads the counter and swaps in its increment if the
	// version is still the one read.
	attempt := func(w *worker, from int) {
		cur := read()
		cond := Cond{IfAbsent: true}
		if cur != nil {
			cond = Cond{IfVersion: cur.Version}
		}
		propose(w, from, CondChange("counter", cond, store.Record{Value: parseCounter(cur).inc(w.op), Expires: expires}))
	}
	// settle makes the state final with the increment in it, once.
	settle := func(w *worker, from int) {
		op := w.op
		propose(w, from, func(cur *store.Record, now time.Time) (store.Record, error) {
			c := parseCounter(cur)
			if slices.Contains(c.ids, op) {
				return *cur, nil
			}
			return store.Record{Value: c.inc(op), Expires: expires}, nil
		})
	}
	for i, w := range ws {
		w.op = "w" + strconv.Itoa(i) + "-0"
		attempt(w, i)
	}
	killAt, restartAt := 400, 1500
	rounds := 0
	for step := 0; len(flight) > 0; step++ {
		now = now.Add(time.Millisecond)
		switch step {
		case killAt:
			dead = 2
		case restartAt:
			dead = -1
			acc[2] = NewAcceptor(now, true) // its store kept, its promises lost
		}
		j := rng.IntN(len(flight))
		f := flight[j]
		flight[j] = flight[len(flight)-1]
		flight = flight[:len(flight)-1]
		w := ws[f.from]
		if f.reply == nil {
			if f.to == dead {
				f.p.Fail(f.to, f.phase)
			} else {
				ans, err := acc[f.to].Handle(stores[f.to], f.m)
				if err != nil {
					t.Fatal(err)
				}
				f.reply = &ans
				flight = append(flight, f)
				continue
			}
		} else {
			f.p.Answer(f.to, f.phase, *f.reply, now)
		}
		if f.p != w.p {
			continue // an answer to a round already decided
		}
		if m, ok := w.p.Next(); ok {
			for to := range members {
				flight = append(flight, msg{from: f.from, to: to, m: m, phase: PhaseAccept, p: w.p})
			}
		}
		done, err := w.p.Done()
		if !done {
			continue
		}
		rounds++
		_ = w.clock.Observe(now, w.p.Seen())
		if rounds > 100*n*each {
			t.Fatalf("%d rounds: no progress", rounds)
		}
		switch {
		case err == nil:
			if acked[w.op] {
				t.Fatalf("increment %s acknowledged twice", w.op)
			}
			acked[w.op] = true
			w.done++
			w.settling = false
			if w.done == each {
				w.p = nil // finished: its late answers count for nothing
				continue
			}
			w.op = "w" + strconv.Itoa(f.from) + "-" + strconv.Itoa(w.done)
			attempt(w, f.from)
		case w.settling || errors.Is(err, ErrIndeterminate):
			// Some member may hold it: settle it.
			if !w.p.Wrote() && !w.settling {
				t.Fatalf("a round that wrote nothing ended %v", err)
			}
			w.settling = true
			settle(w, f.from)
		case errors.Is(err, ErrConflict), errors.Is(err, ErrContended), errors.Is(err, ErrQuorum):
			attempt(w, f.from) // nothing written: read again, swap again
		default:
			t.Fatalf("unexpected error: %v", err)
		}
	}
	final := parseCounter(read())
	t.Logf("seed %d: %d acknowledged increments in %d rounds, final count %d", seed, len(acked), rounds, final.n)
	if len(acked) != n*each {
		t.Fatalf("%d increments acknowledged, want %d", len(acked), n*each)
	}
	if final.n != len(acked) {
		t.Fatalf("final count %d, acknowledged increments %d: an update was lost or counted twice", final.n, len(acked))
	}
}
