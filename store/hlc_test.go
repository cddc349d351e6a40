package store

import (
	"errors"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/id"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func TestVersionCompare(t *testing.T) {
	tests := []struct {
		a, b Version
		want int
	}{
		{Version{1, 1}, Version{1, 1}, 0},
		{Version{2, 1}, Version{1, 9}, 1},
		{Version{1, 9}, Version{2, 1}, -1},
		{Version{5, 2}, Version{5, 1}, 1},
		{Version{5, 1}, Version{5, 2}, -1},
		{Version{}, Version{0, 1}, -1},
	}
	for _, tt := range tests {
		if got := tt.a.Compare(tt.b); got != tt.want {
			t.Errorf("%v.Compare(%v) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
		if got := tt.a.Newer(tt.b); got != (tt.want > 0) {
			t.Errorf("%v.Newer(%v) = %v", tt.a, tt.b, got)
		}
		// Version strings sort like versions.
		sa, sb := tt.a.String(), tt.b.String()
		if c := compareStrings(sa, sb); c != tt.want {
			t.Errorf("strings %s, %s compare %d, want %d", sa, sb, c, tt.want)
		}
	}
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func TestVersionText(t *testing.T) {
	v := Version{Time: hlcTime(t0) | 7, Writer: 0xdeadbeef}
	s := v.String()
	got, err := ParseVersion(s)
	if err != nil || got != v {
		t.Fatalf("ParseVersion(%q) = %v, %v; want %v", s, got, err, v)
	}
	if !v.Physical().Equal(t0) || v.Logical() != 7 {
		t.Errorf("Physical, Logical = %v, %d; want %v, 7", v.Physical(), v.Logical(), t0)
	}
	var u Version
	if err := u.UnmarshalText([]byte(s)); err != nil || u != v {
		t.Errorf("UnmarshalText = %v, %v", u, err)
	}
	for _, bad := range []string{"", "00", s + "0", "zz" + s[2:]} {
		if _, err := ParseVersion(bad); err == nil {
			t.Errorf("ParseVersion(%q) succeeded", bad)
		}
	}
}

func TestWriterID(t *testing.T) {
	var n id.ID
	n[0], n[7], n[8] = 0x80, 0x01, 0xff
	if got, want := WriterID(n), uint64(0x8000000000000001); got != want {
		t.Errorf("WriterID = %#x, want %#x", got, want)
	}
}

func TestClockNow(t *testing.T) {
	c := Clock{Writer: 3}
	steps := []struct {
		wall time.Time
		want Version
	}{
		{t0, Version{hlcTime(t0), 3}},
		{t0, Version{hlcTime(t0) + 1, 3}},                                         // same millisecond: logical counter
		{t0.Add(-time.Hour), Version{hlcTime(t0) + 2, 3}},                         // wall clock stepped back
		{t0.Add(time.Millisecond), Version{hlcTime(t0.Add(time.Millisecond)), 3}}, // wall clock moved on
	}
	for i, s := range steps {
		if got := c.Now(s.wall); got != s.want {
			t.Errorf("step %d: Now(%v) = %v, want %v", i, s.wall, got, s.want)
		}
	}
	if c.Last() != steps[len(steps)-1].want.Time {
		t.Errorf("Last = %d", c.Last())
	}
}

func TestClockObserve(t *testing.T) {
	tests := []struct {
		name    string
		remote  time.Duration // remote physical time relative to our wall
		skew    time.Duration
		wantErr bool
	}{
		{"behind", -time.Second, 0, false},
		{"slightly ahead", 10 * time.Second, 0, false},
		{"ahead by more than the drift", 45 * time.Second, 0, false},
		{"at the default limit", time.Minute, 0, false},
		{"beyond the default limit", time.Minute + time.Millisecond, 0, true},
		{"far future", 24 * time.Hour, 0, true},
		{"within a custom skew", 5 * time.Minute, 10 * time.Minute, false},
		{"beyond a custom skew", 5 * time.Second, time.Second, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Clock{Writer: 1, MaxSkew: tt.skew}
			before := c.Now(t0)
			remote := Version{Time: hlcTime(t0.Add(tt.remote)) | 42, Writer: 9}
			err := c.Observe(t0, remote)
			if tt.wantErr {
				if !errors.Is(err, ErrClockSkew) {
					t.Fatalf("Observe = %v, want ErrClockSkew", err)
				}
				// The clock did not move: the next version follows the last one.
				if got := c.Now(t0); got.Time != before.Time+1 {
					t.Errorf("after a refused version, Now = %v, want Time %d", got, before.Time+1)
				}
				return
			}
			if err != nil {
				t.Fatalf("Observe: %v", err)
			}
			next := c.Now(t0)
			skew := tt.skew
			if skew == 0 {
				skew = DefaultMaxSkew
			}
			// Within the drift (MaxSkew/2) the clock follows the remote
			// version; beyond it, TestClockObserveBoundedDrift.
			if !next.Newer(before) || tt.remote < skew/2 && !next.Newer(remote) {
				t.Errorf("Now after Observe(%v) = %v, not newer than both it and %v", remote, next, before)
			}
		})
	}
}

// A version accepted from far ahead moves the clock only MaxDrift ahead of
// the wall clock: the node's next versions stay acceptable to peers whose
// clocks are behind (the forged-version attack of issue 10).
func TestClockObserveBoundedDrift(t *testing.T) {
	tests := []struct {
		name       string
		remote     time.Duration
		drift      time.Duration
		wantFollow bool          // the next version is newer than the remote one
		peerBehind time.Duration // a peer this far behind must accept our next version
	}{
		{"forged 59 s ahead", 59 * time.Second, 0, false, time.Second},
		{"forged at the limit", time.Minute, 0, false, 29 * time.Second},
		{"a fast writer within the drift", 20 * time.Second, 0, true, 29 * time.Second},
		{"a custom drift", 10 * time.Second, 2 * time.Second, false, 57 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Clock{Writer: 1, MaxDrift: tt.drift}
			remote := Version{Time: hlcTime(t0.Add(tt.remote)) | 5, Writer: 9}
			if err := c.Observe(t0, remote); err != nil {
				t.Fatalf("Observe: %v", err)
			}
			next := c.Now(t0)
			if got := next.Newer(remote); got != tt.wantFollow {
				t.Errorf("next %v newer than remote %v: %v, want %v", next, remote, got, tt.wantFollow)
			}
			drift := tt.drift
			if drift == 0 {
				drift = DefaultMaxSkew / 2
			}
			if ahead := next.Physical().Sub(t0); ahead > drift {
				t.Errorf("the clock runs %v ahead, beyond the drift %v", ahead, drift)
			}
			peer := Clock{Writer: 2}
			if err := peer.Observe(t0.Add(-tt.peerBehind), next); err != nil {
				t.Errorf("a peer %v behind refuses our next version: %v", tt.peerBehind, err)
			}
		})
	}
}

func TestClockRestore(t *testing.T) {
	var a Clock
	a.Now(t0.Add(time.Hour))
	b := Clock{Writer: 1}
	b.Restore(a.Last())
	// A restarted node whose wall clock went back still issues newer versions.
	if v := b.Now(t0); v.Time <= a.Last() {
		t.Errorf("restored clock issued %v, not after %d", v, a.Last())
	}
}
