package store

import (
	"crypto/sha1"
	"encoding/binary"
	"errors"
	"log/slog"
	"time"

	"github.com/dhtkit/dhtkit/id"
)

// Errors a Store returns, wrapped with the details (errors.Is finds them).
var (
	// ErrTooLarge: the key or the value is larger than Config allows.
	ErrTooLarge = errors.New("too large")
	// ErrCapacity: the node already stores Config.MaxBytes.
	ErrCapacity = errors.New("store capacity reached")
	// ErrQuota: the record's source already has Config.MaxPerSource records.
	ErrQuota = errors.New("per-source quota reached")
	// ErrFull: the disk is full (ENOSPC, EDQUOT or EFBIG); the write was
	// rolled back.
	ErrFull = errors.New("disk full")
	// ErrInvalid: the record cannot be stored as given (no version).
	ErrInvalid = errors.New("invalid record")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("store closed")
	// ErrDamaged: the store's file is damaged beyond what the store can
	// repair by itself (empty, truncated, pages bbolt cannot read). The
	// error names the file; MoveDamaged sets it aside so that a node can
	// start empty and refill from the other replicas.
	ErrDamaged = errors.New("damaged store file")
	// ErrRefused: Config.Admit refused the record (its own error is
	// wrapped too).
	ErrRefused = errors.New("record refused")
)

// Record is one stored key.
type Record struct {
	Key   string
	Value []byte // nil for a tombstone
	// Version orders the writes of Key; Put keeps the newest.
	Version Version
	// Expires is when the record is dropped; the zero time means never
	// (values only: a tombstone always expires, see the package doc).
	Expires time.Time
	// Deleted marks a tombstone: Key was deleted at Version.
	Deleted bool
	// Source names whom the record is stored for, usually the IP address of
	// the client that wrote it, and is kept with the record. At most
	// Config.MaxPerSource records share a non-empty Source. The empty
	// Source is not counted: replicas handing records over to each other
	// should pass the original Source on when they know it, and use the
	// empty one only for peers they trust.
	Source string
}

// Target returns the record's place in the id space: the SHA-1 of the key
// Key belongs to (KeyTarget), shared by all the values of that key.
func (r Record) Target() id.ID { return KeyTarget(r.Key) }

// Entry is what anti-entropy compares of a record: its identity without the
// value.
type Entry struct {
	Key     string
	Version Version
	Deleted bool
}

// Hash returns the 64-bit hash of e that Digest combines: the first 8
// bytes, big-endian, of SHA-1(target || Time || Writer || deleted), the
// integers big-endian and deleted one byte, 0 or 1; for a value with an id
// (ValueKey) SHA-1 of its whole record key stands for target.
func (e Entry) Hash() uint64 {
	return entryHash(entryID(KeyTarget(e.Key), e.Key), e.Version, e.Deleted)
}

func entryHash(target id.ID, v Version, deleted bool) uint64 {
	var b [id.Len + 17]byte
	copy(b[:], target[:])
	binary.BigEndian.PutUint64(b[id.Len:], v.Time)
	binary.BigEndian.PutUint64(b[id.Len+8:], v.Writer)
	if deleted {
		b[id.Len+16] = 1
	}
	s := sha1.Sum(b[:])
	return binary.BigEndian.Uint64(s[:8])
}

// MaxDigestDepth is the largest depth Digest and Bucket accept: 2^20
// buckets.
const MaxDigestDepth = 20

// BucketRange returns the first and last target of bucket i of the 2^depth
// buckets Digest and Bucket split the id space into.
func BucketRange(depth, i int) (lo, hi id.ID) {
	for b := range id.Bits {
		mask := byte(1) << (7 - uint(b%8))
		if b >= depth {
			hi[b/8] |= mask
		} else if (i>>(depth-1-b))&1 == 1 {
			lo[b/8] |= mask
			hi[b/8] |= mask
		}
	}
	return lo, hi
}

// Store is the value storage of one node. Implementations are safe for
// concurrent use, but a protocol loop is expected to be their one writer.
// Records handed to callers may share their Value with the store: callers
// must not modify it.
type Store interface {
	// Put stores r if its version is newer than the stored record's (last
	// writer wins), and reports whether it did. A refused write (older or
	// equal version, or already expired) is not an error. Errors: ErrTooLarge,
	// ErrCapacity, ErrQuota, ErrFull, ErrInvalid, ErrClosed, wrapped; on any
	// error the store is unchanged. On return without error the write is
	// as durable as the implementation promises (OpenBolt: on disk).
	Put(r Record) (applied bool, err error)
	// PutAll is Put of each record in order, made durable together (one
	// fsync for OpenBolt): for hand-over and repair, which move many
	// records at once. applied[i] reports whether rs[i] was applied. It
	// stops at the first record that breaks a limit and returns that error
	// with the results of the records before it, which are stored. On a
	// disk error (ErrFull) none of rs is stored and applied is nil.
	PutAll(rs []Record) (applied []bool, err error)
	// Get returns the record stored for key, tombstones included (Deleted
	// set), and whether there is one.
	Get(key string) (Record, bool, error)
	// Each calls fn for every record in target order until fn returns false.
	Each(fn func(Record) bool) error
	// Range is Each restricted to records whose target lies in [lo, hi].
	Range(lo, hi id.ID, fn func(Record) bool) error
	// Remove drops key's record if its version is still v: a node purging
	// what it no longer should hold does not drop a newer write that
	// arrived meanwhile. Removing an absent record is not an error.
	Remove(key string, v Version) error
	// Expire advances the store's clock to now and drops the records that
	// expired by then; it returns how many it dropped.
	Expire(now time.Time) (int, error)
	// Digest returns the 2^depth bucket hashes of the stored records, for
	// 0 <= depth <= MaxDigestDepth; see the package documentation.
	Digest(depth int) ([]uint64, error)
	// Bucket calls fn, in target order, for the entries of bucket i of the
	// 2^depth buckets of Digest, until fn returns false.
	Bucket(depth, i int, fn func(Entry) bool) error
	// Stats returns the number of records (tombstones included) and the
	// bytes they occupy as counted against Config.MaxBytes.
	Stats() (keys int, bytes int64)
	// Close releases the store; later calls fail with ErrClosed.
	Close() error
}

