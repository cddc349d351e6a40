package replica

import (
	"fmt"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/store"
)

// stepLink carries a Round as an engine does (RoundLink), over b's tree
// and store in memory: answers wait in inbox until the test hands them
// back, as datagrams would.
type stepLink struct {
	t        *testing.T
	a, b     store.Store
	tb       *Tree
	inbox    []stepReply
	next     uint64
	pushed   []string
	pulled   int
	finished int
}

type stepReply struct {
	h uint64
	x []byte
}

func (l *stepLink) SendSync(_ time.Time, x []byte) (uint64, bool) {
	out, err := l.tb.Serve(t0, nil, x)
	if err != nil {
		l.t.Fatalf("serve %q: %v", x, err)
	}
	l.next++
	l.inbox = append(l.inbox, stepReply{l.next, out})
	return l.next, true
}

func (l *stepLink) Push(_ time.Time, p *Push) {
	for _, it := range p.todo {
		l.pushed = append(l.pushed, it.rec.Key)
	}
}

// Pull answers the dk_fetch from b and stores the answer with Pulled, as
// both engines do.
func (l *stepLink) Pull(now time.Time, keys []string) {
	var recs []store.Record
	for _, k := range keys {
		if rec, ok, err := l.b.Get(k); err == nil && ok {
			rec.Expires = t0.Add(time.Hour) // fill's records never expire; Pulled drops expired ones
			recs = append(recs, rec)
		}
	}
	observe := func(time.Time, store.Version) error { return nil }
	changed := func(time.Time, store.Record) { l.pulled++ }
	if err := Pulled(now, l.a, AppendRecords(nil, recs), observe, changed); err != nil {
		l.t.Fatal(err)
	}
}

func (l *stepLink) Finish(time.Time) { l.finished++ }

// TestRoundStep drives a round through Step, Answered and Failed as the
// engines do: the records only the peer holds are pulled and stored, the
// ones only this node holds are pushed, and the round finishes once.
func TestRoundStep(t *testing.T) {
	a, b := store.NewMemory(store.Config{}), store.NewMemory(store.Config{})
	fill(t, a, 0, 100, ver)
	fill(t, b, 50, 150, ver)
	peer := peerB
	ta := NewTree(a)
	if err := ta.Refresh(t0); err != nil {
		t.Fatal(err)
	}
	plan, err := MakePlan(a, everyone{peer}, 0)
	if err != nil {
		t.Fatal(err)
	}
	shared := plan.Peer(peer).Shared
	shared.AddRing(peer.ID, peer.ID) // the whole ring: what only the peer holds too
	l := &stepLink{t: t, a: a, b: b, tb: NewTree(b)}
	r := NewRound(peer, ta, everyone{peer}, shared)
	r.Step(t0, l)
	for n := 0; len(l.inbox) > 0; n++ {
		rp := l.inbox[0]
		l.inbox = l.inbox[1:]
		if n == 1 {
			// One lost answer: its part of the tree waits for the next round.
			r.Failed(t0, rp.h, l)
			continue
		}
		if err := r.Answered(t0, rp.h, rp.x, l); err != nil {
			t.Fatal(err)
		}
	}
	if l.finished != 1 {
		t.Fatalf("round finished %d times, want once", l.finished)
	}
	// A second round, with no answer lost, completes the repair (the
	// fake peer never stores what is pushed to it, so it pushes all of
	// what the peer lacks again).
	l2 := &stepLink{t: t, a: a, b: b, tb: NewTree(b)}
	ta.Invalidate()
	if err := ta.Refresh(t0); err != nil {
		t.Fatal(err)
	}
	r2 := NewRound(peer, ta, everyone{peer}, shared)
	r2.Step(t0, l2)
	for len(l2.inbox) > 0 {
		rp := l2.inbox[0]
		l2.inbox = l2.inbox[1:]
		if err := r2.Answered(t0, rp.h, rp.x, l2); err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := a.Stats(); got != 150 {
		t.Errorf("this node holds %d records after two rounds, want 150 (all the peer's)", got)
	}
	if l2.finished != 1 {
		t.Fatalf("second round finished %d times, want once", l2.finished)
	}
	pushed := map[string]bool{}
	for _, k := range append(l.pushed, l2.pushed...) {
		var i int
		if _, err := fmt.Sscanf(k, "key-%07d", &i); err != nil || i >= 50 {
			t.Errorf("pushed %q, which the peer holds", k)
		}
		pushed[k] = true
	}
	if len(pushed) != 50 || len(l2.pushed) != 50 {
		t.Errorf("pushed %d distinct keys (%d in the second round), want the 50 the peer lacks", len(pushed), len(l2.pushed))
	}
	if l.pulled+l2.pulled != 50 {
		t.Errorf("pulled %d records, want the 50 this node lacked", l.pulled+l2.pulled)
	}
}
