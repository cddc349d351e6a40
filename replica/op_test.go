package replica

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/store"
)

func members(n int) []Member {
	ms := make([]Member, n)
	ms[0].Self = true
	return ms
}

func TestOpPut(t *testing.T) {
	refused := errors.New("refused")
	cases := []struct {
		name  string
		steps func(o *Op)
		kind  Kind
		acks  int
		open  bool // not decided yet
	}{
		{"quorum of 2", func(o *Op) { o.Ack(0); o.Ack(1) }, Written, 2, false},
		{"one ack, one pending", func(o *Op) { o.Ack(0) }, 0, 0, true},
		{"one ack, two failed", func(o *Op) { o.Ack(0); o.Fail(1, refused); o.Fail(2, refused) }, Short, 1, false},
		{"acks after a failure", func(o *Op) { o.Fail(1, refused); o.Ack(0); o.Ack(2) }, Written, 2, false},
		{"a member counts once", func(o *Op) { o.Ack(1); o.Ack(1); o.Fail(1, refused) }, 0, 0, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := &Op{Put: true, Key: "k", Members: members(3), Need: 2}
			c.steps(o)
			out, ok := o.Decide(store.Version{Time: 9})
			if ok == c.open {
				t.Fatalf("decided %v, want %v", ok, !c.open)
			}
			if !ok {
				return
			}
			if out.Kind != c.kind || out.Acks != c.acks {
				t.Fatalf("outcome %+v, want kind %d with %d acks", out, c.kind, c.acks)
			}
			if c.kind == Short && !errors.Is(out.FirstErr, refused) {
				t.Fatalf("first error %v, want the refusal", out.FirstErr)
			}
			if _, again := o.Decide(store.Version{}); again {
				t.Fatal("decided twice")
			}
		})
	}
}

func TestOpGet(t *testing.T) {
	v := func(i uint64, del bool) *store.Record {
		return &store.Record{Key: "k", Value: []byte{byte(i)}, Version: store.Version{Time: i}, Deleted: del}
	}
	down := errors.New("down")
	cases := []struct {
		name    string
		steps   func(o *Op)
		kind    Kind
		version uint64
		partial bool
		stale   []int
		allow   bool // AllowPartial
	}{
		{"newest wins, older repaired", func(o *Op) { o.Answer(0, v(1, false)); o.Answer(1, v(2, false)); o.Answer(2, nil) }, Found, 2, false, []int{0, 2}, false},
		{"tombstone newest", func(o *Op) { o.Answer(0, v(3, true)); o.Answer(1, v(2, false)); o.Fail(2, down) }, NotFound, 3, false, []int{1}, false},
		{"one answer of quorum 2, partial allowed", func(o *Op) { o.Answer(0, v(1, false)); o.Fail(1, down); o.Fail(2, down) }, Found, 1, true, nil, true},
		{"one answer of quorum 2: short", func(o *Op) { o.Answer(0, v(1, false)); o.Fail(1, down); o.Fail(2, down) }, ShortRead, 0, true, nil, false},
		{"a lone tombstone: short, not a not-found", func(o *Op) { o.Answer(0, v(4, true)); o.Fail(1, down); o.Fail(2, down) }, ShortRead, 0, true, nil, false},
		{"a lone nothing: short, not a not-found", func(o *Op) { o.Answer(0, nil); o.Fail(1, down); o.Fail(2, down) }, ShortRead, 0, true, nil, false},
		{"two answers of quorum 2", func(o *Op) { o.Answer(0, nil); o.Answer(1, v(5, false)); o.Fail(2, down) }, Found, 5, false, []int{0}, false},
		{"nothing anywhere", func(o *Op) { o.Answer(0, nil); o.Answer(1, nil); o.Answer(2, nil) }, NotFound, 0, false, nil, false},
		{"no answer, partial allowed", func(o *Op) { o.Fail(0, down); o.Fail(1, down); o.Fail(2, down) }, NoAnswer, 0, true, nil, true},
		{"no answer", func(o *Op) { o.Fail(0, down); o.Fail(1, down); o.Fail(2, down) }, ShortRead, 0, true, nil, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := &Op{Key: "k", Members: members(3), Need: 2, AllowPartial: c.allow}
			c.steps(o)
			out, ok := o.Decide(store.Version{})
			if !ok {
				t.Fatal("not decided with every member counted")
			}
			if out.Kind != c.kind || out.Version.Time != c.version || out.Partial != c.partial || len(out.Holders) != 3 || (out.Kind == ShortRead) != (out.Record == nil && c.kind == ShortRead) {
				t.Fatalf("outcome %+v, want kind %d version %d partial %v and 3 holders", out, c.kind, c.version, c.partial)
			}
			stale := o.Stale()
			if len(stale) != len(c.stale) {
				t.Fatalf("stale %v, want %v", stale, c.stale)
			}
			for i := range stale {
				if stale[i] != c.stale[i] {
					t.Fatalf("stale %v, want %v", stale, c.stale)
				}
			}
		})
	}
}

