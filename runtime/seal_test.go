package runtime

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/seal"
)

// With a Sealer, the engine sees only what opens: a plain datagram, a
// forgery and a replay get no answer and never reach it, a sealed query
// gets a sealed answer that opens to the engine's reply, and the runtime
// reports the authenticated sender to the engine during Receive only.
func TestSealedRuntime(t *testing.T) {
	ring, err := seal.NewKeyring(bytes.Repeat([]byte{7}, seal.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	var serverID, clientID [20]byte
	serverID[0], clientID[0] = 1, 2
	eng := &senderEcho{echoEngine: newEcho(time.Hour)}
	rt := New(listen(t), eng, Options{Sealer: seal.New(ring, serverID, seal.Config{})})
	defer rt.Close()
	rt.Inspect(func() { eng.rt = rt })
	c := listen(t)
	defer c.Close()
	client := seal.New(ring, clientID, seal.Config{})
	read := func() ([]byte, bool) {
		buf := make([]byte, 2048)
		c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		n, err := c.Read(buf)
		if err != nil {
			return nil, false
		}
		return buf[:n], true
	}
	send := func(p []byte) {
		if _, err := c.WriteToUDPAddrPort(p, rt.Addr()); err != nil {
			t.Fatal(err)
		}
	}

	sealed := client.Seal(nil, []byte("qhello"), time.Now())
	send(sealed)
	got, ok := read()
	if !ok {
		t.Fatal("no answer to a sealed query")
	}
	reply, from, err := client.Open(got, time.Now())
	if err != nil || string(reply) != "rhello" || from != serverID {
		t.Fatalf("answer %q from %x: %v; want rhello sealed by the server", reply, from, err)
	}
	fresh := client.Seal(nil, []byte("qagain"), time.Now())
	fresh[len(fresh)-1] ^= 1 // a new sequence, a bad tag
	for name, p := range map[string][]byte{
		"plain KRPC":     []byte("d1:ad2:id20:aaaaaaaaaaaaaaaaaaaae1:q4:ping1:t2:aa1:y1:qe"),
		"replay":         sealed,
		"forgery":        fresh,
		"another key id": bytes.Repeat([]byte{0xd1}, 80),
	} {
		send(p)
		if got, ok := read(); ok {
			t.Errorf("%s: answered %q", name, got)
		}
	}
	st := rt.sealer.Stats()
	if st.Opened != 1 || st.Unsealed != 1 || st.Replayed != 1 || st.Forged != 1 || st.UnknownKey != 1 {
		t.Errorf("seal stats %+v", st)
	}
	rt.Inspect(func() {
		if len(eng.senders) != 1 || eng.senders[0] != clientID {
			t.Errorf("the engine saw senders %x, want the client's id once", eng.senders)
		}
		if _, ok := rt.Sender(); ok {
			t.Error("a sender outside of Receive")
		}
	})
}

// senderEcho records, in Receive, the sender the runtime authenticated.
type senderEcho struct {
	*echoEngine
	rt      *Runtime
	senders [][20]byte
}

func (e *senderEcho) Receive(now time.Time, from netip.AddrPort, p []byte) {
	if s, ok := e.rt.Sender(); ok {
		e.senders = append(e.senders, s)
	}
	e.echoEngine.Receive(now, from, p)
}
