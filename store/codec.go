package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// metaFormat is the first byte of an encoded record header; a later
// format gets a new number so that old files still open.
const metaFormat = 1

const flagDeleted = 1 << 0

// metaFixed is the length of the fixed part of an encoded header: format,
// flags, Time, Writer, expires.
const metaFixed = 2 + 8 + 8 + 8

var errCorrupt = errors.New("corrupt record")

// appendMeta appends the header of it, everything but key and value:
//
//	format(1) flags(1) time(8) writer(8) expires(8, signed) | uvarint size | uvarint len(source) source
//
// Integers are big-endian.
func appendMeta(b []byte, it *item) []byte {
	var flags byte
	if it.deleted {
		flags |= flagDeleted
	}
	b = append(b, metaFormat, flags)
	b = binary.BigEndian.AppendUint64(b, it.version.Time)
	b = binary.BigEndian.AppendUint64(b, it.version.Writer)
	b = binary.BigEndian.AppendUint64(b, uint64(it.expires))
	b = binary.AppendUvarint(b, uint64(it.size))
	b = binary.AppendUvarint(b, uint64(len(it.source)))
	return append(b, it.source...)
}

// decodeMeta fills the header fields of it from b, which comes from disk
// and is checked rather than trusted.
func decodeMeta(b []byte, it *item) error {
	if len(b) < metaFixed {
		return fmt.Errorf("%w: %d bytes, want at least %d", errCorrupt, len(b), metaFixed)
	}
	if b[0] != metaFormat {
		return fmt.Errorf("%w: unknown format %d", errCorrupt, b[0])
	}
	if b[1]&^flagDeleted != 0 {
		return fmt.Errorf("%w: unknown flags %#x", errCorrupt, b[1])
	}
	it.deleted = b[1]&flagDeleted != 0
	it.version.Time = binary.BigEndian.Uint64(b[2:])
	it.version.Writer = binary.BigEndian.Uint64(b[10:])
	it.expires = int64(binary.BigEndian.Uint64(b[18:]))
	if it.expires < 0 {
		return fmt.Errorf("%w: negative expiry", errCorrupt)
	}
	b = b[metaFixed:]
	size, n := uvarint(b)
	if n <= 0 || size > math.MaxInt32 {
		return fmt.Errorf("%w: bad value size", errCorrupt)
	}
	b = b[n:]
	if it.deleted && size != 0 {
		return fmt.Errorf("%w: tombstone with a %d-byte value", errCorrupt, size)
	}
	it.size = int(size)
	l, n := uvarint(b)
	if n <= 0 || l != uint64(len(b)-n) {
		return fmt.Errorf("%w: bad source length", errCorrupt)
	}
	it.source = string(b[n:])
	return nil
}

// uvarint is binary.Uvarint accepting the shortest encoding only, so that
// every header has one encoding.
func uvarint(b []byte) (uint64, int) {
	v, n := binary.Uvarint(b)
	if n > 1 && b[n-1] == 0 {
		return 0, 0
	}
	return v, n
}
