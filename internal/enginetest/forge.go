// Package enginetest holds what the Kademlia and Chord engines' tests
// share, so that their drivers do not write it twice.
package enginetest

import (
	"bytes"
	"net/netip"

	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/krpc"
)

// Forger answers the first Max queries that node From sends to To with a
// forged reply (To's address, the query's transaction id, node id Claim),
// handed to Deliver, as an off-path attacker who guessed the transaction
// would. The real query still goes on, so its real answer arrives after
// the forgery. Forged counts the replies forged.
type Forger struct {
	From, To netip.AddrPort
	Claim    id.ID
	Network  string
	Max      int
	Deliver  func(reply []byte)
	Forged   int
}

// Watch is a test driver's drop hook: it sees every datagram sent, forges
// what it should, and drops nothing.
func (f *Forger) Watch(from, to netip.AddrPort, data []byte) bool {
	var m krpc.Msg
	if f.Forged >= f.Max || from != f.From || to != f.To || m.Decode(data) != nil || m.Y != krpc.Query {
		return false
	}
	f.Forged++
	r := krpc.Msg{T: bytes.Clone(m.T), Y: krpc.Response, Net: []byte(f.Network)}
	r.R.Has, r.R.ID = krpc.HasID, f.Claim
	f.Deliver(r.Append(nil))
	return false
}
