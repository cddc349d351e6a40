package kademlia

import (
	"bytes"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/krpc"
	"github.com/dhtkit/dhtkit/replica"
	"github.com/dhtkit/dhtkit/store"
)

// isBatch reports whether a datagram is a batched dk_store.
func isBatch(data []byte) bool { return bytes.Contains(data, []byte("1:ci1e1:oi1e4:recsl")) }

// burstPuts starts puts of keys prefix-0 .. prefix-(count-1) on coord at
// once, runs the network until they all finish, and returns their results
// in order.
func burstPuts(t *testing.T, n *testNet, coord *testNode, prefix string, count int) []Result {
	t.Helper()
	ops := make([]OpID, count)
	for i := range ops {
		key := prefix + "-" + strconv.Itoa(i)
		ops[i] = coord.e.Start(n.Now, KVPut{Key: key, Value: []byte("v-" + key)})
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
		t.Fatal("the puts did not finish within a virtual minute")
	}
	out := make([]Result, count)
	for i, op := range ops {
		out[i] = coord.results[op]
	}
	return out
}

// warm makes coord's next operations one hop (oneHopFresh).
func warm(n *testNet, coord *testNode) {
	n.do(coord, KVGet{Key: "warm-up"})
}

// held counts the keys prefix-i that are on all of their 3 replicas.
func held(n *testNet, prefix string, count int) int {
	all := 0
	for i := range count {
		key := prefix + "-" + strconv.Itoa(i)
		h := 0
		for _, tn := range closestLive(n, key, 3) {
			if r, ok, _ := tn.e.Store().Get(key); ok && string(r.Value) == "v-"+key {
				h++
			}
		}
		if h == 3 {
			all++
		}
	}
	return all
}

// Puts started together share a dk_store per replica: 32 puts on 5 nodes
// go out as a few datagrams, not one per put per replica, and every put
// is acknowledged and lands on its 3 replicas.
func TestBatchedPutsShareDatagrams(t *testing.T) {
	n := newTestNet(t, 51)
	n.build(5, Config{SyncInterval: time.Hour})
	coord := n.Order[0]
	warm(n, coord)
	before, hops := coord.e.stats.QueriesOut[krpc.MethodStore], coord.e.stats.OneHops
	const count = 32
	for i, r := range burstPuts(t, n, coord, "share", count) {
		if r.Err != nil || r.Acks < 2 {
			t.Fatalf("put %d: %v (%d acks)", i, r.Err, r.Acks)
		}
	}
	if coord.e.stats.OneHops != hops+count {
		t.Fatalf("%d of %d puts went one hop: the test needs them all to", coord.e.stats.OneHops-hops, count)
	}
	// Unbatched, each put writes to its 2 or 3 remote replicas: 64 at
	// least. Batched, each of the 4 other nodes gets about 32×3/5 writes,
	// two batches of at most maxStoreBatch.
	stores := coord.e.stats.QueriesOut[krpc.MethodStore] - before
	if stores > 12 {
		t.Errorf("%d puts sent %d dk_stores, want at most 12", count, stores)
	}
	if coord.e.stats.StoreBatches == 0 || coord.e.stats.BatchedWrites < 2*coord.e.stats.StoreBatches {
		t.Errorf("stats: %d batches of %d writes", coord.e.stats.StoreBatches, coord.e.stats.BatchedWrites)
	}
	n.Run(5 * time.Second)
	if h := held(n, "share", count); h != count {
		t.Errorf("%d of %d records on all 3 of their replicas", h, count)
	}
	if len(coord.e.ops) != 0 {
		t.Errorf("%d operations left on the coordinator", len(coord.e.ops))
	}
}

