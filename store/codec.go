package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
)

// Record header formats: the first byte of an encoded header. A later
// format gets a new number so that old files still open.
const (
	// metaFormat1 has no checksums; files written before format 2 hold it.
	metaFormat1 = 1
	// metaFormat is what every write uses: format 1 followed by the CRC32C
	// of the value and the CRC32C of the header itself.
	metaFormat = 2
)

const (
	flagDeleted = 1 << 0
	// flagInline: the value follows the header in the records bucket,
	// rather than lying in the values bucket (inlineMax).
	flagInline = 1 << 1
)

// inlineMax is the largest value kept with its header. A small value
// apart from its header cost a second bbolt write (a search of the tree)
// and log operation on every put: bbolt's Put was 13% of a loaded
// durable node's CPU, half of it the values bucket's (BENCHMARKS.md,
// "Session 12 (issue 15)"). A large value with its header would make an
// open, which reads every header, read the value too.
const inlineMax = 256

// metaFixed is the length of the fixed part of an encoded header: format,
// flags, Time, Writer, expires.
const metaFixed = 2 + 8 + 8 + 8

// sumLen is the length of the two checksums that end a format-2 header.
const sumLen = 4 + 4

var errCorrupt = errors.New("corrupt record")

// castagnoli is CRC32C, which modern CPUs compute in hardware.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func checksum(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// appendMeta appends the header of it, everything but key and value:
//
//	format(1) flags(1) time(8) writer(8) expires(8, signed) | uvarint size |
//	uvarint len(source) source | crc32c(value)(4) | crc32c(all before)(4)
//
// Integers are big-endian. it.sum must hold the value's checksum.
func appendMeta(b []byte, it *item) []byte {
	start := len(b)
	var flags byte
	if it.deleted {
		flags |= flagDeleted
	}
	if it.inline {
		flags |= flagInline
	}
	b = append(b, metaFormat, flags)
	b = binary.BigEndian.AppendUint64(b, it.version.Time)
	b = binary.BigEndian.AppendUint64(b, it.version.Writer)
	b = binary.BigEndian.AppendUint64(b, uint64(it.expires))
	b = binary.AppendUvarint(b, uint64(it.size))
	b = binary.AppendUvarint(b, uint64(len(it.source)))
	b = append(b, it.source...)
	b = binary.BigEndian.AppendUint32(b, it.sum)
	return binary.BigEndian.AppendUint32(b, checksum(b[start:]))
}

// decodeMeta fills the header fields of it from b, an entry of the
// records bucket, which comes from disk and is checked rather than
// trusted: a header, followed by the value when the header says it is
// inline (verifyValue checks that one). A format-2 header sets it.summed
// and it.sum, the checksum the value must match.
func decodeMeta(b []byte, it *item) error {
	if len(b) < metaFixed {
		return fmt.Errorf("%w: %d bytes, want at least %d", errCorrupt, len(b), metaFixed)
	}
	var inline []byte
	switch b[0] {
	case metaFormat1:
		it.summed = false
	case metaFormat:
		if b[1]&flagInline != 0 {
			n, err := headerLen(b)
			if err != nil {
				return err
			}
			b, inline = b[:n], b[n:]
		}
		if len(b) < metaFixed+sumLen {
			return fmt.Errorf("%w: %d bytes, want at least %d", errCorrupt, len(b), metaFixed+sumLen)
		}
		body := b[:len(b)-4]
		if got, want := checksum(body), binary.BigEndian.Uint32(b[len(body):]); got != want {
			return fmt.Errorf("%w: header checksum %08x, computed %08x", errCorrupt, want, got)
		}
		it.summed, it.sum = true, binary.BigEndian.Uint32(body[len(body)-4:])
		b = body[:len(body)-4]
	default:
		return fmt.Errorf("%w: unknown format %d", errCorrupt, b[0])
	}
	if b[1]&^(flagDeleted|flagInline) != 0 || b[0] == metaFormat1 && b[1]&flagInline != 0 {
		return fmt.Errorf("%w: unknown flags %#x", errCorrupt, b[1])
	}
	it.deleted = b[1]&flagDeleted != 0
	it.inline = b[1]&flagInline != 0
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
	if it.deleted && (size != 0 || it.inline) {
		return fmt.Errorf("%w: tombstone with a %d-byte value", errCorrupt, size)
	}
	if it.inline && uint64(len(inline)) != size {
		return fmt.Errorf("%w: inline value of %d bytes, header says %d", errCorrupt, len(inline), size)
	}
	it.size = int(size)
	l, n := uvarint(b)
	if n <= 0 || l != uint64(len(b)-n) {
		return fmt.Errorf("%w: bad source length", errCorrupt)
	}
	it.source = string(b[n:])
	return nil
}

// headerLen is the length of the format-2 header that starts b, found by
// reading its two lengths: a header followed by an inline value does not
// end where b does.
func headerLen(b []byte) (int, error) {
	n := metaFixed
	if _, k := uvarint(b[n:]); k > 0 {
		n += k
		if l, k := uvarint(b[n:]); k > 0 && l <= uint64(len(b)-n-k) {
			if n += k + int(l) + sumLen; n <= len(b) {
				return n, nil
			}
		}
	}
	return 0, fmt.Errorf("%w: a header with an inline value cut short (%d bytes)", errCorrupt, len(b))
}

// inlineValue is the value at the end of e, an entry of the records
// bucket whose header it says it holds its value inline.
func inlineValue(e []byte, it *item) []byte {
	if len(e) < it.size {
		return e // too short: verifyValue says so
	}
	return e[len(e)-it.size:]
}

// verifyValue checks v, read from disk, against it's header: its length,
// and its checksum when the header has one.
func verifyValue(v []byte, it *item) error {
	if len(v) != it.size {
		return fmt.Errorf("%w: value of %d bytes on disk, header says %d", errCorrupt, len(v), it.size)
	}
	if it.summed {
		if got := checksum(v); got != it.sum {
			return fmt.Errorf("%w: value checksum %08x, header says %08x", errCorrupt, got, it.sum)
		}
	}
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
