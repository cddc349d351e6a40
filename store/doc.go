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
// Config.TombstoneTTL (default 24h), or its Expires if later. The lifetime
// counts from the version, so every replica drops a tombstone at the same
// moment. It must exceed the anti-entropy period, or a replica that missed
// the delete can resurrect the value after the tombstone is gone.
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
// PutAll stores many records with one commit (one fsync in bbolt) for
// hand-over and repair.
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
