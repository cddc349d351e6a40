package owner

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/store"
)

var (
	alice = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32))
	bob   = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{2}, 32))
	carol = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{3}, 32))
	t0    = time.UnixMilli(1_800_000_000_000)
)

// signed returns the record of key signed by priv at version time t.
func signed(t *testing.T, key string, priv ed25519.PrivateKey, vt uint64, payload string, del bool, heir ed25519.PublicKey) store.Record {
	t.Helper()
	e := Envelope{
		Version: store.Version{Time: vt, Writer: Writer(priv.Public().(ed25519.PublicKey))},
		Expires: t0.Add(time.Hour),
		Deleted: del,
		Heir:    heir,
	}
	if !del {
		e.Payload = []byte(payload)
	}
	b, err := Sign(key, priv, e)
	if err != nil {
		t.Fatal(err)
	}
	return store.Record{Key: key, Value: b, Version: e.Version, Expires: e.Expires}
}

func plain(key string, vt uint64, v string) store.Record {
	return store.Record{Key: key, Value: []byte("\x00" + v), Version: store.Version{Time: vt, Writer: 7}, Expires: t0.Add(time.Hour)}
}

func tombstone(key string, vt uint64) store.Record {
	return store.Record{Key: key, Version: store.Version{Time: vt, Writer: 7}, Deleted: true}
}

func TestAdmit(t *testing.T) {
	bobPub := bob.Public().(ed25519.PublicKey)
	aliceV1 := signed(t, "k", alice, 100, "one", false, nil)
	for _, tc := range []struct {
		name string
		old  *store.Record
		new  func() store.Record
		want error
	}{
		{"unsigned over nothing", nil, func() store.Record { return plain("k", 10, "x") }, nil},
		{"unsigned over unsigned", ptr(plain("k", 10, "x")), func() store.Record { return plain("k", 11, "y") }, nil},
		{"signed claims an unowned key", ptr(plain("k", 10, "x")), func() store.Record { return aliceV1 }, nil},
		{"signed over a tombstone", ptr(tombstone("k", 10)), func() store.Record { return aliceV1 }, nil},
		{"higher version by the owner", &aliceV1, func() store.Record { return signed(t, "k", alice, 101, "two", false, nil) }, nil},
		{"signed delete by the owner", &aliceV1, func() store.Record { return signed(t, "k", alice, 101, "", true, nil) }, nil},
		{"owner writes over its signed delete", ptr(signed(t, "k", alice, 101, "", true, nil)), func() store.Record { return signed(t, "k", alice, 102, "back", false, nil) }, nil},
		{"unsigned over signed", &aliceV1, func() store.Record { return plain("k", 1<<40, "evil") }, ErrNotOwner},
		{"plain tombstone over signed", &aliceV1, func() store.Record { return tombstone("k", 1<<40) }, ErrNotOwner},
		{"plain tombstone over a signed delete", ptr(signed(t, "k", alice, 101, "", true, nil)), func() store.Record { return tombstone("k", 1<<40) }, ErrNotOwner},
		{"another signer", &aliceV1, func() store.Record { return signed(t, "k", bob, 1<<40, "evil", false, nil) }, ErrNotOwner},
		{"another signer's delete", &aliceV1, func() store.Record { return signed(t, "k", bob, 1<<40, "", true, nil) }, ErrNotOwner},
		{"the owner's older value replayed", ptr(signed(t, "k", alice, 101, "two", false, nil)), func() store.Record { return aliceV1 }, ErrStale},
		{"the owner's same version replayed", &aliceV1, func() store.Record { return aliceV1 }, ErrStale},
		{"forged: payload altered", nil, func() store.Record {
			r := signed(t, "k", alice, 100, "one", false, nil)
			r.Value[len(r.Value)-1] ^= 1
			return r
		}, ErrForged},
		{"forged: moved under another key", nil, func() store.Record {
			r := signed(t, "other", alice, 100, "one", false, nil)
			r.Key = "k"
			return r
		}, ErrForged},
		{"forged: version changed on the record", &aliceV1, func() store.Record {
			r := aliceV1
			r.Version.Time = 1 << 40
			return r
		}, ErrForged},
		{"forged: expiry extended", nil, func() store.Record {
			r := aliceV1
			r.Expires = r.Expires.Add(time.Hour)
			return r
		}, ErrForged},
		{"forged: envelope with the owner's key and a bad signature", &aliceV1, func() store.Record {
			r := signed(t, "k", bob, 1<<40, "evil", false, nil)
			copy(r.Value[4:], alice.Public().(ed25519.PublicKey))
			r.Version.Writer = Writer(alice.Public().(ed25519.PublicKey))
			return r
		}, ErrForged},
		{"forged: truncated", nil, func() store.Record {
			r := aliceV1
			r.Value = r.Value[:50]
			return r
		}, ErrForged},
		{"heir named by the owner", ptr(signed(t, "k", alice, 101, "to bob", false, bobPub)), func() store.Record { return signed(t, "k", bob, 102, "bob's", false, nil) }, nil},
		{"the old owner after the heir took over", ptr(signed(t, "k", bob, 102, "bob's", false, nil)), func() store.Record { return signed(t, "k", alice, 103, "alice again", false, nil) }, ErrNotOwner},
		{"a stranger when an heir is named", ptr(signed(t, "k", alice, 101, "to bob", false, bobPub)), func() store.Record { return signed(t, "k", carol, 102, "carol", false, nil) }, ErrNotOwner},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Admit(tc.old, tc.new())
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("Admit = %v, want %v", err, tc.want)
			}
		})
	}
}

