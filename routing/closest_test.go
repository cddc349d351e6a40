package routing

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/id"
)

// bruteClosest is the reference: every candidate that is not bad, sorted
// by distance to target, the first n.
func bruteClosest(all []Contact, target id.ID, n int) []id.ID {
	var cs []Contact
	for _, c := range all {
		if c.State != Bad {
			cs = append(cs, c)
		}
	}
	slices.SortFunc(cs, byDistance(target))
	var out []id.ID
	for _, c := range cs[:min(n, len(cs))] {
		out = append(out, c.ID)
	}
	return out
}

func ids(cs []Contact) []id.ID {
	var out []id.ID
	for _, c := range cs {
		out = append(out, c.ID)
	}
	return out
}

// TestClosestProperty fills tables with random nodes (many of them near
// our id, so that tables are deep), makes some of them bad, and checks
// Closest against a sort of everything for many targets and sizes. For
// BEP5 "everything" is what the table holds; KeepAll holds every node it
// was told of.
func TestClosestProperty(t *testing.T) {
	tests := []struct {
		name  string
		nodes int
		k     int
	}{
		{"empty", 0, 8},
		{"few", 5, 8},
		{"small k", 300, 2},
		{"many", 3000, 8},
		{"large k", 3000, 20},
	}
	for _, kind := range tables {
		for _, tt := range tests {
			t.Run(kind.name+"/"+tt.name, func(t *testing.T) {
				r := rand.New(rand.NewPCG(uint64(tt.nodes), uint64(tt.k)))
				src := seeded(uint64(tt.nodes))
				self := id.Random(src)
				tb := kind.new(self, tt.k, src)
				var inserted []id.ID
				removed := map[id.ID]bool{}
				for i := range tt.nodes {
					var x id.ID
					if r.IntN(2) == 0 {
						x = id.Random(src)
					} else {
						x = id.RandomWithPrefix(src, self, r.IntN(24))
					}
					how := []Source{Learned, Queried, Responded}[r.IntN(3)]
					now := at(time.Duration(i) * time.Second)
					tb.Observe(now, x, addrN(i), how, 0)
					inserted = append(inserted, x)
					if r.IntN(5) == 0 {
						y := inserted[r.IntN(len(inserted))]
						tb.Failed(now, y)
						tb.Failed(now, y)
					}
					if r.IntN(20) == 0 {
						y := inserted[r.IntN(len(inserted))]
						tb.Remove(y)
						removed[y] = true
					}
				}
				var all []Contact
				for _, b := range tb.Buckets() {
					all = append(all, b.Contacts...)
				}
				if len(all) != tb.Len() {
					t.Fatalf("Buckets holds %d contacts, Len is %d", len(all), tb.Len())
				}
				if _, ok := tb.(*KeepAll); ok {
					// Nothing is ever dropped but what was removed.
					for _, x := range inserted {
						if _, ok := tb.Get(x); ok == removed[x] {
							t.Fatalf("KeepAll: Get(%s) = %v, removed %v", x, ok, removed[x])
						}
					}
				}
				var dst []Contact
				for q := range 200 {
					var target id.ID
					switch q % 3 {
					case 0:
						target = id.Random(src)
					case 1:
						target = id.RandomWithPrefix(src, self, r.IntN(30))
					default:
						if len(inserted) > 0 {
							target = inserted[r.IntN(len(inserted))]
						}
					}
					n := []int{1, 3, 8, 20, 100, 10000}[r.IntN(6)]
					prefix := Contact{ID: self} // Closest appends: dst keeps what it held
					dst = append(dst[:0], prefix)
					dst = tb.Closest(target, n, dst)
					if dst[0].ID != self {
						t.Fatal("Closest overwrote dst")
					}
					got, want := ids(dst[1:]), bruteClosest(all, target, n)
					if !slices.Equal(got, want) {
						t.Fatalf("Closest(%s, %d): got %d nodes, want %d\ngot  %v\nwant %v", target, n, len(got), len(want), got, want)
					}
				}
			})
		}
	}
}

