package replica

import (
	"errors"
	"strings"
	"testing"
)

func TestQuorum(t *testing.T) {
	q := Quorum{Replicas: 3, Write: 2, Read: 2}
	alone := q
	alone.Alone = true
	cases := []struct {
		name       string
		q          Quorum
		write      bool
		found      int
		onlySelf   bool
		need       int
		refuseWith string // "" : not refused
	}{
		{"three found", q, true, 3, false, 2, ""},
		{"two found", q, true, 2, false, 2, ""},
		{"one found, not asked to be alone", q, true, 1, true, 2, "found 1 of the 3 replicas, a write needs 2"},
		{"one other found", q, true, 1, false, 2, "found 1 of the 3 replicas"},
		{"alone as asked", alone, true, 1, true, 1, ""},
		{"alone as asked, but one other found", alone, true, 1, false, 2, "found 1 of the 3"},
		{"alone, two found", alone, true, 2, false, 2, ""},
		{"read, one found", q, false, 1, true, 2, "found 1"},
		{"replicas 1", Quorum{Replicas: 1, Write: 1, Read: 1}, true, 1, true, 1, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			need := c.q.Need(c.write, c.found, c.onlySelf)
			if need != c.need {
				t.Fatalf("need %d, want %d", need, c.need)
			}
			err := c.q.Refuse(c.found, need)
			if c.refuseWith == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrQuorum) || !strings.Contains(err.Error(), c.refuseWith) {
				t.Fatalf("error %v, want ErrQuorum saying %q", err, c.refuseWith)
			}
		})
	}
	if err := q.Short(1, 2); !errors.Is(err, ErrQuorum) || !strings.Contains(err.Error(), "1 of the 2 needed acknowledged") {
		t.Fatalf("short: %v", err)
	}
	if err := q.ShortRead(1, 2); !errors.Is(err, ErrQuorum) || !strings.Contains(err.Error(), "1 of the 3 replicas answered, a read needs 2") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("short read: %v", err)
	}
}

// A configured quorum stands when it is 1 to Replicas; anything else is
// a majority.
func TestQuorums(t *testing.T) {
	for _, tc := range []struct{ replicas, write, read, wantW, wantR int }{
		{3, 0, 0, 2, 2},
		{3, 3, 1, 3, 1},
		{3, 4, -1, 2, 2},
		{5, 0, 5, 3, 5},
		{1, 0, 0, 1, 1},
	} {
		if w, r := Quorums(tc.replicas, tc.write, tc.read); w != tc.wantW || r != tc.wantR {
			t.Errorf("Quorums(%d, %d, %d) = %d, %d; want %d, %d", tc.replicas, tc.write, tc.read, w, r, tc.wantW, tc.wantR)
		}
	}
}
