package kademlia

import (
	"net/netip"
	"time"

	"github.com/dhtkit/dhtkit/guard"
	"github.com/dhtkit/dhtkit/krpc"
)

// Outbox is an engine's datagrams between two Readys: one arena of
// encoded messages and the packets that point into it. Kademlia's and
// Chord's engines share it, so that both bound every datagram by
// MaxDatagram and charge unproven sources the same way.
type Outbox struct {
	arena   []byte
	packets []Packet
}

// Encode appends m, in network net ("nw"), to the arena and returns
// where it starts; false (and nothing appended) when it would exceed
// MaxDatagram: no path carries it whole (guard.DropOversize).
func (o *Outbox) Encode(m *krpc.Msg, net []byte) (int, bool) {
	m.Net = net
	start := len(o.arena)
	o.arena = m.Append(o.arena)
	if len(o.arena)-start > MaxDatagram {
		o.arena = o.arena[:start]
		return 0, false
	}
	return start, true
}

// Size is the bytes of the message encoded at start.
func (o *Outbox) Size(start int) int { return len(o.arena) - start }

// Undo drops the message encoded at start, unsent.
func (o *Outbox) Undo(start int) { o.arena = o.arena[:start] }

// Queue hands the message encoded at start to the driver, for `to`, and
// returns its size. Growing the arena leaves earlier packets on the old
// array, whose bytes stay valid, so nothing needs repointing.
func (o *Outbox) Queue(to netip.AddrPort, start int) int {
	o.packets = append(o.packets, Packet{To: to, Data: o.arena[start:len(o.arena):len(o.arena)]})
	return len(o.arena) - start
}

// Charge spends the bytes of the message at start from the byte budgets
// of `to`, a source that has not proven its address: 0 when they allow
// it; otherwise the message is undone and the reason returned.
func (o *Outbox) Charge(now time.Time, l *guard.Limiter, to netip.AddrPort, start int) guard.DropReason {
	if ok, why := l.Spend(now, to.Addr(), o.Size(start)); !ok {
		o.Undo(start)
		return why
	}
	return 0
}

// Packets are the datagrams queued since the last Reset.
func (o *Outbox) Packets() []Packet { return o.packets }

// Reset empties the outbox once the driver is done with its packets.
func (o *Outbox) Reset() {
	o.arena = o.arena[:0]
	clear(o.packets)
	o.packets = o.packets[:0]
}

// ErrorMsg fills m as a KRPC error answering transaction tid.
func ErrorMsg(m *krpc.Msg, tid []byte, code int, msg string, version []byte) {
	m.Reset()
	m.Y = krpc.Error
	m.T = tid
	m.V = version
	m.E.Code = code
	m.E.Msg = append(m.E.Msg[:0], msg...)
}
