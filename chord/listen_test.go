package chord

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/dhtkit/dhtkit/guard"
	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/krpc"
	"github.com/dhtkit/dhtkit/replica"
	"github.com/dhtkit/dhtkit/store"
)

// Registrations are bounded per source, and only a source that proved
// its address registers.
func TestListenFloodIsBounded(t *testing.T) {
	n := newTestNet(t, 36)
	node := n.add(Config{MaxListeners: 500, Guard: guard.Off()}) // floods beyond any rate
	query := func(from netip.AddrPort, key string, token bool) []byte {
		m := krpc.Msg{Y: krpc.Query, Q: krpc.MethodListen, T: []byte("aa"), Net: []byte("test")}
		m.A.Has = krpc.HasID | krpc.HasX
		m.A.ID = id.FromString(from.String())
		m.A.X = replica.AppendListen(nil, key)
		if token {
			m.A.Has |= krpc.HasToken
			m.A.Token = node.e.tokens.Issue(from.Addr(), nil)
		}
		return m.Append(nil)
	}
	attacker := netip.MustParseAddrPort("10.66.0.1:4000")
	if back := n.Inject(node, attacker, query(attacker, "k", false)); node.e.Listeners() != 0 || len(back) != 1 || !strings.Contains(string(back[0]), "5:again") {
		t.Fatalf("dk_listen without a token: %d registered, answered %q, want a request for a token", node.e.Listeners(), back)
	}
	for i := range 2000 {
		from := netip.AddrPortFrom(attacker.Addr(), uint16(1000+i))
		n.Inject(node, from, query(from, fmt.Sprint("key-", i), true))
	}
	if got := node.e.Listeners(); got != replica.ListenersPerSource {
		t.Errorf("%d registrations from one address, want %d", got, replica.ListenersPerSource)
	}
	if got := node.e.Stats().Drops[guard.DropListenerEvicted]; got != 2000-replica.ListenersPerSource {
		t.Errorf("%d evictions counted, want %d", got, 2000-replica.ListenersPerSource)
	}
	honest := netip.MustParseAddrPort("10.70.0.1:4000")
	if back := n.Inject(node, honest, query(honest, "key-0", true)); len(back) != 1 || strings.Contains(string(back[0]), "1:y1:e") {
		t.Fatalf("an honest dk_listen after the flood got %q", back)
	}
	if !node.e.listen.listeners.Registered(n.Now, "key-0", honest) {
		t.Error("the honest listener is not registered")
	}
	bad := krpc.Msg{Y: krpc.Query, Q: krpc.MethodListen, T: []byte("ab"), Net: []byte("test")}
	bad.A.Has = krpc.HasID | krpc.HasX | krpc.HasToken
	bad.A.ID = id.FromString("x")
	bad.A.Token = node.e.tokens.Issue(honest.Addr(), nil)
	bad.A.X = replica.AppendListen(nil, store.ValueKey("k", 3))
	if back := n.Inject(node, honest, bad.Append(nil)); len(back) != 1 || !strings.Contains(string(back[0]), "i203e") {
		t.Errorf("dk_listen of a value's record key answered %q, want error 203", back)
	}
}
