package replica

import (
	"errors"
	"fmt"
)

// ErrQuorum is the error of a write fewer replicas acknowledged than the
// write quorum, or that found fewer replicas than the quorum to write to,
// and of a read fewer replicas answered than the read quorum.
var ErrQuorum = errors.New("too few replicas acknowledged")

// Quorum is the rule both engines count acknowledgements by. The quorums
// are counted from the configured Replicas, never from the nodes a lookup
// happened to find: a node cut off with a minority of the network, or one
// that has not joined yet, finds fewer replicas than the write quorum and
// refuses the write, rather than acknowledging what the majority never
// sees. With the default majorities, Write + Read > Replicas, so a read
// that reaches its quorum overlaps every acknowledged write.
type Quorum struct {
	Replicas    int // configured replicas of every record
	Write, Read int // acknowledgements a put needs, answers a get needs
	// Alone lets a node that knows no other node be the whole replica
	// set: what a user asks for when they start a network of one. It
	// applies only while the node finds no replica but itself.
	Alone bool
}

// Majority returns the quorum of n replicas.
func Majority(n int) int { return n/2 + 1 }

// Quorums returns the write and read quorums of an engine's
// configuration: each as configured when it is 1 to replicas, else a
// majority of replicas, so that by default a read overlaps every
// acknowledged write.
func Quorums(replicas, write, read int) (int, int) {
	if write <= 0 || write > replicas {
		write = Majority(replicas)
	}
	if read <= 0 || read > replicas {
		read = Majority(replicas)
	}
	return write, read
}

// Need returns how many acknowledgements a put (write) or answers a get
// needs when the lookup found `found` replicas, this node included when
// it is one, and alone tells whether this node is the only one found.
func (q Quorum) Need(write bool, found int, alone bool) int {
	if q.Alone && alone && found == 1 {
		return 1
	}
	if write {
		return q.Write
	}
	return q.Read
}

// Refuse returns the error a put gets before anything is written when
// fewer of its replica set than its quorum were found reachable, or nil.
// The set is the Replicas nodes nearest the key among all the nodes the
// engine knows to exist, reachable or not; found counts the members that
// answered (this node included when it is one). Only they can acknowledge.
func (q Quorum) Refuse(found, need int) error {
	if found >= need {
		return nil
	}
	return fmt.Errorf("%w: found %d of the %d replicas, a write needs %d to acknowledge; nothing was written (is the node joined to a network with enough nodes?)",
		ErrQuorum, found, q.Replicas, need)
}

// Short returns the error of a put that acked acknowledgements of the
// need it had.
func (q Quorum) Short(acked, need int) error {
	return fmt.Errorf("%w: %d of the %d needed acknowledged (of %d replicas)", ErrQuorum, acked, need, q.Replicas)
}

// ShortRead returns the error of a get that answered members of its
// replica set answered, fewer than the need of its read quorum: one
// line, naming how many of how many.
func (q Quorum) ShortRead(answered, need int) error {
	return fmt.Errorf("%w: %d of the %d replicas answered, a read needs %d (ask for a partial read to get the best answer anyway)",
		ErrQuorum, answered, q.Replicas, need)
}