func TestRefresh(t *testing.T) {
	const interval = 15 * time.Minute
	for _, kind := range tables {
		t.Run(kind.name, func(t *testing.T) {
			src := seeded(11)
			self := id.Random(src)
			tb := kind.new(self, 4, src)
			// Nodes at prefix lengths 0..7, enough to split a BEP5 table
			// into several buckets.
			for i := range 64 {
				tb.Observe(t0, id.RandomWithPrefix(src, self, i%8), addrN(i), Responded, 0)
			}
			bs := tb.Buckets()
			if len(bs) < 4 {
				t.Fatalf("only %d buckets", len(bs))
			}
			if got := tb.Refresh(at(time.Minute), interval, nil); len(got) != 0 {
				t.Errorf("fresh buckets: %d targets", len(got))
			}
			// One bucket hears an answer later than the others.
			const fresh = 2
			c := bs[fresh].Contacts[0]
			tb.Observe(at(10*time.Minute), c.ID, c.Addr, Responded, 0)

			targets := tb.Refresh(at(interval), interval, nil)
			if len(targets) != len(bs)-1 {
				t.Fatalf("%d targets for %d stale buckets", len(targets), len(bs)-1)
			}
			hit := make([]int, len(bs))
			for _, target := range targets {
				i := bucketOf(bs, target)
				if i < 0 {
					t.Fatalf("target %s is in no bucket", target)
				}
				hit[i]++
			}
			for i, h := range hit {
				if want := 1; i == fresh {
					want = 0
					if h != want {
						t.Errorf("bucket %d, changed recently, got %d targets", i, h)
					}
				} else if h != want {
					t.Errorf("bucket %d got %d targets, want 1", i, h)
				}
			}
			// Refreshed buckets count as changed now.
			if got := tb.Refresh(at(interval+time.Minute), interval, nil); len(got) != 0 {
				t.Errorf("right after a refresh: %d targets", len(got))
			}
			if got := tb.Refresh(at(10*time.Minute+interval), interval, nil); len(got) != 1 || bucketOf(bs, got[0]) != fresh {
				t.Errorf("later: targets %v, want one in bucket %d", got, fresh)
			}
		})
	}
}

// bucketOf returns the bucket of bs whose range holds x; -1 if none.
func bucketOf(bs []Bucket, x id.ID) int {
	for i, b := range bs {
		if id.CommonPrefixLen(b.Prefix, x) >= b.PrefixLen {
			return i
		}
	}
	return -1
}

func TestRefreshDeterministic(t *testing.T) {
	for _, kind := range tables {
		t.Run(kind.name, func(t *testing.T) {
			run := func() []id.ID {
				src := seeded(12)
				self := id.Random(src)
				tb := kind.new(self, 8, src)
				for i := range 200 {
					tb.Observe(t0, id.Random(src), addrN(i), Responded, 0)
				}
				return tb.Refresh(at(time.Hour), 15*time.Minute, nil)
			}
			a, b := run(), run()
			if len(a) == 0 || !slices.Equal(a, b) {
				t.Errorf("two runs from one seed: %v and %v", a, b)
			}
		})
	}
}

// TestClosestAllKeepsBad: a contact that turns bad leaves Closest but not
// ClosestAll, in both tables, until it is evicted.
func TestClosestAllKeepsBad(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	self := id.ID{}
	for _, tb := range []Table{NewBEP5(self, 8, seeded(4)), NewKeepAll(self, 8, seeded(5))} {
		var ids []id.ID
		for i := range 4 {
			x := id.ID{0x80 | byte(i)}
			ids = append(ids, x)
			tb.Observe(now, x, netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}), 6881), Responded, 0)
		}
		for range BadFails {
			tb.Failed(now, ids[0])
		}
		if got := tb.Closest(ids[0], 4, nil); len(got) != 3 || got[0].ID == ids[0] {
			t.Fatalf("%T: Closest kept the bad contact: %v", tb, got)
		}
		all := tb.(AllCloser).ClosestAll(ids[0], 4, nil)
		if len(all) != 4 || all[0].ID != ids[0] || all[0].State != Bad {
			t.Fatalf("%T: ClosestAll %v, want the bad contact first", tb, all)
		}
		tb.Remove(ids[0])
		if all := tb.(AllCloser).ClosestAll(ids[0], 4, nil); len(all) != 3 {
			t.Fatalf("%T: ClosestAll lists an evicted contact: %v", tb, all)
		}
	}
}
