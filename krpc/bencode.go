package krpc

import (
	"errors"
	"fmt"
)

// Limits on what Decode accepts. They bound the work and the memory an
// untrusted datagram can cost, far above what any honest KRPC message needs.
const (
	// MaxPacketSize is the largest message Decode accepts. A UDP datagram
	// carries at most 65507 bytes, so no real packet exceeds it.
	MaxPacketSize = 64 << 10
	// MaxDepth is the deepest nesting of lists and dictionaries accepted,
	// the message's own dictionary included. It bounds the recursion of the
	// validator on hostile input such as "llllll...".
	MaxDepth = 32
)

// Errors that Decode and the parsers wrap in a *DecodeError. Test them with
// errors.Is. Any of them means the packet is a protocol error: a node answers
// a query that fails to decode with error 203 when it has its "t".
var (
	ErrSyntax    = errors.New("malformed bencode")
	ErrTooLarge  = errors.New("packet too large")
	ErrTooDeep   = errors.New("nesting too deep")
	ErrType      = errors.New("wrong type")
	ErrLength    = errors.New("wrong length")
	ErrRange     = errors.New("integer out of range")
	ErrInvalid   = errors.New("invalid value")
	ErrMissing   = errors.New("missing field")
	ErrDuplicate = errors.New("duplicate key")
)

// DecodeError says where and why a packet failed to decode.
type DecodeError struct {
	Field  string // the field being decoded, e.g. "a.id"; empty at top level
	Offset int    // byte offset in the packet where the problem starts
	Err    error  // one of the Err* sentinels
}

func (e *DecodeError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("krpc: %v at offset %d", e.Err, e.Offset)
	}
	return fmt.Sprintf("krpc: %s: %v at offset %d", e.Field, e.Err, e.Offset)
}

func (e *DecodeError) Unwrap() error { return e.Err }

// scanner reads bencode from b, starting at pos. Its methods return a
// *DecodeError for input that is not well-formed bencode; they never panic
// and never read outside b.
type scanner struct {
	b   []byte
	pos int
}

func (s *scanner) fail(field string, off int, err error) error {
	return &DecodeError{Field: field, Offset: off, Err: err}
}

// peek returns the next byte, or 0 at the end of input.
func (s *scanner) peek() byte {
	if s.pos < len(s.b) {
		return s.b[s.pos]
	}
	return 0
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// str reads a byte string. The result refers into b, capped so that
// appending to it cannot overwrite the rest of the packet.
func (s *scanner) str(field string) ([]byte, error) {
	b, i := s.b, s.pos
	if i >= len(b) || !isDigit(b[i]) {
		return nil, s.fail(field, i, ErrSyntax)
	}
	n := 0
	if b[i] == '0' {
		i++ // canonical: "0:" is the only length with a leading zero
	} else {
		for ; i < len(b) && isDigit(b[i]); i++ {
			n = n*10 + int(b[i]-'0')
			if n > len(b) { // also keeps n far from overflow
				return nil, s.fail(field, s.pos, ErrSyntax)
			}
		}
	}
	if i >= len(b) || b[i] != ':' {
		return nil, s.fail(field, i, ErrSyntax)
	}
	i++
	if n > len(b)-i {
		return nil, s.fail(field, s.pos, ErrSyntax)
	}
	s.pos = i + n
	return b[i : i+n : i+n], nil
}

// int reads an integer in canonical form (no leading zeros, no "-0") that
// fits in an int64.
func (s *scanner) int(field string) (int64, error) {
	b, i := s.b, s.pos
	if i >= len(b) || b[i] != 'i' {
		return 0, s.fail(field, i, ErrSyntax)
	}
	i++
	neg := i < len(b) && b[i] == '-'
	if neg {
		i++
	}
	var u uint64
	switch {
	case i >= len(b):
		return 0, s.fail(field, i, ErrSyntax)
	case b[i] == '0':
		if neg {
			return 0, s.fail(field, i, ErrSyntax) // "-0"
		}
		i++
	case isDigit(b[i]):
		const limit = 1 << 63 // magnitude of math.MinInt64
		for ; i < len(b) && isDigit(b[i]); i++ {
			d := uint64(b[i] - '0')
			if u > (limit-d)/10 {
				return 0, s.fail(field, s.pos, ErrRange)
			}
			u = u*10 + d
		}
	default:
		return 0, s.fail(field, i, ErrSyntax)
	}
	if i >= len(b) || b[i] != 'e' {
		return 0, s.fail(field, i, ErrSyntax)
	}
	if !neg && u > 1<<63-1 {
		return 0, s.fail(field, s.pos, ErrRange)
	}
	s.pos = i + 1
	if neg {
		return -int64(u), nil // u == 1<<63 wraps to math.MinInt64, as wanted
	}
	return int64(u), nil
}

// skip validates and steps over one value. depth is the number of lists and
// dictionaries that enclose it.
func (s *scanner) skip(field string, depth int) error {
	switch c := s.peek(); {
	case c == 'i':
		_, err := s.int(field)
		return err
	case isDigit(c):
		_, err := s.str(field)
		return err
	case c == 'l' || c == 'd':
		if depth >= MaxDepth {
			return s.fail(field, s.pos, ErrTooDeep)
		}
		s.pos++
		for {
			if s.pos >= len(s.b) {
				return s.fail(field, s.pos, ErrSyntax)
			}
			if s.b[s.pos] == 'e' {
				s.pos++
				return nil
			}
			if c == 'd' {
				if _, err := s.str(field); err != nil { // keys must be strings
					return err
				}
			}
			if err := s.skip(field, depth+1); err != nil {
				return err
			}
		}
	default:
		return s.fail(field, s.pos, ErrSyntax)
	}
}

// ValidBencode reports the length of the bencoded value at the start of b,
// or an error if it is not well-formed: how a BEP 44 node checks a "v" it is
// asked to store. Integers must be canonical and fit in an int64, strings
// must fit in b, dictionary keys must be strings, and nesting is limited to
// MaxDepth. Unsorted dictionary keys are accepted. Bytes after the value are
// not examined; the caller decides whether n == len(b) is required.
func ValidBencode(b []byte) (n int, err error) {
	s := scanner{b: b}
	if err := s.skip("", 0); err != nil {
		return 0, err
	}
	return s.pos, nil
}
