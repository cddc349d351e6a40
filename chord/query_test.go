package chord

import (
	"net/netip"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/internal/enginetest"
	"github.com/dhtkit/dhtkit/krpc"
)

// impostor is the node id the forged replies claim.
var impostor = id.FromString("impostor")

// TestTransactionIDsRandom checks that Chord's transaction ids are drawn
// at random (routing.InFlight), not in sequence: a forger must guess.
func TestTransactionIDsRandom(t *testing.T) {
	net := newTestNet(t, 34)
	net.build(8, Config{})
	var tids []uint16
	net.Drop = func(from, to netip.AddrPort, data []byte) bool {
		var m krpc.Msg
		if m.Decode(data) == nil && m.Y == krpc.Query && len(m.T) == 2 && from == net.Order[0].addr {
			tids = append(tids, uint16(m.T[0])<<8|uint16(m.T[1]))
		}
		return false
	}
	net.Run(2 * time.Minute)
	if len(tids) < 50 {
		t.Fatalf("only %d queries seen", len(tids))
	}
	seq := 0
	for i := 1; i < len(tids); i++ {
		if d := tids[i] - tids[i-1]; d == 1 {
			seq++
		}
	}
	if seq > len(tids)/10 {
		t.Fatalf("%d of %d transaction ids follow their predecessor: sequential", seq, len(tids))
	}
}

// TestForgedReplyKeepsNeighbour answers a node's stabilize query with a
// forged reply from its successor's address and transaction id but
// another node id: the successor stays, and its real answer still counts.
func TestForgedReplyKeepsNeighbour(t *testing.T) {
	net := newTestNet(t, 35)
	net.build(6, Config{})
	net.Run(time.Minute)
	a := net.Order[0]
	succ, ok := a.e.ring.successor()
	if !ok {
		t.Fatal("no successor")
	}
	f := &enginetest.Forger{From: a.addr, To: succ.Addr, Claim: impostor, Network: "test", Max: 5,
		Deliver: func(b []byte) { a.e.Receive(net.Now, succ.Addr, b); net.Flush(a) }}
	net.Drop = f.Watch
	before := a.e.Stats().Malformed
	net.Run(time.Minute)
	if f.Forged == 0 {
		t.Fatal("no query to the successor was seen")
	}
	if a.e.Stats().Malformed-before < uint64(f.Forged) {
		t.Errorf("%d forged replies, %d counted as unusable", f.Forged, a.e.Stats().Malformed-before)
	}
	if s, _ := a.e.ring.successor(); s.ID != succ.ID {
		t.Fatalf("successor %v replaced by %v after forged replies", succ.ID, s.ID)
	}
	if net.ringErrors() != 0 {
		t.Fatal("the ring broke")
	}
	for _, l := range a.e.Lost() {
		if l.ID == succ.ID {
			t.Fatalf("%v marked lost after forged replies", l.ID)
		}
	}
}

// TestAddPartial: of the partial answers a lookup hears, it keeps the one
// that names the target's successors furthest round the ring, whatever
// the order they come in, and counts what every answerer said it lost.
// Keeping the latest let a node's short list, which still named a member
// the asker had lost, displace the asker's own longer answer: the member
// past its end counted down, and a majority side refused writes.
func TestAddPartial(t *testing.T) {
	target := id.FromString("target")
	at := func(d uint64) krpc.NodeInfo { return krpc.NodeInfo{ID: id.AddPow2(target, int(d))} }
	near, mid, far := at(10), at(20), at(30)
	lost := at(15)
	for _, tt := range []struct {
		name    string
		answers [][]krpc.NodeInfo
		want    krpc.NodeInfo
	}{
		{"longer later", [][]krpc.NodeInfo{{near}, {near, mid}}, mid},
		{"shorter later", [][]krpc.NodeInfo{{near, far}, {near, mid}}, far},
		{"empty ignored", [][]krpc.NodeInfo{{near, mid}, {}}, mid},
		{"equal keeps first", [][]krpc.NodeInfo{{near, mid}, {mid}}, mid},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l := &lookup{target: target}
			for i, a := range tt.answers {
				l.addPartial(a, []krpc.NodeInfo{lost}, i+1, false)
			}
			if got := l.partial[len(l.partial)-1]; got.ID != tt.want.ID {
				t.Errorf("kept an answer ending at %v, want %v", got.ID, tt.want.ID)
			}
			if n := len(l.partialGone); n != len(tt.answers)-countEmpty(tt.answers) {
				t.Errorf("gone holds %d nodes, want one per answer with nodes", n)
			}
		})
	}
}

func countEmpty(as [][]krpc.NodeInfo) int {
	n := 0
	for _, a := range as {
		if len(a) == 0 {
			n++
		}
	}
	return n
}