// A batch whose first datagram is lost is sent again at the soft timeout;
// one that is never answered fails every write it carries, each put
// counting it as a member that did not answer (left to sync), and ends.
func TestBatchedPutsLostBatch(t *testing.T) {
	n := newTestNet(t, 52)
	n.build(5, Config{SyncInterval: time.Hour})
	coord, dead := n.Order[0], n.Order[1]
	warm(n, coord)
	dropped := map[netip.AddrPort]bool{}
	n.Drop = func(from, to netip.AddrPort, data []byte) bool {
		if from != coord.addr || !isBatch(data) {
			return false
		}
		first := !dropped[to]
		dropped[to] = true
		return first || to == dead.addr // the retry goes through, but to dead
	}
	const count = 32
	for i, r := range burstPuts(t, n, coord, "lost", count) {
		if r.Err != nil {
			t.Fatalf("put %d: %v", i, r.Err)
		}
	}
	if len(dropped) < 2 || !dropped[dead.addr] {
		t.Fatalf("batches went to %v: the test needs batches to the dead node and to others", dropped)
	}
	if coord.e.stats.OneHopFallbacks != 0 {
		t.Errorf("%d fallbacks: the retry, or the other replicas, should carry every put", coord.e.stats.OneHopFallbacks)
	}
	n.Run(time.Minute)
	if len(coord.e.ops) != 0 {
		t.Errorf("%d operations left on the coordinator after the batches to %v timed out", len(coord.e.ops), dead.addr)
	}
	// Every record is on its live replicas: the retried batches landed.
	for i := range count {
		key := "lost-" + strconv.Itoa(i)
		for _, tn := range closestLive(n, key, 3) {
			if _, ok, _ := tn.e.Store().Get(key); !ok && tn != dead {
				t.Errorf("%s missing on %v", key, tn.addr)
			}
		}
	}
}

// A replica checks each record of a batch against its own table: it
// applies those it is a replica of and refuses the others with
// codeNotReplica, record by record.
func TestBatchPerRecordNotReplica(t *testing.T) {
	n := newTestNet(t, 53)
	n.build(6, Config{})
	srv, from := n.Order[0], n.Order[1]
	var mine, others []*store.Record
	for k := 0; len(mine) < 3 || len(others) < 3; k++ {
		key := "each-" + strconv.Itoa(k)
		r := &store.Record{Key: key, Value: []byte("v"), Version: store.Version{Time: uint64(n.Now.UnixMilli()) << 16, Writer: from.e.clock.Writer}, Expires: n.Now.Add(time.Hour)}
		if srv.e.isReplica(id.FromString(key)) {
			mine = append(mine, r)
		} else {
			others = append(others, r)
		}
	}
	recs := []*store.Record{mine[0], others[0], mine[1], others[1], mine[2], others[2]}
	q := krpc.Msg{Y: krpc.Query, T: []byte("bt"), Q: krpc.MethodStore}
	q.A.Has = krpc.HasID | krpc.HasX | krpc.HasToken
	q.A.ID = from.e.ID()
	q.A.Token = srv.e.tokens.Issue(from.addr.Addr(), nil)
	q.A.X = replica.AppendOwnWrites(nil, recs)
	back := n.Inject(srv, from.addr, encodeMsg(t, &q))
	if len(back) != 1 {
		t.Fatalf("%d answers, want 1", len(back))
	}
	var m krpc.Msg
	if err := m.Decode(back[0]); err != nil || m.Y != krpc.Response {
		t.Fatalf("answer %q: %v", back[0], err)
	}
	want := []int64{1, codeNotReplica, 1, codeNotReplica, 1, codeNotReplica}
	if got := replica.AckCodes(m.R.X); !equalCodes(got, want) {
		t.Errorf("codes %v, want %v", got, want)
	}
	for i, r := range recs {
		_, ok, _ := srv.e.Store().Get(r.Key)
		if ok != (i%2 == 0) {
			t.Errorf("%s stored %v", r.Key, ok)
		}
	}
	// More records than a replica checks for one datagram: refused whole.
	many := make([]*store.Record, maxStoreBatch+1)
	for i := range many {
		many[i] = mine[0]
	}
	q.A.X = replica.AppendOwnWrites(nil, many)
	back = n.Inject(srv, from.addr, encodeMsg(t, &q))
	if len(back) != 1 || m.Decode(back[0]) != nil || m.Y != krpc.Error || m.E.Code != krpc.CodeProtocol {
		t.Errorf("a batch of %d: %q, want a protocol error", len(many), back)
	}
}

