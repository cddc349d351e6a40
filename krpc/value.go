package krpc

import (
	"fmt"
	"slices"
	"strconv"
)

// Unmarshal decodes one complete bencoded value into Go values: int64,
// []byte (referring into b), []any, or map[string]any. It is for the
// payloads of dhtkit's own methods, which are not on the hot path; the
// same limits as Decode apply, and trailing bytes are an error.
func Unmarshal(b []byte) (any, error) {
	if len(b) > MaxPacketSize {
		return nil, &DecodeError{Err: ErrTooLarge}
	}
	s := scanner{b: b}
	v, err := s.value(0)
	if err != nil {
		return nil, err
	}
	if s.pos != len(b) {
		return nil, s.fail("", s.pos, ErrSyntax)
	}
	return v, nil
}

func (s *scanner) value(depth int) (any, error) {
	switch c := s.peek(); {
	case c == 'i':
		return s.int("")
	case isDigit(c):
		return s.str("")
	case c == 'l' || c == 'd':
		if depth >= MaxDepth {
			return nil, s.fail("", s.pos, ErrTooDeep)
		}
		s.pos++
		var list []any
		var dict map[string]any
		if c == 'd' {
			dict = make(map[string]any)
		}
		for {
			if s.pos >= len(s.b) {
				return nil, s.fail("", s.pos, ErrSyntax)
			}
			if s.b[s.pos] == 'e' {
				s.pos++
				if c == 'd' {
					return dict, nil
				}
				return list, nil
			}
			var key []byte
			if c == 'd' {
				k, err := s.str("")
				if err != nil {
					return nil, err
				}
				key = k
			}
			v, err := s.value(depth + 1)
			if err != nil {
				return nil, err
			}
			if c == 'd' {
				if _, dup := dict[string(key)]; dup {
					return nil, s.fail(string(key), s.pos, ErrDuplicate)
				}
				dict[internKey(key)] = v
			} else {
				list = append(list, v)
			}
		}
	default:
		return nil, s.fail("", s.pos, ErrSyntax)
	}
}

// AppendValue appends the canonical bencoding of v: integers of any Go
// integer type, string, []byte, []any and map[string]any (keys sorted);
// Raw is written as it is.
func AppendValue(dst []byte, v any) ([]byte, error) {
	switch v := v.(type) {
	case int:
		return appendInt(dst, int64(v)), nil
	case int64:
		return appendInt(dst, v), nil
	case uint64:
		if v > 1<<63-1 {
			return dst, fmt.Errorf("krpc: integer %d does not fit bencode's int64", v)
		}
		return appendInt(dst, int64(v)), nil
	case bool:
		if v {
			return appendInt(dst, 1), nil
		}
		return appendInt(dst, 0), nil
	case string:
		dst = strconv.AppendInt(dst, int64(len(v)), 10)
		return append(append(dst, ':'), v...), nil
	case []byte:
		return appendStr(dst, v), nil
	case Raw:
		return append(dst, v...), nil
	case []any:
		dst = append(dst, 'l')
		for _, x := range v {
			var err error
			if dst, err = AppendValue(dst, x); err != nil {
				return dst, err
			}
		}
		return append(dst, 'e'), nil
	case map[string]any:
		var small [8]string // a payload's dictionaries are small: no allocation
		keys := small[:0]
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		dst = append(dst, 'd')
		for _, k := range keys {
			dst = strconv.AppendInt(dst, int64(len(k)), 10)
			dst = append(append(dst, ':'), k...)
			var err error
			if dst, err = AppendValue(dst, v[k]); err != nil {
				return dst, err
			}
		}
		return append(dst, 'e'), nil
	}
	return dst, fmt.Errorf("krpc: cannot bencode %T", v)
}

// Raw is a value that is bencoded already.
type Raw []byte

// oneByteKeys holds every one-byte string, so that the one-letter keys of
// dhtkit's payloads ("k", "v", "t", ...) cost no allocation when decoded.
var oneByteKeys = func() (t [256]string) {
	for i := range t {
		t[i] = string([]byte{byte(i)})
	}
	return t
}()

// internKey returns key as a string, without allocating for the keys
// dhtkit's payloads use most.
func internKey(key []byte) string {
	switch {
	case len(key) == 1:
		return oneByteKeys[key[0]]
	case string(key) == "recs":
		return "recs"
	case string(key) == "ok":
		return "ok"
	}
	return string(key)
}
