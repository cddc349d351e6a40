// Package store holds the values one node stores for the DHT: keyed records
// with versions, tombstones, expiry, limits and anti-entropy digests, in
// memory (NewMemory) or on disk in bbolt (OpenBolt). Both implement Store
// and behave identically; the same tests run against both.
//
// # Versions: last writer wins on a hybrid logical clock
//
// Every write carries a Version{Time, Writer}. Time is a hybrid logical
// clock reading: physical milliseconds since the Unix epoch shifted left 16
// bits, plus a 16-bit logical counter that orders writes issued within one
// millisecond. Writer is derived from the writing node's id (WriterID) and
// breaks ties. The rule is: the larger Time wins; for equal Time, the larger
// Writer wins; equal versions are the same write. A Put applies only if its
// version is newer than the stored one, so replicas that see the same writes
// in any order converge on the same record.
//
// A Clock issues versions for one writer. It never goes backwards, and
// Observe moves it past every version the node has seen, so a write issued
// after reading a value is newer than that value even when the local wall
// clock lags behind the writer's. Wall clocks are not trusted blindly: a
// version more than MaxSkew (default one minute) ahead of the local wall
// clock is refused with ErrClockSkew instead of dragging the clock (and with
// it every later write) into the future. The store itself reads no clock
// and takes versions as given: the replication layer calls Clock.Observe on
// every version it receives before it stores it.
//
// # Deletes and expiry
//
// A delete is a Put of a tombstone (Record.Deleted) with a newer version. It
// beats every older write, and a write older than the tombstone that arrives
// later is refused, so a deleted key does not come back when a stale
// replica hands it over. Tombstones expire too, so deleted keys do not
// accumulate forever: at the tombstone's version time plus
// Config.TombstoneTTL, or its Expires if later.
//
// The rule that keeps a delete from being undone once its tombstone is
// gone: a value lives at most Config.MaxTTL (default 30 days) past its
// version's time, a value without an expiry exactly that long, and a
// tombstone at least MaxTTL past its own (default MaxTTL plus
// DefaultRepairWindow, 24h). A value a tombstone shadows has an older
// version, so it expires no later than the tombstone, on every replica
// alike since both lifetimes count from versions: a replica that missed the
// delete and comes back after the tombstone is gone holds an expired value,
// which it drops and no replica accepts.
//
// A store reads no clock (the protocol core it serves is driven by the
// caller's clock, virtual in the simulator): its notion of "now" is the
// latest time passed to Expire. Expire drops every record whose Expires is
// at or before that time, and Put refuses records that are already expired.
// A record with a zero Expires (only values can have one) never expires.
//
// # Limits
//
// Config bounds what a node accepts: key and value size (ErrTooLarge), the
// bytes a node stores (ErrCapacity), the records stored on behalf of one
// source (ErrQuota, see Record.Source); a full disk surfaces as ErrFull.
// Every refusal leaves the store as it was: nothing already stored is lost.
// The bytes counted against MaxBytes include RecordOverhead per record, so
// that many tiny records cannot cost far more memory than the limit says.
//
// # Damage
//
// OpenBolt's file carries CRC32C checksums in every record header, of the
// value and of the header. A record that fails them is not served: it is
// dropped, logged and counted (Bolt.Faults), so the replication layer sees
// a replica lacking it and repairs it. A damaged file (empty, truncated,
// unreadable pages) fails OpenBolt with ErrDamaged naming the file, never a
// panic; MoveDamaged sets it aside. See damage.go.
// PutAll stores many records with one commit (one fdatasync of
// OpenBolt's log, wal.go) for hand-over and repair.
//
// # Anti-entropy digests
//
// Digest(depth) splits the 160-bit target space into 2^depth buckets by
// target prefix and returns one 64-bit hash per bucket: the XOR of
// Entry.Hash over the records in the bucket. XOR makes the digest
// independent of insertion order and lets every Put, Remove and expiry
// update it in O(depth) by toggling the record's hash along a binary tree
// of bucket hashes that the store keeps up to date, so a digest costs a copy
// of one tree level, never a scan of the records. Two replicas compare
// digests, descend into the buckets that differ (Digest at a larger depth)
// and exchange the Entry lists of those buckets only (Bucket), so repair
// costs what differs, not what is stored.
package store
