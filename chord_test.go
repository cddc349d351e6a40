package dhtkit

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/chord"
	"github.com/dhtkit/dhtkit/id"
)

// chordTestSuccessors is the successor list length of the test nodes:
// chord's default.
const chordTestSuccessors = 8

// chordTestConfig is a loopback Chord node that stabilizes every few
// milliseconds, so that a test ring converges in well under a second.
func chordTestConfig() Config {
	cfg := testConfig()
	cfg.Protocol = Chord
	cfg.Chord = chord.Config{
		// The default lengths, longer than the test rings: a successor
		// list that covers the whole ring wraps around in answers.
		Successors:               chordTestSuccessors,
		K:                        chordTestSuccessors,
		StabilizeInterval:        20 * time.Millisecond,
		FixFingersInterval:       20 * time.Millisecond,
		CheckPredecessorInterval: 50 * time.Millisecond,
		QueryTimeout:             300 * time.Millisecond,
	}
	return cfg
}

// chordRing starts n Chord nodes joining through the first and waits
// until every node's successor list holds the nodes that follow it on
// the ring, in ring order.
func chordRing(t *testing.T, n int) []*Node {
	t.Helper()
	first := newNode(t, chordTestConfig())
	nodes := []*Node{first}
	for range n - 1 {
		cfg := chordTestConfig()
		cfg.Bootstrap = []string{first.Addr().String()}
		nodes = append(nodes, newNode(t, cfg))
	}
	ids := make([]id.ID, n)
	for i, nd := range nodes {
		ids[i] = nd.ID()
	}
	slices.SortFunc(ids, id.Compare)
	next := func(x id.ID) id.ID {
		i, _ := slices.BinarySearchFunc(ids, x, id.Compare)
		return ids[(i+1)%n]
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		converged := true
		for _, nd := range nodes {
			var succ []id.ID
			nd.rt.Inspect(func() {
				for _, s := range nd.chord.Successors() {
					succ = append(succ, s.ID)
				}
			})
			x := nd.ID()
			for range min(n-1, chordTestSuccessors) {
				x = next(x)
				if len(succ) == 0 || succ[0] != x {
					converged = false
					break
				}
				succ = succ[1:]
			}
		}
		if converged {
			return nodes
		}
		if time.Now().After(deadline) {
			t.Fatalf("the ring of %d Chord nodes did not converge", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestChordPutGetOverUDP(t *testing.T) {
	nodes := chordRing(t, 5)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	want := []byte("hello, ring")
	ver, err := nodes[1].Put(ctx, "greeting", want, PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	v, err := nodes[3].Get(ctx, "greeting")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(v.Data, want) || v.Version != ver {
		t.Fatalf("get = %q version %v, want %q version %v", v.Data, v.Version, want, ver)
	}
	holders, err := nodes[4].Where(ctx, "greeting")
	if err != nil {
		t.Fatal(err)
	}
	var holding int
	for _, h := range holders {
		if h.Version == ver {
			holding++
		}
	}
	if holding < 2 {
		t.Fatalf("%d replicas hold the value (%+v), want a write quorum of 2 at least", holding, holders)
	}

	// The deleter reads first: its clock then orders the tombstone after
	// the value even within the millisecond the value was written in.
	if _, err := nodes[0].Get(ctx, "greeting"); err != nil {
		t.Fatal(err)
	}
	if err := nodes[0].Delete(ctx, "greeting"); err != nil {
		t.Fatal(err)
	}
	if _, err := nodes[2].Get(ctx, "greeting"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get after delete: err = %v, want ErrNotFound", err)
	}
}

func TestChordNodeViews(t *testing.T) {
	nodes := chordRing(t, 3)
	n := nodes[0]
	if n.Protocol() != Chord || n.Network() != chord.DefaultNetwork && n.Network() != chordTestConfig().Network {
		t.Fatalf("protocol %q network %q", n.Protocol(), n.Network())
	}
	buckets := n.Routing()
	if len(buckets) != 1 {
		t.Fatalf("%d buckets, want the one of the ring's neighbours", len(buckets))
	}
	var got []id.ID
	for _, c := range buckets[0].Contacts {
		got = append(got, c.ID)
	}
	for _, other := range nodes[1:] {
		if !slices.Contains(got, other.ID()) {
			t.Errorf("routing view %v lacks node %v", short(got), other.ID())
		}
	}
	st := n.Stats()
	var queries uint64
	for _, q := range st.QueriesIn {
		queries += q
	}
	if st.BytesIn == 0 || queries == 0 {
		t.Errorf("converted stats count no traffic: %+v", st)
	}
	if cs, ok := n.ChordStats(); !ok || cs.SuccessorChanges == 0 {
		t.Errorf("ChordStats = %+v, %v", cs, ok)
	}
	if a, votes := n.ExternalAddr(); a.IsValid() || votes != 0 {
		t.Errorf("ExternalAddr = %v, %d: Chord has none", a, votes)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if got, err := n.Ping(ctx, nodes[1].Addr()); err != nil || got != nodes[1].ID() {
		t.Errorf("ping = %v, %v; want %v", got, err, nodes[1].ID())
	}
	if _, err := n.GetPeers(ctx, id.FromString("x")); !errors.Is(err, chord.ErrUnsupported) {
		t.Errorf("get_peers on Chord: err = %v, want chord.ErrUnsupported", err)
	}
	if err := n.Announce(ctx, id.FromString("x"), 80); !errors.Is(err, chord.ErrUnsupported) {
		t.Errorf("announce on Chord: err = %v, want chord.ErrUnsupported", err)
	}
}

// TestChordWatchPushed: a Chord node's Watch is pushed each version by
// the key's replicas, as Kademlia's: the current value first, then
// three versions written back to back, each reported (a poll would see
// the last only).
func TestChordWatchPushed(t *testing.T) {
	nodes := chordRing(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := nodes[0].Put(ctx, "k", []byte("zero"), PutOptions{}); err != nil {
		t.Fatal(err)
	}
	ch, err := nodes[1].Watch(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	next := func(want string) {
		t.Helper()
		select {
		case v := <-ch:
			if string(v.Data) != want {
				t.Fatalf("watch reported %q, want %q", v.Data, want)
			}
		case <-ctx.Done():
			t.Fatalf("watch did not report %q", want)
		}
	}
	next("zero")
	versions := []string{"one", "two", "three"}
	for _, v := range versions {
		// The same writer: its clock orders the versions even within
		// one millisecond.
		if _, err := nodes[0].Put(ctx, "k", []byte(v), PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, v := range versions {
		next(v)
	}
	if err := nodes[2].Delete(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	select {
	case v := <-ch:
		if !v.Version.IsZero() || v.Data != nil {
			t.Fatalf("after the delete: %+v, want a zero Value", v)
		}
	case <-ctx.Done():
		t.Fatal("watch did not report the delete")
	}
}

func TestListenRejectsProtocol(t *testing.T) {
	for _, tc := range []struct {
		protocol, network string
	}{
		{"pastry", DefaultNetwork},
		{Chord, Mainline},
	} {
		cfg := testConfig()
		cfg.Protocol, cfg.Network = tc.protocol, tc.network
		if n, err := Listen(context.Background(), cfg); err == nil {
			n.Close()
			t.Errorf("Listen with protocol %q on network %q: no error", tc.protocol, tc.network)
		}
	}
}
