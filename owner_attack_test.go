package dhtkit_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit"
	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/kademlia"
	"github.com/dhtkit/dhtkit/krpc"
	"github.com/dhtkit/dhtkit/owner"
	"github.com/dhtkit/dhtkit/store"
)

// attacker sends hand-made datagrams to nodes from a socket of its own,
// with a write token fetched the way any host can (a BEP 44 get).
type attacker struct {
	t    *testing.T
	conn *net.UDPConn
	id   id.ID
	tid  uint16
}

func newAttacker(t *testing.T) *attacker {
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	a := &attacker{t: t, conn: conn}
	_, _ = rand.Read(a.id[:])
	return a
}

// ask sends q to `to` and returns the answer to it.
func (a *attacker) ask(to netip.AddrPort, q *krpc.Msg) *krpc.Msg {
	a.t.Helper()
	a.tid++
	q.T = []byte{byte(a.tid >> 8), byte(a.tid)}
	q.Y = krpc.Query
	q.A.Has |= krpc.HasID
	q.A.ID = a.id
	q.Net = []byte(dhtkit.DefaultNetwork)
	if _, err := a.conn.WriteToUDPAddrPort(q.Append(nil), to); err != nil {
		a.t.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	deadline := time.Now().Add(10 * time.Second)
	for {
		_ = a.conn.SetReadDeadline(deadline)
		k, _, err := a.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			a.t.Fatalf("no answer from %v: %v", to, err)
		}
		var m krpc.Msg
		if m.Decode(buf[:k]) == nil && bytes.Equal(m.T, q.T) {
			return &m
		}
	}
}

// store sends a dk_store of recs to `to` with a token of its own and
// reports whether the node took it (error answers: false).
func (a *attacker) store(to netip.AddrPort, recs ...store.Record) bool {
	a.t.Helper()
	get := a.ask(to, &krpc.Msg{Q: krpc.MethodGet, A: krpc.Args{Has: krpc.HasTarget, Target: id.FromString(recs[0].Key)}})
	if get.Y != krpc.Response || len(get.R.Token) == 0 {
		a.t.Fatalf("no token from %v: %+v", to, get)
	}
	m := a.ask(to, &krpc.Msg{Q: krpc.MethodStore, A: krpc.Args{Has: krpc.HasToken | krpc.HasX, Token: get.R.Token, X: kademlia.AppendRecords(nil, recs)}})
	return m.Y == krpc.Response && bytes.Contains(m.R.X, []byte("li1e"))
}

