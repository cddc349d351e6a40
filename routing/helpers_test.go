package routing

import (
	"io"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/id"
)

// t0 is an arbitrary start for the clocks tests hand to tables.
var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func seeded(seed uint64) io.Reader {
	var s [32]byte
	s[0], s[1] = byte(seed), byte(seed>>8)
	return rand.NewChaCha8(s)
}

// addrN is a distinct address for each n. Tables never send anything: the
// addresses are only data.
func addrN(n int) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(n >> 16), byte(n >> 8), byte(n)}), 6881)
}

// at returns t0 plus d.
func at(d time.Duration) time.Time { return t0.Add(d) }

// advance moves a table's notion of now without changing any contact.
func advance(tb Table, now time.Time) {
	tb.Refresh(now, time.Duration(1<<62), nil)
}

// tables builds each kind of table for tests that apply to both.
var tables = []struct {
	name string
	new  func(self id.ID, k int, rnd io.Reader) Table
}{
	{"BEP5", func(self id.ID, k int, rnd io.Reader) Table { return NewBEP5(self, k, rnd) }},
	{"KeepAll", func(self id.ID, k int, rnd io.Reader) Table { return NewKeepAll(self, k, rnd) }},
}

// checkBEP5 verifies the structure of a BEP5 table: bucket i < last holds
// only nodes whose first bit differing from self is bit i, the last bucket
// the rest; no bucket or cache exceeds k; no id appears twice; Len counts
// the contacts.
func checkBEP5(t *testing.T, tb *BEP5) {
	t.Helper()
	seen := make(map[id.ID]bool)
	n := 0
	last := len(tb.buckets) - 1
	for i, b := range tb.buckets {
		if len(b.contacts) > tb.k || len(b.repl) > tb.k {
			t.Fatalf("bucket %d holds %d contacts and %d replacements, k=%d", i, len(b.contacts), len(b.repl), tb.k)
		}
		for _, es := range [][]entry{b.contacts, b.repl} {
			for _, e := range es {
				cpl := id.CommonPrefixLen(tb.self, e.id)
				if e.id == tb.self {
					t.Fatalf("bucket %d holds our own id", i)
				}
				if (i < last && cpl != i) || (i == last && cpl < last) {
					t.Fatalf("bucket %d of %d holds a node with prefix length %d", i, last+1, cpl)
				}
				if seen[e.id] {
					t.Fatalf("%s is in the table twice", e.id)
				}
				seen[e.id] = true
			}
		}
		n += len(b.contacts)
	}
	if n != tb.Len() {
		t.Fatalf("Len = %d, buckets hold %d", tb.Len(), n)
	}
}