func equalCodes(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func encodeMsg(t *testing.T, m *krpc.Msg) []byte {
	t.Helper()
	m.Net = []byte("test")
	return m.Append(nil)
}

// A coordinator whose table misses two nodes next to one key batches that
// key's writes with others': the members that are not its replicas refuse
// that record alone, its put falls back to a lookup and lands on the true
// replicas, and the other puts of the same batches are acknowledged.
func TestBatchedPutNotReplicaFallsBack(t *testing.T) {
	n := newTestNet(t, 54)
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
	warm(n, coord)
	for _, nn := range newcomers {
		coord.e.table.Remove(nn.e.ID())
	}
	if !coord.e.oneHopCovered(n.Now, target) {
		t.Fatal("the coordinator's table does not cover the key: the test needs it to try one hop")
	}
	refused := 0 // records a batch's answer refused as "not a replica"
	coord.e.cfg.Tap = func(dir Direction, _ netip.AddrPort, m *krpc.Msg) {
		if dir == In && m.Y == krpc.Response && bytes.Contains(m.R.X, []byte("i"+strconv.Itoa(codeNotReplica)+"e")) {
			refused++
		}
	}
	const count = 24
	rs := burstPuts(t, n, coord, "stale", count)
	for i, r := range rs {
		if r.Err != nil {
			t.Fatalf("put %d: %v", i, r.Err)
		}
	}
	if coord.e.stats.StoreBatches == 0 {
		t.Fatal("no batch sent: the test needs the stale key's write batched")
	}
	if refused == 0 {
		t.Fatal("no batch answer refused a record as not a replica: the test needs the stale key's write batched")
	}
	if coord.e.stats.OneHopFallbacks == 0 {
		t.Error("no put fell back to a lookup")
	}
	n.Run(5 * time.Second)
	h := 0
	for _, tn := range closestLive(n, key, 3) {
		if r, ok, _ := tn.e.Store().Get(key); ok && string(r.Value) == "v-"+key {
			h++
		}
	}
	if h < 2 {
		t.Errorf("%s on %d of its 3 true replicas, want at least 2", key, h)
	}
}

// A batched put that a replica keeps out with a newer version it holds
// (a write another node's clock, 10 s ahead, made) hears which, in the
// batch's answer ("h"), and goes again past it: every put lands on its 3
// replicas, each issued twice. So does one whose replica is the
// coordinator itself.
func TestBatchedPutsReissued(t *testing.T) {
	n := newTestNet(t, 53)
	n.build(5, Config{SyncInterval: time.Hour})
	coord := n.Order[0]
	warm(n, coord)
	const count = 24
	ahead := store.Version{Time: uint64(n.Now.Add(10*time.Second).UnixMilli()) << 16, Writer: 9}
	local := 0
	for i := range count {
		key := "late-" + strconv.Itoa(i)
		for _, tn := range closestLive(n, key, 3) {
			if _, err := tn.e.Store().Put(store.Record{Key: key, Value: []byte("ahead"), Version: ahead, Expires: n.Now.Add(time.Hour)}); err != nil {
				t.Fatal(err)
			}
			if tn == coord {
				local++
			}
		}
	}
	if local == 0 {
		t.Fatal("the coordinator is a replica of none of the keys: the test misses the local path")
	}
	batches := coord.e.stats.StoreBatches
	for i, r := range burstPuts(t, n, coord, "late", count) {
		if r.Err != nil || !r.Version.Newer(ahead) {
			t.Fatalf("put %d: version %v, %v; want one newer than %v", i, r.Version, r.Err, ahead)
		}
	}
	if coord.e.stats.StoreBatches == batches {
		t.Fatal("no batch went out: the test misses the batch's answer")
	}
	if got := coord.e.stats.Reissues; got != count {
		t.Errorf("%d reissues, want %d: one per put", got, count)
	}
	n.Run(5 * time.Second)
	if h := held(n, "late", count); h != count {
		t.Errorf("%d of %d records on all 3 of their replicas", h, count)
	}
}
