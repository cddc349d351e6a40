package replica

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/krpc"
	"github.com/dhtkit/dhtkit/store"
)

// FuzzListen feeds arbitrary payloads to the decoders of dk_listen and
// dk_notify: none may panic, a key that decodes is one a listener may
// name and round-trips, and a notification carries a bounded number of
// valid records that re-encode within a datagram.
func FuzzListen(f *testing.F) {
	f.Add(AppendListen(nil, "k"))
	f.Add(AppendListen(nil, store.ValueKey("k", 9)))
	f.Add(AppendNotify(nil, store.Record{Key: "k", Value: []byte("v"), Version: store.Version{Time: 1, Writer: 2}}))
	f.Add([]byte("d4:recsl" + strings.Repeat("d1:k1:k1:ti1e1:wi1ee", 5) + "ee"))
	f.Add([]byte("d1:k0:e"))
	f.Fuzz(func(t *testing.T, x []byte) {
		if key, err := ParseListen(x); err == nil {
			if key == "" || len(key) > store.DefaultMaxKeySize || store.IsValueKey(key) {
				t.Fatalf("accepted key %q", key)
			}
			if again, err := ParseListen(AppendListen(nil, key)); err != nil || again != key {
				t.Fatalf("key does not round-trip: %q, %q, %v", key, again, err)
			}
		} else if !errors.Is(err, ErrBadRecord) {
			t.Fatalf("error %v is not ErrBadRecord", err)
		}
		recs, err := ParseNotify(x)
		if err != nil {
			return
		}
		if len(recs) > maxNotifyRecords {
			t.Fatalf("%d records accepted", len(recs))
		}
		for _, r := range recs {
			if r.Key == "" || r.Version.IsZero() {
				t.Fatalf("invalid record accepted: %+v", r)
			}
		}
	})
}

// A notification of the largest record a put may write fits a datagram.
func TestNotifyFitsDatagram(t *testing.T) {
	rec := store.Record{
		Key:     store.ValueKey(strings.Repeat("k", store.DefaultMaxKeySize), 1<<63),
		Value:   make([]byte, 8<<10),
		Version: store.Version{Time: 1<<64 - 1, Writer: 1<<64 - 1},
		Expires: time.Unix(1<<40, 0),
	}
	x := AppendNotify(nil, rec)
	if len(x) > MaxPayload {
		t.Fatalf("a notification of the largest record is %d bytes, more than MaxPayload (%d)", len(x), MaxPayload)
	}
	recs, err := ParseNotify(x)
	if err != nil || len(recs) != 1 || recs[0].Key != rec.Key || len(recs[0].Value) != len(rec.Value) {
		t.Fatalf("round trip: %v, %d records", err, len(recs))
	}
}

func TestSubscriptionLearnsEachVersionOnce(t *testing.T) {
	now := time.Unix(1000, 0)
	s := NewSubscription("k")
	rec := func(rk string, v uint64) *store.Record {
		return &store.Record{Key: rk, Value: []byte("x"), Version: store.Version{Time: v, Writer: 1}, Expires: now.Add(time.Hour)}
	}
	for _, tc := range []struct {
		rec  *store.Record
		want bool
	}{
		{rec("k", 5), true},
		{rec("k", 5), false},                        // the same version again
		{rec("k", 4), false},                        // older
		{rec(store.ValueKey("k", 3), 1), true},      // another value of the key
		{rec("other", 9), false},                    // another key
		{rec(store.ValueKey("other", 3), 9), false}, // a value of another key
		{&store.Record{Key: "k", Version: store.Version{Time: 6, Writer: 1}, Deleted: true}, true},
		{&store.Record{Key: "k", Version: store.Version{Time: 7, Writer: 1}, Expires: now}, false}, // expired
	} {
		if got := s.Learn(tc.rec, now); got != tc.want {
			t.Errorf("Learn(%q v%d) = %v, want %v", tc.rec.Key, tc.rec.Version.Time, got, tc.want)
		}
	}
	// Missing lists the entries newer than what was learned.
	ents := []store.Entry{
		{Key: "k", Version: store.Version{Time: 6, Writer: 1}},
		{Key: store.ValueKey("k", 3), Version: store.Version{Time: 2, Writer: 1}},
		{Key: store.ValueKey("k", 4), Version: store.Version{Time: 1, Writer: 1}},
		{Key: store.ValueKey("k", 5), Version: store.Version{Time: 1, Writer: 1}, Deleted: true},
		{Key: "other", Version: store.Version{Time: 9, Writer: 1}},
	}
	if got := s.Missing(ents); fmt.Sprint(got) != fmt.Sprint([]string{store.ValueKey("k", 3), store.ValueKey("k", 4)}) {
		t.Errorf("Missing = %q", got)
	}
	// Only the replicas registered with may notify, until their
	// registration lapses.
	a := netip.MustParseAddrPort("10.0.0.1:1")
	s.Trust(a, now.Add(time.Minute))
	if !s.Trusted(a, now) || s.Trusted(netip.MustParseAddrPort("10.0.0.2:1"), now) || s.Trusted(a, now.Add(time.Minute)) {
		t.Error("Trusted is wrong")
	}
	s.Prune(now.Add(time.Minute))
	if s.Trusted(a, now) {
		t.Error("a lapsed registration survived Prune")
	}
}