// Config limits what a store accepts. A zero field takes its default; a
// negative one removes the limit.
type Config struct {
	// MaxKeySize is the largest key, in bytes. Default 1 KiB.
	MaxKeySize int
	// MaxValueSize is the largest value, in bytes. Default 64 KiB: a large
	// value travels as chunks of a manifest, each stored as its own record.
	MaxValueSize int
	// MaxBytes bounds the bytes stored, counted as the sum over all records
	// of key length, value length and RecordOverhead (what the index holds
	// per record whatever its size, so a flood of tiny records is bounded
	// like a few large ones). Default 1 GiB. Tombstones may use a further
	// TombstoneReserve, so that a delete succeeds on a full node.
	MaxBytes int64
	// MaxPerSource bounds the records stored for one Record.Source.
	// Default 100000.
	MaxPerSource int
	// MaxTTL caps how long a value lives: it expires at the latest MaxTTL
	// after its version's time, and a value that comes without an expiry
	// gets exactly that. Every replica caps alike, since the version is the
	// same everywhere. Default 30 days; negative: no cap (a value without
	// expiry then lives forever; for tests only, as deletes are then only
	// as lasting as TombstoneTTL).
	MaxTTL time.Duration
	// TombstoneTTL is how long a tombstone lives after its version's time.
	// Default MaxTTL + DefaultRepairWindow; a smaller one is raised to
	// MaxTTL, so that a tombstone outlives every value it shadows: such a
	// value has an older version, so it expires no later than the tombstone
	// (see "Deletes and expiry" in the package documentation).
	TombstoneTTL time.Duration
	// Logger receives what an operator must hear of: damaged records
	// dropped, writes the disk refused (at most one line per
	// writeWarnEvery). nil: slog.Default().
	Logger *slog.Logger
	// Admit, when set, is asked about every record Put or PutAll would
	// apply (one newer than the stored one, within the limits), with the
	// record stored for its key (nil when there is none, tombstones
	// included): a non-nil error refuses the write like a limit does,
	// wrapped with ErrRefused. It is the one place where a replica decides
	// which writes a key accepts, whichever path the record came by (a
	// client's put, a replica's push, anti-entropy, a hand-over): package
	// owner's rule lets only a key's owner change a signed record. It runs
	// with the store's lock held and must not call the store.
	Admit func(old *Record, r Record) error
}

// Defaults of Config.
const (
	DefaultMaxKeySize   = 1 << 10
	DefaultMaxValueSize = 64 << 10
	DefaultMaxBytes     = 1 << 30
	DefaultMaxPerSource = 100000
	DefaultMaxTTL       = 30 * 24 * time.Hour
	// DefaultRepairWindow is what a default tombstone lives past MaxTTL:
	// room for clock skew and for the expiry of the value it shadows to
	// reach every replica.
	DefaultRepairWindow = 24 * time.Hour
)

// RecordOverhead is what a record costs the store beyond its key and value
// (the index entry, its digest hash, the map and slice headers), counted
// toward Config.MaxBytes.
const RecordOverhead = 160

func (c Config) withDefaults() Config {
	if c.MaxKeySize == 0 {
		c.MaxKeySize = DefaultMaxKeySize
	}
	if c.MaxValueSize == 0 {
		c.MaxValueSize = DefaultMaxValueSize
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = DefaultMaxBytes
	}
	if c.MaxPerSource == 0 {
		c.MaxPerSource = DefaultMaxPerSource
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.MaxTTL == 0 {
		c.MaxTTL = DefaultMaxTTL
	}
	switch {
	case c.TombstoneTTL <= 0 && c.MaxTTL > 0:
		c.TombstoneTTL = c.MaxTTL + DefaultRepairWindow
	case c.TombstoneTTL <= 0:
		c.TombstoneTTL = DefaultRepairWindow
	case c.TombstoneTTL < c.MaxTTL:
		c.TombstoneTTL = c.MaxTTL
	}
	return c
}

// TombstoneReserve is how far past MaxBytes tombstones may fill a store:
// max(MaxBytes/16, 64 KiB). A delete must succeed on a full replica, also
// one that never held the value (it missed the put, or the value has not
// reached it yet): refusing the tombstone there would leave the delete on
// fewer replicas than its quorum and let repair bring the value back. The
// reserve keeps the store bounded all the same, at MaxBytes plus it;
// values never use it.
func TombstoneReserve(maxBytes int64) int64 { return max(maxBytes/16, 64<<10) }

// limit is the byte bound a record must fit: MaxBytes for a value,
// MaxBytes plus TombstoneReserve for a tombstone; 0 for none.
func (c Config) limit(deleted bool) int64 {
	if c.MaxBytes <= 0 || !deleted {
		return max(c.MaxBytes, 0)
	}
	return c.MaxBytes + TombstoneReserve(c.MaxBytes)
}

// Durable reports whether st syncs each write to disk before Put returns
// (a store with a Durable method that says so): one whose writes are
// worth committing off an engine's lock.
func Durable(st Store) bool {
	d, ok := st.(interface{ Durable() bool })
	return ok && d.Durable()
}
