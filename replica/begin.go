package replica

import "errors"

// ErrDown is the fate of a replica-set member the engine knows to exist
// but holds unreachable (it did not answer the lookup, or the engine
// marked it bad or lost): it counts against the quorum without being
// asked.
var ErrDown = errors.New("replica did not answer the lookup")

// Begin starts o under quorum rule q once the engine has picked its
// replica set: the Replicas members nearest the key among every node the
// engine knows to exist, reachable or not, with down[i] telling which
// member it holds unreachable. It sets the quorum o needs, counts the
// down members as failed, and returns the error of a put that fewer
// reachable members than its write quorum could acknowledge (then
// nothing must be written). A get goes on: it is decided by the same
// count when the answers are in (ShortRead, unless AllowPartial).
//
// Both engines start their operations here, so that one rule decides
// for Kademlia and Chord: a minority side of a partition, or a node that
// has not rejoined, refuses writes and reads alike.
func (o *Op) Begin(q Quorum, down []bool) error {
	ms := o.Members
	o.Need = q.Need(o.Put, len(ms), len(ms) == 1 && ms[0].Self)
	up := 0
	for i := range ms {
		if !down[i] {
			up++
		}
	}
	if o.Put {
		if err := q.Refuse(up, o.Need); err != nil {
			return err
		}
	}
	for i := range ms {
		if down[i] {
			o.Fail(i, ErrDown)
		}
	}
	return nil
}