// A put short of its quorum says a replica refused it (the owner rule)
// even when a member before it in the set did not answer: the refusal is
// the answer.
func TestOpShortSaysRefused(t *testing.T) {
	down := errors.New("did not answer")
	for _, tt := range []struct {
		name  string
		steps func(o *Op)
		want  error
	}{
		{"down first, then refusals", func(o *Op) { o.Fail(0, down); o.Fail(1, store.ErrRefused); o.Fail(2, store.ErrRefused) }, store.ErrRefused},
		{"refusal last", func(o *Op) { o.Fail(0, down); o.Fail(1, down); o.Fail(2, fmt.Errorf("owner: %w", store.ErrRefused)) }, store.ErrRefused},
		{"no refusal: the first error", func(o *Op) { o.Fail(0, down); o.Ack(1); o.Fail(2, errors.New("full")) }, down},
	} {
		t.Run(tt.name, func(t *testing.T) {
			o := &Op{Put: true, Key: "k", Members: members(3), Need: 2}
			tt.steps(o)
			out, ok := o.Decide(store.Version{Time: 9})
			if !ok || out.Kind != Short {
				t.Fatalf("outcome %+v (decided %v), want short", out, ok)
			}
			if !errors.Is(out.FirstErr, tt.want) {
				t.Errorf("first error %v, want %v", out.FirstErr, tt.want)
			}
		})
	}
}

// TestOpAnswers: the answers of remote members (Stored, Fetched) and of
// this node's own store (AnswerLocal), as both engines count them.
func TestOpAnswers(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	live := store.Record{Key: "k", Value: []byte("v"), Version: store.Version{Time: 5}}
	old := live
	old.Expires = now.Add(-time.Second)
	ahead := live
	ahead.Version.Time = 1 << 62
	other := live
	other.Key = "other"
	tooFar := errors.New("too far ahead")
	observe := func(v store.Version) error {
		if v.Time == ahead.Version.Time {
			return tooFar
		}
		return nil
	}
	fetched := []struct {
		name    string
		x       []byte
		wantErr bool
		want    *store.Record
	}{
		{"a live record", AppendRecords(nil, []store.Record{live}), false, &live},
		{"nothing", AppendRecords(nil, nil), false, nil},
		{"expired", AppendRecords(nil, []store.Record{old}), false, nil},
		{"ahead of the clock", AppendRecords(nil, []store.Record{ahead}), false, nil},
		{"another key", AppendRecords(nil, []store.Record{other}), false, nil},
		{"garbage", []byte("d4:recs"), true, nil},
	}
	for _, c := range fetched {
		t.Run("fetched/"+c.name, func(t *testing.T) {
			o := &Op{Key: "k", Members: members(2), Need: 1}
			err := o.Fetched(1, c.x, nil, now, observe)
			m := o.Members[1]
			switch {
			case (err != nil) != c.wantErr:
				t.Fatalf("err %v, want an error: %v", err, c.wantErr)
			case c.wantErr && m.Err == nil:
				t.Fatalf("a malformed answer did not fail the member: %+v", m)
			case !c.wantErr && (!m.Done || m.Err != nil):
				t.Fatalf("member %+v, want answered", m)
			case c.want == nil && m.Rec != nil, c.want != nil && (m.Rec == nil || m.Rec.Version != c.want.Version):
				t.Fatalf("member holds %+v, want %+v", m.Rec, c.want)
			}
		})
	}
	for _, c := range []struct {
		name string
		x    []byte
		ack  bool
	}{
		{"acknowledged", EncodeX(nil, map[string]any{"ok": []any{int64(1)}}), true},
		{"refused", EncodeX(nil, map[string]any{"ok": []any{int64(0)}}), false},
		{"no ok", EncodeX(nil, map[string]any{}), false},
		{"garbage", []byte("x"), false},
	} {
		t.Run("stored/"+c.name, func(t *testing.T) {
			o := &Op{Put: true, Key: "k", Members: members(2), Need: 1}
			o.Stored(1, c.x)
			if m := o.Members[1]; !m.Done || m.Acked != c.ack || (m.Err == nil) != c.ack {
				t.Fatalf("member %+v, want acked %v", m, c.ack)
			}
		})
	}
	t.Run("local", func(t *testing.T) {
		st := store.NewMemory(store.Config{})
		if _, err := st.Put(live); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			key  string
			want bool
		}{{"k", true}, {"absent", false}} {
			o := &Op{Key: c.key, Members: members(1), Need: 1}
			o.AnswerLocal(0, st, nil, now)
			if m := o.Members[0]; !m.Done || m.Err != nil || (m.Rec != nil) != c.want {
				t.Errorf("%s: member %+v, want a record: %v", c.key, m, c.want)
			}
		}
	})
}
