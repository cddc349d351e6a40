package fault

import (
	"net"
	"net/netip"
	"testing"
	"time"
)

// listenIn opens a UDP socket in e's namespace on e's address.
func listenIn(t *testing.T, e *Endpoint) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	err := inNS(e.NS, func() (err error) {
		c, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(e.Addr, 24001)))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// delivered sends n datagrams from a to b and counts those that arrive
// within a generous wait, and the time the first took.
func delivered(t *testing.T, a, b *net.UDPConn, n int) (int, time.Duration) {
	t.Helper()
	start := time.Now()
	for i := range n {
		if _, err := a.WriteToUDP([]byte{byte(i)}, b.LocalAddr().(*net.UDPAddr)); err != nil {
			t.Fatal(err)
		}
	}
	got, first := 0, time.Duration(0)
	buf := make([]byte, 16)
	for {
		b.SetReadDeadline(time.Now().Add(time.Second))
		if _, _, err := b.ReadFromUDP(buf); err != nil {
			return got, first
		}
		if got == 0 {
			first = time.Since(start)
		}
		got++
	}
}

// TestNet runs datagrams between two namespaces through the switch:
// all pass, none across a partition, all again once healed, about the
// given fraction under loss, each late by the given delay.
func TestNet(t *testing.T) {
	if err := Supported(); err != nil {
		t.Skip("skipped:", err)
	}
	n, err := NewNet("dkt")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Error(err)
		}
	})
	e1, err := n.Add()
	if err != nil {
		t.Fatal(err)
	}
	e2, err := n.Add()
	if err != nil {
		t.Fatal(err)
	}
	a, b := listenIn(t, e1), listenIn(t, e2)
	if got, _ := delivered(t, a, b, 100); got != 100 {
		t.Fatalf("whole network: %d of 100 datagrams arrived", got)
	}
	n.Partition([]*Endpoint{e1}, []*Endpoint{e2})
	if got, _ := delivered(t, a, b, 100); got != 0 {
		t.Fatalf("partitioned: %d of 100 datagrams crossed", got)
	}
	n.Heal()
	if got, _ := delivered(t, b, a, 100); got != 100 {
		t.Fatalf("healed: %d of 100 datagrams arrived", got)
	}
	n.Impair(0.5, 100*time.Millisecond)
	got, first := delivered(t, a, b, 400)
	if got < 100 || got > 300 {
		t.Errorf("50%% loss: %d of 400 datagrams arrived", got)
	}
	if first < 100*time.Millisecond {
		t.Errorf("100ms delay: the first datagram arrived after %v", first)
	}
	if _, dropped := n.Counts(); dropped < 100 {
		t.Errorf("the switch counts %d drops", dropped)
	}
}

// TestNetSlots makes two Nets at once, as two concurrent runs of the
// suite would: their namespace names and addresses differ, and a
// third never takes the slot of one still open.
func TestNetSlots(t *testing.T) {
	if err := Supported(); err != nil {
		t.Skip("skipped:", err)
	}
	for _, bad := range []string{"", "dk-f", "toolong", "DK", "dk1"} {
		if _, err := NewNet(bad); err == nil {
			t.Errorf("NewNet(%q) took a slot; want a refusal", bad)
		}
	}
	a, err := NewNet("dkt")
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewNet("dkt")
	if err != nil {
		a.Close()
		t.Fatal(err)
	}
	defer b.Close()
	ea, err := a.Add()
	if err != nil {
		a.Close()
		t.Fatal(err)
	}
	eb, err := b.Add()
	if err != nil {
		a.Close()
		t.Fatal(err)
	}
	for _, e := range []*Endpoint{ea, eb} {
		if a := e.Addr.As4(); a[0] != 10 || a[1] < 100 || a[1] > 115 {
			t.Errorf("namespace %s has address %s; want one in 10.100.0.0–10.115.255.255", e.NS, e.Addr)
		}
	}
	if ea.NS == eb.NS || ea.Addr == eb.Addr || len(ea.NS) > 15 || len(eb.NS) > 15 {
		t.Errorf("two Nets at once: namespaces %s and %s, addresses %s and %s; want distinct names of at most 15 characters and distinct addresses", ea.NS, eb.NS, ea.Addr, eb.Addr)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	c, err := NewNet("dkt")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.prefix == b.prefix {
		t.Errorf("a third Net took %s, the slot of a Net still open", c.prefix)
	}
}
