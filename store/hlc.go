package store

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/dhtkit/dhtkit/id"
)

// logicalBits is the width of the logical counter in Version.Time.
const logicalBits = 16

// DefaultMaxSkew is how far ahead of the local wall clock a remote version
// may be before Clock.Observe refuses it.
const DefaultMaxSkew = time.Minute

// Observe moves a clock at most MaxDrift ahead of the local wall clock,
// half of MaxSkew unless set. Every version the node issues is then at
// most MaxDrift ahead of its own clock, so peers whose clocks are up to
// MaxSkew-MaxDrift behind still accept its writes, whatever version was
// forged or sent by a writer with a clock in the future. (A remote version
// that could drag the clock all the way to MaxSkew would leave every peer
// even a second behind refusing the node's writes.)

// ErrClockSkew reports a version too far ahead of the local wall clock.
var ErrClockSkew = errors.New("version too far in the future")

// Version orders the writes of one key; see the package documentation for
// the rule. The zero Version is older than every issued one and is not a
// valid version for a write.
type Version struct {
	// Time is a hybrid logical clock reading: Unix milliseconds << 16 |
	// a logical counter.
	Time uint64
	// Writer identifies the writing node (WriterID) and breaks ties.
	Writer uint64
}

// WriterID derives a Version.Writer from a node id: its first 64 bits.
func WriterID(node id.ID) uint64 { return binary.BigEndian.Uint64(node[:8]) }

// ErrWriter reports a direct write whose version names another writer
// than the node that sent it.
var ErrWriter = errors.New("the version's writer is not the node that sent the write")

// CheckWriter checks a direct write, one a node makes with its own clock,
// against the node that authenticated the datagram (under a network key):
// the KRPC id it claims and v's writer must both be that node's, so that
// no member poses as another or picks a writer id to win ties.
func CheckWriter(v Version, claimed, authenticated id.ID) error {
	if claimed != authenticated || v.Writer != WriterID(authenticated) {
		return fmt.Errorf("store: version %v from node %v: %w", v, claimed, ErrWriter)
	}
	return nil
}

// Compare returns -1, 0 or +1 as v is older than, the same as, or newer
// than w.
func (v Version) Compare(w Version) int {
	switch {
	case v.Time < w.Time:
		return -1
	case v.Time > w.Time:
		return 1
	case v.Writer < w.Writer:
		return -1
	case v.Writer > w.Writer:
		return 1
	}
	return 0
}

// Newer reports whether v wins over w.
func (v Version) Newer(w Version) bool { return v.Compare(w) > 0 }

// IsZero reports whether v is the zero Version.
func (v Version) IsZero() bool { return v == Version{} }

// Physical returns the wall-clock part of v.Time.
func (v Version) Physical() time.Time {
	return time.UnixMilli(int64(v.Time >> logicalBits))
}

// Logical returns the logical counter of v.Time.
func (v Version) Logical() uint16 { return uint16(v.Time) }

// String returns 32 hex digits, Time then Writer. Strings of versions sort
// like the versions, which makes them usable as ETags and in logs.
func (v Version) String() string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], v.Time)
	binary.BigEndian.PutUint64(b[8:], v.Writer)
	return hex.EncodeToString(b[:])
}

// ParseVersion decodes the output of Version.String.
func ParseVersion(s string) (Version, error) {
	var b [16]byte
	if len(s) != 2*len(b) {
		return Version{}, fmt.Errorf("store: version %q is not %d hex digits", s, 2*len(b))
	}
	if _, err := hex.Decode(b[:], []byte(s)); err != nil {
		return Version{}, fmt.Errorf("store: version %q: %w", s, err)
	}
	return Version{
		Time:   binary.BigEndian.Uint64(b[:8]),
		Writer: binary.BigEndian.Uint64(b[8:]),
	}, nil
}

// MarshalText implements encoding.TextMarshaler with String's format.
func (v Version) MarshalText() ([]byte, error) { return []byte(v.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (v *Version) UnmarshalText(b []byte) error {
	x, err := ParseVersion(string(b))
	if err != nil {
		return err
	}
	*v = x
	return nil
}

// Clock issues versions for one writer: a hybrid logical clock. The zero
// MaxSkew means DefaultMaxSkew. A Clock is not safe for concurrent use; it
// belongs to the node's protocol loop, like the store.
type Clock struct {
	Writer  uint64
	MaxSkew time.Duration
	// MaxDrift bounds how far ahead of the wall clock an observed version
	// moves the clock; zero means MaxSkew/2.
	MaxDrift time.Duration
	last     uint64 // the largest Time issued or observed, capped by MaxDrift
}

// hlcTime returns the HLC reading of wall with a zero logical counter.
func hlcTime(wall time.Time) uint64 {
	ms := wall.UnixMilli()
	if ms < 0 {
		ms = 0
	}
	return uint64(ms) << logicalBits
}

// Now returns a version newer than every version c issued or observed
// before. wall is the caller's clock reading; when it has not moved past
// the last reading (same millisecond, a clock stepped back, or a remote
// version observed from slightly ahead) the logical counter advances
// instead. Should the counter overflow, it carries into the milliseconds:
// the clock then runs a millisecond ahead, which is harmless.
func (c *Clock) Now(wall time.Time) Version {
	if pt := hlcTime(wall); pt > c.last {
		c.last = pt
	} else {
		c.last++
	}
	return Version{Time: c.last, Writer: c.Writer}
}

// Observe moves c past v, a version the node has received, so that its
// next version is newer, but never more than MaxDrift ahead of wall: a
// version between MaxDrift and MaxSkew ahead is accepted, and the clock
// stops at wall+MaxDrift. It refuses, with an error wrapping ErrClockSkew
// and without moving c, a version whose physical time is more than
// MaxSkew ahead of wall: a writer with a clock far in the future must not
// drag every later write of this node along.
func (c *Clock) Observe(wall time.Time, v Version) error {
	skew := c.MaxSkew
	if skew <= 0 {
		skew = DefaultMaxSkew
	}
	if limit := hlcTime(wall.Add(skew)) | (1<<logicalBits - 1); v.Time > limit {
		ahead := v.Physical().Sub(wall).Truncate(time.Millisecond)
		return fmt.Errorf("store: version %v is %v ahead of the local clock (max skew %v; the writer's clock needs NTP): %w",
			v, ahead, skew, ErrClockSkew)
	}
	drift := c.MaxDrift
	if drift <= 0 {
		drift = skew / 2
	}
	t := min(v.Time, hlcTime(wall.Add(drift)))
	if t > c.last {
		c.last = t
	}
	return nil
}

// Last returns the largest Time c issued or observed; a node that persists
// it and restores it with Restore never issues a version older than one it
// issued before a restart, even if its wall clock stepped back meanwhile.
func (c *Clock) Last() uint64 { return c.last }

// Restore sets the largest Time issued or observed, if t is larger.
func (c *Clock) Restore(t uint64) {
	if t > c.last {
		c.last = t
	}
}
