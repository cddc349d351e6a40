package kademlia

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/krpc"
	"github.com/dhtkit/dhtkit/routing"
)

// TestForgedReplyKeepsContact answers a node's queries to one of its
// contacts with forged replies, from the contact's address and with the
// right transaction id but another node id (issue 11): the real contact
// stays in the table, the impostor never enters it, and once the forger
// stops the contact is good again without anyone acting.
func TestForgedReplyKeepsContact(t *testing.T) {
	n := newTestNet(t, 41)
	n.build(6, Config{Network: "test"})
	a := n.order[0]
	var c routing.Contact
	for _, b := range a.e.table.Buckets() {
		if len(b.Contacts) > 0 {
			c = b.Contacts[0]
			break
		}
	}
	if c.ID.IsZero() {
		t.Fatal("no contact")
	}
	impostor := id.FromString("impostor")
	forged := 0
	n.drop = func(from, to netip.AddrPort, data []byte) bool {
		var m krpc.Msg
		if from != a.addr || to != c.Addr || m.Decode(data) != nil || m.Y != krpc.Query || forged >= 4 {
			return false
		}
		r := krpc.Msg{T: bytes.Clone(m.T), Y: krpc.Response, Net: []byte("test")}
		r.R.Has = krpc.HasID
		r.R.ID = impostor
		a.e.Receive(n.now, c.Addr, r.Append(nil))
		n.flush(a)
		forged++
		return false
	}
	// Make a ask the contact, again and again, as a node it knows.
	for i := 0; i < 8 && forged < 4; i++ {
		n.do(a, FindNode{Target: c.ID})
	}
	if forged == 0 {
		t.Fatal("no query to the contact was seen")
	}
	if _, ok := a.e.table.Get(c.ID); !ok {
		t.Fatalf("the real contact was removed after %d forged replies", forged)
	}
	if _, ok := a.e.table.Get(impostor); ok {
		t.Fatal("the impostor entered the table")
	}
	n.drop = nil
	n.do(a, Ping{Addr: c.Addr}) // its first answer refutes the failures
	good := func() bool {
		got, ok := a.e.table.Get(c.ID)
		return ok && got.State == routing.Good
	}
	if !n.runUntil(2*time.Minute, good) {
		got, _ := a.e.table.Get(c.ID)
		t.Fatalf("the contact is %v two minutes after the forger stopped", got.State)
	}
}
