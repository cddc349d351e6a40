package kademlia

import (
	"bytes"
	"errors"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/krpc"
	"github.com/dhtkit/dhtkit/replica"
	"github.com/dhtkit/dhtkit/store"
)

// isFetchBatch reports whether a datagram is a batched dk_fetch.
func isFetchBatch(data []byte) bool { return bytes.Contains(data, []byte("1:ci1e2:ksl")) }

// burstGets starts gets of keys prefix-0 .. prefix-(count-1) on coord at
// once, runs the network until they all finish, and returns their results
// in order.
func burstGets(t *testing.T, n *testNet, coord *testNode, prefix string, count int) []Result {
	t.Helper()
	ops := make([]OpID, count)
	for i := range ops {
		ops[i] = coord.e.Start(n.Now, KVGet{Key: prefix + "-" + strconv.Itoa(i)})
	}
	n.Flush(coord)
	done := func() bool {
		for _, op := range ops {
			if _, ok := coord.results[op]; !ok {
				return false
			}
		}
		return true
	}
	if !n.RunUntil(time.Minute, done) {
		t.Fatal("the gets did not finish within a virtual minute")
	}
	out := make([]Result, count)
	for i, op := range ops {
		out[i] = coord.results[op]
	}
	return out
}

// checkGets fails the test unless every get found its key's value.
func checkGets(t *testing.T, prefix string, rs []Result) {
	t.Helper()
	for i, r := range rs {
		key := prefix + "-" + strconv.Itoa(i)
		if r.Err != nil || r.Record == nil || string(r.Record.Value) != "v-"+key {
			t.Errorf("get %s: %v, %+v", key, r.Err, r.Record)
		}
	}
}

// putAll writes prefix-0 .. prefix-(count-1) from coord and waits for
// every replica to hold them; coord's next operations go one hop.
func putAll(t *testing.T, n *testNet, coord *testNode, prefix string, count int) {
	t.Helper()
	for i, r := range burstPuts(t, n, coord, prefix, count) {
		if r.Err != nil {
			t.Fatalf("put %d: %v", i, r.Err)
		}
	}
	n.Run(time.Second) // the rest of each set written, every member heard from lately
}

// Gets started together share a dk_fetch per replica: 32 gets on 5 nodes
// send fewer datagrams per get than the same gets one at a time, and each
// returns its own key's value.
func TestBatchedGetsShareDatagrams(t *testing.T) {
	n := newTestNet(t, 61)
	n.build(5, Config{SyncInterval: time.Hour})
	coord := n.Order[0]
	warm(n, coord)
	const count = 32
	putAll(t, n, coord, "share", count)

	// One at a time: each get's reads go alone, as before batching.
	sent, fetches, hops := n.Sent, coord.e.stats.QueriesOut[krpc.MethodFetch], coord.e.stats.OneHops
	for i := range count {
		key := "share-" + strconv.Itoa(i)
		if r := n.do(coord, KVGet{Key: key}); r.Err != nil || string(r.Record.Value) != "v-"+key {
			t.Fatalf("get %s alone: %v", key, r.Err)
		}
	}
	if coord.e.stats.FetchBatches != 0 {
		t.Fatalf("%d batches of gets run one at a time", coord.e.stats.FetchBatches)
	}
	alone, aloneFetches := n.Sent-sent, coord.e.stats.QueriesOut[krpc.MethodFetch]-fetches

	sent, fetches = n.Sent, coord.e.stats.QueriesOut[krpc.MethodFetch]
	checkGets(t, "share", burstGets(t, n, coord, "share", count))
	together, togetherFetches := n.Sent-sent, coord.e.stats.QueriesOut[krpc.MethodFetch]-fetches
	if coord.e.stats.OneHops != hops+2*count {
		t.Fatalf("%d of %d gets went one hop: the test needs them all to", coord.e.stats.OneHops-hops, 2*count)
	}
	t.Logf("datagrams per get: %.2f alone, %.2f together; dk_fetch per get: %.2f, %.2f; %d batches of %d reads",
		float64(alone)/count, float64(together)/count, float64(aloneFetches)/count, float64(togetherFetches)/count,
		coord.e.stats.FetchBatches, coord.e.stats.BatchedReads)
	// Alone, each get reads from 1 or 2 other replicas: 32 at least.
	// Together, each of the 4 other nodes gets a batch or two.
	if togetherFetches > 12 || aloneFetches < count {
		t.Errorf("dk_fetches: %d alone, %d together; want at least %d and at most 12", aloneFetches, togetherFetches, count)
	}
	if 2*together > alone {
		t.Errorf("%d datagrams together, %d alone: want at most half", together, alone)
	}
	if coord.e.stats.BatchedReads < 2*coord.e.stats.FetchBatches {
		t.Errorf("stats: %d batches of %d reads", coord.e.stats.FetchBatches, coord.e.stats.BatchedReads)
	}
	if len(coord.e.ops) != 0 {
		t.Errorf("%d operations left on the coordinator", len(coord.e.ops))
	}
}