func ptr(r store.Record) *store.Record { return &r }

func TestSignRefuses(t *testing.T) {
	v := store.Version{Time: 1, Writer: 1}
	for name, e := range map[string]Envelope{
		"no version":           {Expires: t0},
		"no expiry":            {Version: v},
		"delete with payload":  {Version: v, Expires: t0, Deleted: true, Payload: []byte("x")},
		"heir of a wrong size": {Version: v, Expires: t0, Heir: make([]byte, 5)},
		"chunked delete":       {Version: v, Expires: t0, Deleted: true, Chunked: true},
	} {
		if _, err := Sign("k", alice, e); err == nil {
			t.Errorf("%s: Sign succeeded", name)
		}
	}
}

func TestNextVersion(t *testing.T) {
	pub := alice.Public().(ed25519.PublicKey)
	v := NextVersion(pub, t0, store.Version{})
	if v.Physical() != t0 || v.Writer != Writer(pub) {
		t.Fatalf("NextVersion = %v", v)
	}
	ahead := store.Version{Time: v.Time + 5000<<16, Writer: 1}
	if w := NextVersion(pub, t0, ahead); !w.Newer(ahead) {
		t.Fatalf("NextVersion(%v) = %v: not newer", ahead, w)
	}
}

// TestStoreHook runs the rule where replicas run it: inside Put and
// PutAll of both stores.
func TestStoreHook(t *testing.T) {
	bolt, err := store.OpenBolt(filepath.Join(t.TempDir(), "v.db"), store.Config{Admit: Admit})
	if err != nil {
		t.Fatal(err)
	}
	defer bolt.Close()
	for name, st := range map[string]store.Store{"memory": store.NewMemory(store.Config{Admit: Admit}), "bolt": bolt} {
		t.Run(name, func(t *testing.T) {
			owned := signed(t, "k", alice, 100, "mine", false, nil)
			if ok, err := st.Put(owned); !ok || err != nil {
				t.Fatalf("owner's put: %v %v", ok, err)
			}
			for _, r := range []store.Record{plain("k", 1<<40, "evil"), tombstone("k", 1<<40), signed(t, "k", bob, 1<<40, "evil", false, nil)} {
				if ok, err := st.Put(r); ok || !errors.Is(err, store.ErrRefused) || !errors.Is(err, ErrNotOwner) {
					t.Fatalf("Put = %v, %v; want refused", ok, err)
				}
			}
			// A batch (anti-entropy, hand-over) stops at the refused record
			// and keeps the ones before it.
			applied, err := st.PutAll([]store.Record{plain("j", 5, "fine"), tombstone("k", 1<<40)})
			if !errors.Is(err, ErrNotOwner) || len(applied) != 1 || !applied[0] {
				t.Fatalf("PutAll = %v, %v", applied, err)
			}
			got, _, _ := st.Get("k")
			if !bytes.Equal(got.Value, owned.Value) {
				t.Fatal("the owner's value was replaced")
			}
			next := signed(t, "k", alice, 101, "", true, nil)
			if ok, err := st.Put(next); !ok || err != nil {
				t.Fatalf("owner's signed delete: %v %v", ok, err)
			}
			if ok, err := st.Put(owned); ok || err != nil { // older: not applied, as any older write
				t.Fatalf("replay of the older value: %v %v", ok, err)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	r := signed(&testing.T{}, "k", alice, 100, "v", false, alice.Public().(ed25519.PublicKey))
	f.Add(r.Value)
	f.Add([]byte("DKS\x02"))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := Parse(b)
		if err != nil {
			return
		}
		if len(e.Signer) != 32 || len(e.Sig) != 64 || e.Version.IsZero() || (e.Deleted && (len(e.Payload) > 0 || e.Chunked)) {
			t.Fatalf("Parse accepted an inconsistent envelope: %+v", e)
		}
		_, _ = Open("k", b)
	})
}

// BenchmarkAdmit is the cost a replica pays per record: a signed one is
// verified (ed25519), an unsigned one only looked at.
func BenchmarkAdmit(b *testing.B) {
	t := &testing.T{}
	old := signed(t, "k", alice, 100, "old", false, nil)
	next := signed(t, "k", alice, 101, string(bytes.Repeat([]byte("v"), 1000)), false, nil)
	b.Run("signed", func(b *testing.B) {
		for b.Loop() {
			if err := Admit(&old, next); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("unsigned", func(b *testing.B) {
		r := plain("j", 5, "value")
		for b.Loop() {
			if err := Admit(nil, r); err != nil {
				b.Fatal(err)
			}
		}
	})
}
