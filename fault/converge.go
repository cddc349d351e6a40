package fault

import (
	"bytes"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	"github.com/dhtkit/dhtkit/id"
)

// Holding is what one live node stores, as GET /v1/local lists it.
type Holding struct {
	Name    string
	ID      string            // the node id, 40 hexadecimal digits
	Records map[string]string // key → version (tombstones included)
}

// Replicas returns the nodes that should hold key among nodes: the
// replicas closest to SHA-1(key) by XOR distance for Kademlia, the
// successor of SHA-1(key) and the nodes after it on the ring for Chord.
func Replicas(protocol string, replicas int, key string, nodes []Holding) []Holding {
	return replicasOf(protocol, replicas, sha1.Sum([]byte(key)), nodes)
}

// ReplicasOf is Replicas for a target given as 40 hexadecimal digits.
func ReplicasOf(protocol string, replicas int, target string, nodes []Holding) []Holding {
	var t [sha1.Size]byte
	hex.Decode(t[:], []byte(target))
	return replicasOf(protocol, replicas, t, nodes)
}

func replicasOf(protocol string, replicas int, target [sha1.Size]byte, nodes []Holding) []Holding {
	ids := make(map[string][]byte, len(nodes))
	for _, n := range nodes {
		ids[n.ID], _ = hex.DecodeString(n.ID)
	}
	out := slices.Clone(nodes)
	if protocol == "chord" {
		// Clockwise distance from the target: (id - target) mod 2^160.
		dist := func(n Holding) []byte {
			var x id.ID
			copy(x[:], ids[n.ID])
			d := id.RingDistance(id.ID(target), x)
			return d[:]
		}
		slices.SortFunc(out, func(a, b Holding) int { return bytes.Compare(dist(a), dist(b)) })
	} else {
		dist := func(n Holding) []byte {
			d := make([]byte, len(target))
			for i := range d {
				d[i] = ids[n.ID][i] ^ target[i]
			}
			return d
		}
		slices.SortFunc(out, func(a, b Holding) int { return bytes.Compare(dist(a), dist(b)) })
	}
	return out[:min(replicas, len(out))]
}

// Diverged returns the keys (of keys) not yet converged: their replicas
// among nodes do not all hold the newest version any node holds. An
// empty result means every key is one version on all its replicas.
func Diverged(protocol string, replicas int, keys []string, nodes []Holding) []string {
	var bad []string
	for _, k := range keys {
		newest := ""
		for _, n := range nodes {
			newest = max(newest, n.Records[k])
		}
		if newest == "" {
			continue // never stored anywhere: nothing to converge
		}
		var wrong []string
		for _, r := range Replicas(protocol, replicas, k, nodes) {
			if v := r.Records[k]; v != newest {
				if v == "" {
					v = "nothing"
				}
				wrong = append(wrong, r.Name+" has "+v)
			}
		}
		if len(wrong) > 0 {
			bad = append(bad, fmt.Sprintf("%q (newest %s): %s", k, newest, strings.Join(wrong, ", ")))
		}
	}
	return bad
}