func TestFetchBatchFitsAndUnfetchedEnds(t *testing.T) {
	var keys []string
	for i := range store.MaxValuesPerKey {
		keys = append(keys, store.ValueKey(strings.Repeat("k", store.DefaultMaxKeySize), store.ValueID(i+1)))
	}
	total := 0
	for rest := keys; len(rest) > 0; {
		var batch []string
		batch, rest = FetchBatch(rest)
		if len(batch) == 0 {
			t.Fatal("an empty batch")
		}
		if n := len(AppendFetch(nil, batch...)); n > MaxPayload {
			t.Fatalf("a batch of %d keys is %d bytes, more than MaxPayload", len(batch), n)
		}
		total += len(batch)
	}
	if total != len(keys) {
		t.Fatalf("batches hold %d keys, want %d", total, len(keys))
	}
	if got := Unfetched(keys[:3], nil); got != nil {
		t.Errorf("an empty answer leaves %q to ask again: it would loop", got)
	}
	if got := Unfetched(keys[:3], []store.Record{{Key: "other"}, {Key: keys[9]}}); got != nil {
		t.Errorf("an answer of keys not asked for leaves %q to ask again: it would loop", got)
	}
	if got := Unfetched(keys[:3], []store.Record{{Key: keys[1]}}); len(got) != 2 || got[0] != keys[0] || got[1] != keys[2] {
		t.Errorf("Unfetched = %q", got)
	}
}

// The table's bounds, without an engine: one source cannot hold more
// than ListenersPerSource registrations, one key more than
// ListenersPerKey, the table more than its limit; renewals count once;
// expiry and refusals drop registrations.
func TestListenersBounded(t *testing.T) {
	now := time.Unix(1000, 0)
	var l Listeners
	if err := l.Add(now, "k", id.ID{}, netip.MustParseAddrPort("10.0.0.1:1"), 0); !errors.Is(err, ErrListenersFull) {
		t.Fatalf("limit 0: %v", err)
	}
	one := netip.MustParseAddr("10.1.0.1")
	for i := range 1000 {
		if err := l.Add(now, fmt.Sprint("key-", i), id.ID{}, netip.AddrPortFrom(one, uint16(1000+i)), 500); err != nil {
			t.Fatal(err)
		}
	}
	if l.Len() != ListenersPerSource || l.Count() != l.Len() || l.Evicted() != 1000-ListenersPerSource {
		t.Fatalf("one source: %d kept (%d listed), %d evicted", l.Len(), l.Count(), l.Evicted())
	}
	l = Listeners{}
	for i := range 1000 {
		a := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 2, byte(i >> 8), byte(i)}), 1)
		_ = l.Add(now, "hot", id.ID{}, a, 500)
		_ = l.Add(now, "hot", id.ID{}, a, 500) // a renewal
	}
	if n := len(l.Live(now, "hot")); n != ListenersPerKey || l.Len() != ListenersPerKey {
		t.Fatalf("one key: %d live, %d kept", n, l.Len())
	}
	l = Listeners{}
	for i := range 1000 {
		a := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 3, byte(i >> 8), byte(i)}), 1)
		_ = l.Add(now, fmt.Sprint("key-", i), id.ID{}, a, 300)
	}
	if l.Len() != 300 || l.Count() != 300 {
		t.Fatalf("the limit: %d kept (%d listed)", l.Len(), l.Count())
	}
	// A refusal drops the registration; another error code does not.
	a := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 3, 3, 231}), 1) // key-999's
	n := Notify{Key: "key-999", Addr: a, X: []byte("x")}
	l.Sent(7, n)
	l.Refused(7, krpc.CodeServer)
	if !l.Registered(now, "key-999", a) {
		t.Fatal("a server error dropped the registration")
	}
	// A notification that goes unanswered is sent again, NotifyTries
	// times in all; an answered one is not.
	tid := uint16(20)
	l.Sent(tid, n)
	for sent := 1; ; sent++ {
		again, ok := l.TimedOut(tid)
		if ok != (sent < NotifyTries) {
			t.Fatalf("timed out after %d sends: again %v, want %v", sent, ok, sent < NotifyTries)
		}
		if !ok {
			break
		}
		if again.Key != n.Key || again.Addr != a || string(again.X) != "x" {
			t.Fatalf("sent again: %+v", again)
		}
		tid++
		l.Sent(tid, again)
	}
	l.Sent(30, n)
	l.Answered(30)
	if _, ok := l.TimedOut(30); ok {
		t.Fatal("an answered notification is sent again")
	}
	l.Sent(8, n)
	l.Refused(8, CodeNotListening)
	if l.Registered(now, "key-999", a) || l.Len() != 299 {
		t.Fatalf("a listener that stopped is still registered (%d kept)", l.Len())
	}
	l.Expire(now.Add(ListenTTL))
	if l.Len() != 0 || l.Count() != 0 {
		t.Fatalf("%d registrations past their expiry", l.Len())
	}
}
