package replica

import (
	"errors"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/store"
)

// A replica's answer names, by position, each direct write it kept out
// for holding a newer version, and what it holds; the writer reads it
// back, and an answer without one is the plain one, byte for byte.
func TestHeldAnswer(t *testing.T) {
	st := store.NewMemory(store.Config{})
	newer := store.Version{Time: 9 << 16, Writer: 7}
	if _, err := st.Put(store.Record{Key: "k", Value: []byte("held"), Version: newer}); err != nil {
		t.Fatal(err)
	}
	older := store.Version{Time: 8 << 16, Writer: 9}
	recs := []store.Record{
		{Key: "k", Value: []byte("late"), Version: older}, // kept out by newer
		{Key: "new", Value: []byte("x"), Version: older},  // applied
		{Key: "k", Value: []byte("same"), Version: newer}, // equal: the write itself
		{Key: "gone", Value: []byte("x"), Version: older}, // refused, nothing held
	}
	applied := []bool{false, true, false, false}
	errs := []error{nil, nil, nil, errors.New("refused")}
	held := Superseded(st, recs, []int{1, 2, 4, 5}, errs, applied)
	if len(held) != 1 || held[0].I != 1 || held[0].Version != newer {
		t.Fatalf("Superseded = %+v, want record 1 held at %v", held, newer)
	}
	x := AppendAcks(nil, 6, []int{1, 2, 4, 5}, errs, held)
	d, err := decodeDict(x)
	if err != nil {
		t.Fatalf("%q: %v", x, err)
	}
	if got := encode(nil, d); string(got) != string(x) {
		t.Fatalf("answer %q is not canonical bencoding (%q)", x, got)
	}
	if got := ParseHeld(x); len(got) != 1 || got[0] != held[0] {
		t.Fatalf("ParseHeld = %+v, want %+v", got, held)
	}
	if codes := AckCodes(x); len(codes) != 6 || codes[1] != 1 || codes[5] != 0 {
		t.Fatalf("codes %v", codes)
	}
	if got := string(AppendAcks(nil, 1, nil, []error{nil}, nil)); got != ackOne || ParseHeld([]byte(got)) != nil {
		t.Fatalf("plain answer %q", got)
	}

	// The writer: a plain acknowledgement beats nothing; one naming a
	// newer version held makes the write Beaten, by the newest named.
	o := Op{Put: true, Key: "k", Members: make([]Member, 3)}
	o.Stored(0, []byte(ackOne))
	if _, beaten := o.Beaten(older); beaten {
		t.Fatal("beaten by a plain acknowledgement")
	}
	o.Stored(1, AppendAcks(nil, 1, nil, []error{nil}, []Held{{0, newer}}))
	o.Stored(2, AppendAcks(nil, 1, nil, []error{nil}, []Held{{0, older}}))
	if v, beaten := o.Beaten(older); !beaten || v != newer {
		t.Fatalf("Beaten = %v %v, want %v", v, beaten, newer)
	}
	if _, beaten := o.Beaten(newer); beaten {
		t.Fatal("a write beaten by its own version")
	}
	if o.acks != 3 {
		t.Fatalf("%d acknowledgements, want 3: a member holding a newer version holds what beats the write", o.acks)
	}

	// This node as a member: the store kept its newer version.
	o = Op{Put: true, Key: "k", Members: make([]Member, 1)}
	o.Committed(0, st, func(time.Time) {})(time.Time{}, []error{nil}, []bool{false})
	if v, beaten := o.Beaten(older); !beaten || v != newer {
		t.Fatalf("local: Beaten = %v %v, want %v", v, beaten, newer)
	}
}

// FuzzParseHeld feeds arbitrary dk_store answers to the writer's
// decoder: no panic, and each entry it returns names a record a batch
// can carry and a valid version.
func FuzzParseHeld(f *testing.F) {
	f.Add(AppendAcks(nil, 2, nil, []error{nil, nil}, []Held{{1, store.Version{Time: 5, Writer: 6}}}))
	f.Add([]byte(ackOne))
	f.Add([]byte("d1:hli1ei2ei3eee2:okli1eee"))
	f.Fuzz(func(t *testing.T, x []byte) {
		for _, h := range ParseHeld(x) {
			if h.I < 0 || h.I >= maxHeld || h.Version.IsZero() {
				t.Fatalf("accepted %+v", h)
			}
		}
	})
}
