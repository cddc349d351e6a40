package fault

import (
	"crypto/sha1"
	"encoding/hex"
	"math/big"
	"testing"
)

// idAt returns the id at SHA-1(key) plus delta (mod 2^160), in hex.
func idAt(key string, delta int64) string {
	t := sha1.Sum([]byte(key))
	x := new(big.Int).SetBytes(t[:])
	x.Add(x, big.NewInt(delta))
	mod := new(big.Int).Lsh(big.NewInt(1), 160)
	x.Mod(x, mod)
	b := make([]byte, 20)
	x.FillBytes(b)
	return hex.EncodeToString(b)
}

func TestReplicas(t *testing.T) {
	nodes := []Holding{
		{Name: "before", ID: idAt("k", -1)}, // just before the target: XOR-close, last on the ring
		{Name: "s1", ID: idAt("k", 1)},
		{Name: "s2", ID: idAt("k", 1000)},
		{Name: "far", ID: idAt("k", 1<<62)},
	}
	tests := []struct {
		protocol string
		want     []string
	}{
		{"chord", []string{"s1", "s2"}},
		{"kademlia", []string{"s1", "before"}},
	}
	for _, tt := range tests {
		got := Replicas(tt.protocol, 2, "k", nodes)
		if len(got) != 2 || got[0].Name != tt.want[0] || got[1].Name != tt.want[1] {
			t.Errorf("%s: replicas %v, want %v", tt.protocol, names(got), tt.want)
		}
	}
	// The ring wraps: with every node before the target, the first
	// after zero is the successor.
	wrap := []Holding{{Name: "a", ID: idAt("k", -5)}, {Name: "b", ID: idAt("k", -10)}}
	if got := Replicas("chord", 1, "k", wrap); got[0].Name != "b" {
		t.Errorf("chord wrap: %v, want b", names(got))
	}
}

func names(hs []Holding) []string {
	var out []string
	for _, h := range hs {
		out = append(out, h.Name)
	}
	return out
}

func TestDiverged(t *testing.T) {
	mk := func(name string, delta int64, recs map[string]string) Holding {
		return Holding{Name: name, ID: idAt("k", delta), Records: recs}
	}
	tests := []struct {
		name  string
		nodes []Holding
		bad   int
	}{
		{"every replica has the newest", []Holding{
			mk("a", 1, map[string]string{"k": "02"}), mk("b", 2, map[string]string{"k": "02"}),
			mk("c", 1<<40, map[string]string{"k": "01"}), // not a replica: its old copy does not count
		}, 0},
		{"a replica has an older version", []Holding{
			mk("a", 1, map[string]string{"k": "02"}), mk("b", 2, map[string]string{"k": "01"}),
		}, 1},
		{"a replica lacks the key", []Holding{
			mk("a", 1, map[string]string{"k": "02"}), mk("b", 2, nil),
		}, 1},
		{"the newest is on a non-replica only", []Holding{
			mk("a", 1, map[string]string{"k": "01"}), mk("b", 2, map[string]string{"k": "01"}),
			mk("c", 1<<40, map[string]string{"k": "03"}),
		}, 1},
		{"nobody stores the key", []Holding{mk("a", 1, nil), mk("b", 2, nil)}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Diverged("chord", 2, []string{"k"}, tt.nodes)
			if len(got) != tt.bad {
				t.Errorf("diverged %v, want %d keys", got, tt.bad)
			}
		})
	}
}
