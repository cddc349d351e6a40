package store

import (
	"fmt"
	"strconv"

	"github.com/dhtkit/dhtkit/id"
)

// ValueID names one of the values a key holds (OpenDHT's value id): the
// writer's choice, or a random one. Each value of a key is its own record,
// with its own version, expiry and owner, so replication, repair,
// anti-entropy, hand-over and the owner rule (Config.Admit) all work per
// value, unchanged.
//
// A value's record key is ValueKey(key, v): the key itself for
// DefaultValue, which is what a put without an id writes (and what every
// record written before keys held many values is), so single-value use,
// old files and old peers are unchanged. Any other id appends a suffix
// no one types by accident: a NUL byte, 'v' and the id in 16 lowercase hex
// digits. Every record of a key is placed on the key's target,
// SHA-1(key) (KeyTarget), so all values of a key share its replicas and
// lie next to each other in every index.
type ValueID uint64

// DefaultValue is the id of a key's single value: its record key is the
// key itself.
const DefaultValue ValueID = 0

// valueSuffixLen is the length of the suffix of a non-default value's
// record key: NUL, 'v', 16 hex digits.
const valueSuffixLen = 2 + 16

// MaxValuesPerKey bounds the values one key holds on a replica
// (tombstones included): a store refuses a new value id past it with
// ErrCapacity, and so an answer listing a key's values stays bounded.
const MaxValuesPerKey = 64

// String is the id in 16 hexadecimal digits, as the CLI and the HTTP API
// show and accept it.
func (v ValueID) String() string { return fmt.Sprintf("%016x", uint64(v)) }

// ParseValueID reads a value id: 1 to 16 hexadecimal digits, with or
// without "0x".
func ParseValueID(s string) (ValueID, error) {
	t := s
	if len(t) > 2 && (t[:2] == "0x" || t[:2] == "0X") {
		t = t[2:]
	}
	if t == "" || len(t) > 16 {
		return 0, fmt.Errorf("value id %q: want 1 to 16 hexadecimal digits", s)
	}
	n, err := strconv.ParseUint(t, 16, 64)
	if err != nil {
		return 0, fmt.Errorf("value id %q: want 1 to 16 hexadecimal digits", s)
	}
	return ValueID(n), nil
}

// ValueKey is the record key of value v of key.
func ValueKey(key string, v ValueID) string {
	if v == DefaultValue {
		return key
	}
	return key + "\x00v" + v.String()
}

// SplitKey returns the key and the value id of a record key: the record
// key itself and DefaultValue unless it ends in a value suffix.
func SplitKey(rk string) (key string, v ValueID) {
	n := len(rk)
	if n <= valueSuffixLen || rk[n-valueSuffixLen] != 0 || rk[n-valueSuffixLen+1] != 'v' {
		return rk, DefaultValue
	}
	var x uint64
	for i := n - 16; i < n; i++ {
		c := rk[i]
		switch {
		case c >= '0' && c <= '9':
			x = x<<4 | uint64(c-'0')
		case c >= 'a' && c <= 'f':
			x = x<<4 | uint64(c-'a'+10)
		default:
			return rk, DefaultValue
		}
	}
	if x == 0 {
		// Not canonical: the default value's record key is the key itself.
		return rk, DefaultValue
	}
	return rk[:n-valueSuffixLen], ValueID(x)
}

// BaseKey is the key a record key belongs to.
func BaseKey(rk string) string {
	k, _ := SplitKey(rk)
	return k
}

// IsValueKey reports whether k ends in a value suffix, so that a user key
// must not be k (it would name a value of another key).
func IsValueKey(k string) bool {
	_, v := SplitKey(k)
	return v != DefaultValue
}

// KeyTarget is the place in the id space of a record key: SHA-1 of the
// key it belongs to.
func KeyTarget(rk string) id.ID { return id.FromString(BaseKey(rk)) }

// entryID is what Entry.Hash names a record by: its target for a key's
// default value (as before values had ids, so old and new nodes agree on
// every digest), else the SHA-1 of its whole record key, so that two
// values of one key with one version do not cancel out.
func entryID(target id.ID, rk string) id.ID {
	if IsValueKey(rk) {
		return id.FromString(rk)
	}
	return target
}

// Values calls fn, in record-key order, for every record of key (all its
// values, tombstones included) that st holds, until fn returns false.
func Values(st Store, key string, fn func(Record) bool) error {
	t := id.FromString(key)
	return st.Range(t, t, func(r Record) bool {
		if BaseKey(r.Key) != key {
			return true // another key with the same SHA-1, or a value of one
		}
		return fn(r)
	})
}