// TestOwnerSurvivesForgedStores attacks the replicas of an owned key with
// forged dk_store datagrams: an unsigned value, a plain tombstone, a
// value and a delete signed by another key, the owner's older value
// replayed, and a record whose signed version was changed. The owner's
// value survives every one on every replica, reads see it, and the
// owner's next write and signed delete still work. A key nobody owns,
// attacked the same way, is overwritten: the forged datagrams do reach
// the store.
func TestOwnerSurvivesForgedStores(t *testing.T) {
	nodes := ownerNetwork(t, 5)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	alice, _ := dhtkit.NewIdentity(bytes.Repeat([]byte{1}, 32))
	mallory, _ := dhtkit.NewIdentity(bytes.Repeat([]byte{9}, 32))
	alicePub := alice.SignPublic()
	const key = "greeting"

	put := func(n *dhtkit.Node, text string) []byte {
		t.Helper()
		cur, _ := n.Stat(ctx, key)
		env, err := dhtkit.SealWith(key, []byte(text), alice.Sign, nil, dhtkit.SignOptions{Version: owner.NextVersion(alicePub, time.Now(), cur.Version)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := n.Put(ctx, key, env, dhtkit.PutOptions{}); err != nil {
			t.Fatalf("the owner's put: %v", err)
		}
		return env
	}
	v1 := put(nodes[0], "alice v1")
	v2 := put(nodes[1], "alice v2")
	v2rec, _ := owner.Parse(v2)

	hs, err := nodes[2].Where(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	replicas := holding(nodes[2], hs)
	if len(replicas) < 3 {
		t.Fatalf("%d replicas hold %q", len(replicas), key)
	}

	ahead := store.Version{Time: uint64(time.Now().Add(30*time.Second).UnixMilli()) << 16, Writer: 1}
	exp := time.Now().Add(time.Hour)
	forged := map[string]store.Record{
		"unsigned value":   {Key: key, Value: []byte("\x00evil"), Version: ahead, Expires: exp},
		"plain tombstone":  {Key: key, Version: ahead, Deleted: true},
		"mallory's value":  signedRecord(t, key, mallory.Sign, ahead, "evil", false),
		"mallory's delete": signedRecord(t, key, mallory.Sign, ahead, "", true),
		"alice's v1 replayed with a new version": func() store.Record {
			e, _ := owner.Parse(v1)
			return store.Record{Key: key, Value: v1, Version: ahead, Expires: e.Expires}
		}(),
		"alice's v1 replayed": func() store.Record {
			e, _ := owner.Parse(v1)
			return store.Record{Key: key, Value: v1, Version: e.Version, Expires: e.Expires}
		}(),
	}
	atk := newAttacker(t)
	for name, rec := range forged {
		for _, r := range replicas {
			if atk.store(r, rec) && name != "alice's v1 replayed" { // an older version is "ok": the replica holds newer
				t.Errorf("%s: replica %v took it", name, r)
			}
		}
	}
	for _, n := range nodes {
		for _, rec := range n.Local() {
			if rec.Key == key && (rec.Version != v2rec.Version || !bytes.Equal(rec.Value, v2)) {
				t.Fatalf("node %v holds version %v (deleted %v), not the owner's %v", n.Addr(), rec.Version, rec.Deleted, v2rec.Version)
			}
		}
	}
	v, err := nodes[4].GetSignedBy(ctx, key, alicePub)
	if err != nil {
		t.Fatalf("get --signer after the attack: %v", err)
	}
	if o, err := dhtkit.Open(key, v.Data, nil); err != nil || string(o.Payload) != "alice v2" {
		t.Fatalf("read %q (%v), want alice v2", o.Payload, err)
	}
	if _, err := nodes[4].GetSignedBy(ctx, key, mallory.SignPublic()); !errors.Is(err, dhtkit.ErrSigner) {
		t.Fatalf("get signed by mallory: %v, want ErrSigner", err)
	}
	// Through a node, a write that is not the owner's fails too.
	// Every node says why, whether it holds the key or asked the replicas
	// (HTTP answers 403 on store.ErrRefused).
	for _, n := range nodes {
		if _, err := n.Put(ctx, key, []byte("unsigned"), dhtkit.PutOptions{}); !errors.Is(err, store.ErrRefused) {
			t.Fatalf("an unsigned put over the owner's value through %v: %v, want store.ErrRefused", n.Addr(), err)
		}
		if err := n.Delete(ctx, key); !errors.Is(err, store.ErrRefused) {
			t.Fatalf("an unsigned delete of the owner's value through %v: %v, want store.ErrRefused", n.Addr(), err)
		}
	}

	// The owner still writes, and deletes with a signed delete.
	put(nodes[3], "alice v3")
	if v, err := nodes[0].GetSignedBy(ctx, key, alicePub); err != nil {
		t.Fatal(err)
	} else if o, _ := dhtkit.Open(key, v.Data, nil); string(o.Payload) != "alice v3" {
		t.Fatalf("after the owner's write: %q", o.Payload)
	}
	cur, _ := nodes[2].Stat(ctx, key)
	tomb, err := dhtkit.SignDelete(key, alice.Sign, dhtkit.SignOptions{Version: owner.NextVersion(alicePub, time.Now(), cur.Version)})
	if err != nil {
		t.Fatal(err)
	}
	if err := nodes[2].DeleteSigned(ctx, key, tomb); err != nil {
		t.Fatalf("the owner's signed delete: %v", err)
	}
	if _, err := nodes[4].Get(ctx, key); !errors.Is(err, dhtkit.ErrNotFound) {
		t.Fatalf("get after the signed delete: %v", err)
	}
	// The deleted key stays the owner's: mallory cannot take it, even with
	// a newer version.
	te, _ := owner.Parse(tomb)
	past := store.Version{Time: te.Version.Time + 1, Writer: 1}
	for _, r := range replicas {
		if atk.store(r, signedRecord(t, key, mallory.Sign, past, "mine now", false)) {
			t.Errorf("replica %v let mallory claim the deleted key", r)
		}
	}

	// Control: the same forged datagram overwrites a key nobody owns.
	if _, err := nodes[0].Put(ctx, "open", []byte("hello"), dhtkit.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	// (The replicas' clocks observed the forged versions above, item 5 of
	// issue 10: this one must be newer still to win.)
	later := store.Version{Time: uint64(time.Now().Add(50*time.Second).UnixMilli()) << 16, Writer: 1}
	hs, _ = nodes[0].Where(ctx, "open")
	for _, r := range holding(nodes[0], hs) {
		if !atk.store(r, store.Record{Key: "open", Value: []byte("\x00evil"), Version: later, Expires: exp}) {
			t.Fatalf("control: the forged store of an unowned key was refused by %v", r)
		}
	}
	if v, err := nodes[4].Get(ctx, "open"); err != nil || string(v.Data) != "evil" {
		t.Fatalf("control: read %q, %v; the attack should have worked on an unowned key", v.Data, err)
	}

	// The chunks of a large value hold the data their keys name: a forged
	// chunk, or a signed claim on a chunk's key, is refused.
	large := bytes.Repeat([]byte("large value "), 3000)
	if _, err := nodes[0].Put(ctx, "large", large, dhtkit.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	forgedChunks := 0
	for _, n := range nodes {
		for _, rec := range n.Local() {
			if !strings.HasPrefix(rec.Key, "dhtkit/chunk/") {
				continue
			}
			// Newer than the chunk: only the rule stands in the way.
			newer := store.Version{Time: rec.Version.Time + 1, Writer: rec.Version.Writer}
			for _, bad := range []store.Record{
				{Key: rec.Key, Value: []byte("\x02garbage"), Version: newer, Expires: exp},
				signedRecord(t, rec.Key, mallory.Sign, newer, "mine", false),
			} {
				forgedChunks++
				// "ok" also answers a record the node did not take because
				// it holds a newer one (a write of the chunk meanwhile):
				// what it holds says whether the forgery went in.
				if atk.store(n.Addr(), bad) && holds(n, bad) {
					t.Fatalf("%v took a forged record for chunk %s", n.Addr(), rec.Key)
				}
			}
		}
	}
	if forgedChunks == 0 {
		t.Fatal("no chunk found to attack")
	}
	if v, err := nodes[3].Get(ctx, "large"); err != nil || !bytes.Equal(v.Data, large) {
		t.Fatalf("the large value after the chunk attack: %d bytes, %v", len(v.Data), err)
	}
}

// holds reports whether n's record of rec's key is rec's version.
func holds(n *dhtkit.Node, rec store.Record) bool {
	for _, r := range n.Local() {
		if r.Key == rec.Key {
			return r.Version == rec.Version
		}
	}
	return false
}

// holding returns the addresses of the replicas that hold a key, as n
// found them.
func holding(n *dhtkit.Node, hs []dhtkit.Holder) []netip.AddrPort {
	var out []netip.AddrPort
	for _, h := range hs {
		switch {
		case !h.Has:
		case h.Self:
			out = append(out, n.Addr())
		default:
			out = append(out, h.Node.Addr)
		}
	}
	return out
}

func signedRecord(t *testing.T, key string, priv ed25519.PrivateKey, v store.Version, payload string, del bool) store.Record {
	t.Helper()
	e := owner.Envelope{Version: v, Expires: time.Now().Add(time.Hour), Deleted: del}
	if !del {
		e.Payload = []byte(payload)
	}
	b, err := owner.Sign(key, priv, e)
	if err != nil {
		t.Fatal(err)
	}
	return store.Record{Key: key, Value: b, Version: v, Expires: e.Expires}
}

// ownerNetwork starts n joined nodes on 127.0.0.1.
func ownerNetwork(t *testing.T, n int) []*dhtkit.Node {
	t.Helper()
	kc := kademlia.DefaultConfig()
	kc.RateLimit = -1
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	nodes := make([]*dhtkit.Node, n)
	for i := range nodes {
		node, err := dhtkit.Listen(ctx, dhtkit.Config{Listen: "127.0.0.1:0", Kademlia: kc, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { node.Close() })
		nodes[i] = node
		if i > 0 {
			if err := node.Bootstrap(ctx, nodes[0].Addr()); err != nil {
				t.Fatal(err)
			}
		}
	}
	return nodes
}