// A batch whose first datagram is lost is sent again at the soft timeout;
// one that is never answered fails every read it carries, each get asking
// its next replica instead, and ends.
func TestBatchedGetsLostBatch(t *testing.T) {
	n := newTestNet(t, 62)
	n.build(5, Config{SyncInterval: time.Hour})
	coord, dead := n.Order[0], n.Order[1]
	warm(n, coord)
	const count = 32
	putAll(t, n, coord, "lost", count)
	dropped := map[netip.AddrPort]bool{}
	n.Drop = func(from, to netip.AddrPort, data []byte) bool {
		if from != coord.addr || !isFetchBatch(data) {
			return false
		}
		first := !dropped[to]
		dropped[to] = true
		return first || to == dead.addr // the retry goes through, but to dead
	}
	checkGets(t, "lost", burstGets(t, n, coord, "lost", count))
	if len(dropped) < 2 || !dropped[dead.addr] {
		t.Fatalf("batches went to %v: the test needs batches to the dead node and to others", dropped)
	}
	n.Run(time.Minute)
	if len(coord.e.ops) != 0 {
		t.Errorf("%d operations left on the coordinator after the batches to %v timed out", len(coord.e.ops), dead.addr)
	}
}

// A replica answers a batch of reads key by key: the record of a key it
// holds and is a replica of, not found for one it is a replica of and
// does not hold, codeNotReplica for the others; a batch over the bound is
// refused whole.
func TestFetchBatchPerKey(t *testing.T) {
	n := newTestNet(t, 63)
	n.build(6, Config{})
	srv, from := n.Order[0], n.Order[1]
	var mine, others []string
	for k := 0; len(mine) < 4 || len(others) < 2; k++ {
		key := "each-" + strconv.Itoa(k)
		if srv.e.isReplica(id.FromString(key)) {
			mine = append(mine, key)
		} else {
			others = append(others, key)
		}
	}
	v := store.Version{Time: uint64(n.Now.UnixMilli()) << 16, Writer: from.e.clock.Writer}
	for _, key := range append(mine[:2:2], others...) { // mine[2:] stay missing
		if _, err := srv.e.Store().Put(store.Record{Key: key, Value: []byte("v-" + key), Version: v, Expires: n.Now.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	keys := []string{mine[0], others[0], mine[2], mine[1], others[1], mine[3]}
	q := krpc.Msg{Y: krpc.Query, T: []byte("fb"), Q: krpc.MethodFetch}
	q.A.Has = krpc.HasID | krpc.HasX
	q.A.ID = from.e.ID()
	q.A.X = replica.AppendFetchEach(nil, keys)
	back := n.Inject(srv, from.addr, encodeMsg(t, &q))
	if len(back) != 1 {
		t.Fatalf("%d answers, want 1", len(back))
	}
	var m krpc.Msg
	if err := m.Decode(back[0]); err != nil || m.Y != krpc.Response {
		t.Fatalf("answer %q: %v", back[0], err)
	}
	codes, recs, ok := replica.ParseFetchAnswers(m.R.X, nil, nil)
	if want := []int64{1, codeNotReplica, 0, 1, codeNotReplica, 0}; !ok || !equalCodes(codes, want) {
		t.Errorf("codes %v (ok %v), want %v", codes, ok, want)
	}
	if len(recs) != 2 || recs[0].Key != mine[0] || recs[1].Key != mine[1] || string(recs[1].Value) != "v-"+mine[1] {
		t.Errorf("records %+v, want those of %s and %s", recs, mine[0], mine[1])
	}
	// More keys than a replica checks for one datagram: refused whole.
	many := make([]string, maxFetchBatch+1)
	for i := range many {
		many[i] = mine[0]
	}
	q.A.X = replica.AppendFetchEach(nil, many)
	back = n.Inject(srv, from.addr, encodeMsg(t, &q))
	if len(back) != 1 || m.Decode(back[0]) != nil || m.Y != krpc.Error || m.E.Code != krpc.CodeProtocol {
		t.Errorf("a batch of %d: %q, want a protocol error", len(many), back)
	}
	// A single one-hop fetch is still the one-key dk_fetch it was.
	if x := replica.AppendFetch(nil, mine[0]); string(x) != "d1:k"+strconv.Itoa(len(mine[0]))+":"+mine[0]+"e" {
		t.Errorf("one key's dk_fetch: %q", x)
	}
}

// A coordinator whose table misses two nodes next to one key batches that
// key's read with others': the members that are not its replicas refuse
// that key alone, its get falls back to a lookup and finds the value, and
// the other gets of the same batches find theirs.
func TestBatchedGetNotReplicaFallsBack(t *testing.T) {
	n := newTestNet(t, 64)
	n.build(6, Config{SyncInterval: time.Hour})
	key := "stale-0"
	target := id.FromString(key)
	coord := n.Order[0]
	var newcomers []*testNode
	for i := range 2 {
		x := target
		x[19] ^= byte(1 + i)
		newcomers = append(newcomers, n.add(Config{ID: x, Bootstrap: []netip.AddrPort{n.Order[1].addr}, SyncInterval: time.Hour}))
	}
	if !n.RunUntil(5*time.Minute, func() bool { return newcomers[0].e.boot.joined && newcomers[1].e.boot.joined }) {
		t.Fatal("the newcomers did not join")
	}
	n.Run(30 * time.Second)
	const count = 24
	putAll(t, n, coord, "stale", count) // the stale key's put falls back and lands on the newcomers
	for _, nn := range newcomers {
		coord.e.table.Remove(nn.e.ID())
	}
	if !coord.e.oneHopCovered(n.Now, target) {
		t.Fatal("the coordinator's table does not cover the key: the test needs it to try one hop")
	}
	refused := 0 // keys a batch's answer refused as "not a replica"
	coord.e.cfg.Tap = func(dir Direction, _ netip.AddrPort, m *krpc.Msg) {
		if dir == In && m.Y == krpc.Response && bytes.Contains(m.R.X, []byte("i"+strconv.Itoa(codeNotReplica)+"e")) {
			refused++
		}
	}
	fallbacks := coord.e.stats.OneHopFallbacks
	checkGets(t, "stale", burstGets(t, n, coord, "stale", count))
	if coord.e.stats.FetchBatches == 0 || refused == 0 {
		t.Fatalf("%d batches, %d refusing a key as not a replica: the test needs the stale key's read batched", coord.e.stats.FetchBatches, refused)
	}
	if coord.e.stats.OneHopFallbacks == fallbacks {
		t.Error("no get fell back to a lookup")
	}
}

// A replica of an older version reads a batch as a fetch of several keys
// and answers without a code per key: each get counts that as its
// member's failure (never as not found: such an answer may leave keys
// out) and reads from another replica, and every get finds its value.
func TestBatchedGetsOlderReplica(t *testing.T) {
	n := newTestNet(t, 65)
	n.build(5, Config{SyncInterval: time.Hour})
	coord, old := n.Order[0], n.Order[1]
	warm(n, coord)
	const count = 32
	putAll(t, n, coord, "old", count)
	// What an older replica serves: the batch without its "c".
	served := 0
	old.e.cfg.Tap = func(dir Direction, _ netip.AddrPort, m *krpc.Msg) {
		if dir == In && m.Y == krpc.Query && m.Q == krpc.MethodFetch && bytes.HasPrefix(m.A.X, []byte("d1:ci1e")) {
			m.A.X = append([]byte("d"), m.A.X[len("d1:ci1e"):]...)
			served++
		}
	}
	rs := burstGets(t, n, coord, "old", count)
	checkGets(t, "old", rs)
	if served == 0 {
		t.Fatal("no batch reached the older replica: the test needs one")
	}
	failed := 0 // gets that hold the older replica's answer as its failure
	for _, r := range rs {
		for _, h := range r.Holders {
			if h.Node.ID != old.e.ID() {
				continue
			}
			if errors.Is(h.Err, errFetchUnchecked) {
				failed++
			} else if h.Err == nil {
				t.Errorf("%s: the older replica's answer counted: %+v", r.Record.Key, h)
			}
		}
	}
	if failed == 0 {
		t.Error("no get counted the older replica's answer as a failure")
	}
}
