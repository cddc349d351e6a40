package krpc

import (
	"math"
	"math/bits"

	"github.com/dhtkit/dhtkit/id"
)

// ParseMethod returns the Method named by name, or MethodUnknown. It
// compares bytes and allocates nothing.
func ParseMethod(name []byte) Method {
	switch string(name) {
	case "ping":
		return MethodPing
	case "find_node":
		return MethodFindNode
	case "get_peers":
		return MethodGetPeers
	case "announce_peer":
		return MethodAnnouncePeer
	case "get":
		return MethodGet
	case "put":
		return MethodPut
	case "sample_infohashes":
		return MethodSampleInfohashes
	case "dk_store":
		return MethodStore
	case "dk_fetch":
		return MethodFetch
	case "dk_sync":
		return MethodSync
	case "dk_bye":
		return MethodBye
	case "dk_listen":
		return MethodListen
	case "dk_notify":
		return MethodNotify
	case "dk_keys":
		return MethodKeys
	case "dk_cas":
		return MethodCAS
	case "dk_load":
		return MethodLoad
	}
	return MethodUnknown
}

// Sections of a message whose problems are told apart: a problem inside "a"
// matters only if the message turns out to be a query, and so on. Keys may
// come in any order, so "y" is often known only at the end.
const (
	secTop = iota
	secA
	secR
	secE
	numSec
)

// decoder is the state of one Decode. Problems with a well-formed value
// (wrong type, wrong length, out of range) are recorded and decoding goes
// on, so that "t" and "y" are still read and the node can answer 203;
// malformed bencode stops it at once.
type decoder struct {
	scanner
	sec  int
	errs [numSec]*DecodeError
}

// invalid records the first problem of the current section.
func (d *decoder) invalid(field string, off int, err error) {
	if d.errs[d.sec] == nil {
		d.errs[d.sec] = &DecodeError{Field: field, Offset: off, Err: err}
	}
}

// wrong records a problem with the value at d.pos and steps over it.
func (d *decoder) wrong(field string, depth int, err error) error {
	d.invalid(field, d.pos, err)
	return d.skip(field, depth)
}

// strVal reads a string value; ok is false (and the value skipped and
// recorded as a problem) if the value is of another type.
func (d *decoder) strVal(field string, depth int) (s []byte, ok bool, err error) {
	if !isDigit(d.peek()) {
		return nil, false, d.wrong(field, depth, ErrType)
	}
	s, err = d.str(field)
	return s, err == nil, err
}

// intVal reads an integer value within [lo, hi], like strVal.
func (d *decoder) intVal(field string, depth int, lo, hi int64) (v int64, ok bool, err error) {
	if d.peek() != 'i' {
		return 0, false, d.wrong(field, depth, ErrType)
	}
	start := d.pos
	if v, err = d.int(field); err != nil {
		return 0, false, err
	}
	if v < lo || v > hi {
		d.invalid(field, start, ErrRange)
		return 0, false, nil
	}
	return v, true, nil
}

// fixedVal reads a string of exactly n bytes, like strVal.
func (d *decoder) fixedVal(field string, depth, n int) ([]byte, bool, error) {
	start := d.pos
	s, ok, err := d.strVal(field, depth)
	if ok && len(s) != n {
		d.invalid(field, start, ErrLength)
		ok = false
	}
	return s, ok, err
}

// idVal reads a 20-byte id into x.
func (d *decoder) idVal(field string, depth int, x *id.ID) (bool, error) {
	s, ok, err := d.fixedVal(field, depth, id.Len)
	if ok {
		*x = id.ID(s)
	}
	return ok, err
}

// rawVal reads any value and returns its bencoded bytes.
func (d *decoder) rawVal(field string, depth int) ([]byte, error) {
	start := d.pos
	if err := d.skip(field, depth); err != nil {
		return nil, err
	}
	return d.b[start:d.pos:d.pos], nil
}

// dict steps into a dictionary, or records a type problem and skips the value.
func (d *decoder) dict(field string, depth int) (ok bool, err error) {
	if d.peek() != 'd' {
		return false, d.wrong(field, depth, ErrType)
	}
	if depth+1 > MaxDepth {
		return false, d.fail(field, d.pos, ErrTooDeep)
	}
	d.pos++
	return true, nil
}

// list is dict for lists.
func (d *decoder) list(field string, depth int) (ok bool, err error) {
	if d.peek() != 'l' {
		return false, d.wrong(field, depth, ErrType)
	}
	if depth+1 > MaxDepth {
		return false, d.fail(field, d.pos, ErrTooDeep)
	}
	d.pos++
	return true, nil
}

// next reports whether a dictionary or list has another element, stepping
// over its final 'e' otherwise.
func (d *decoder) next(field string) (bool, error) {
	switch d.peek() {
	case 'e':
		d.pos++
		return false, nil
	case 0:
		if d.pos >= len(d.b) {
			return false, d.fail(field, d.pos, ErrSyntax)
		}
	}
	return true, nil
}

// Bits of the top-level keys, to catch duplicates.
const (
	topT uint16 = 1 << iota
	topY
	topQ
	topA
	topR
	topE
	topV
	topIP
	topRO
	topNW
)

// topName returns the name of the top-level key k, for errors.
func topName(k uint16) string {
	names := [...]string{"t", "y", "q", "a", "r", "e", "v", "ip", "ro", "nw"}
	return names[bits.TrailingZeros16(k)]
}

// Decode decodes one KRPC message from b into m, reusing m's capacity: once
// m has held a message as large, decoding allocates nothing. The byte slices
// of m refer into b, which must not change while m is in use.
//
// Decode accepts dictionary keys in any order and ignores unknown keys (after
// checking that they are well-formed), as real clients need; it rejects
// malformed bencode, non-canonical integers, wrong types, ids that are not
// 20 bytes, compact strings of the wrong length, duplicate keys, and
// packets larger than MaxPacketSize or nested deeper than MaxDepth.
//
// The error is a *DecodeError. When the packet is well-formed bencode but a
// value is wrong, m.T and m.Y are still filled in if present, so that a
// node can answer a bad query with error 203; m's other fields are then
// partial. Decode does not check which arguments a method requires: see
// Missing.
func (m *Msg) Decode(b []byte) error {
	m.Reset()
	if len(b) > MaxPacketSize {
		return &DecodeError{Offset: MaxPacketSize, Err: ErrTooLarge}
	}
	d := decoder{scanner: scanner{b: b}}
	switch c := d.peek(); {
	case c == 'l' || c == 'i' || isDigit(c):
		return d.fail("", 0, ErrType) // bencode, but not a dictionary
	case c != 'd':
		return d.fail("", 0, ErrSyntax)
	}
	d.pos++
	var seen uint16
	for {
		d.sec = secTop
		more, err := d.next("")
		if err != nil {
			return err
		}
		if !more {
			break
		}
		key, err := d.str("")
		if err != nil {
			return err
		}
		var k uint16
		switch string(key) {
		case "t":
			k = topT
		case "y":
			k = topY
		case "q":
			k = topQ
		case "a":
			k = topA
		case "r":
			k = topR
		case "e":
			k = topE
		case "v":
			k = topV
		case "ip":
			k = topIP
		case "ro":
			k = topRO
		case "nw":
			k = topNW
		default:
			if err := d.skip("", 1); err != nil {
				return err
			}
			continue
		}
		if seen&k != 0 {
			if err := d.wrong(topName(k), 1, ErrDuplicate); err != nil {
				return err
			}
			continue
		}
		seen |= k
		if err := d.top(m, k); err != nil {
			return err
		}
	}
	if d.pos != len(b) {
		return d.fail("", d.pos, ErrSyntax) // trailing bytes
	}

	d.sec = secTop
	switch {
	case seen&topT == 0:
		d.invalid("t", 0, ErrMissing)
	case seen&topY == 0:
		d.invalid("y", 0, ErrMissing)
	}
	sec := secTop
	switch m.Y {
	case Query:
		sec = secA
		if seen&topQ == 0 {
			d.invalid("q", 0, ErrMissing)
		} else if seen&topA == 0 {
			d.invalid("a", 0, ErrMissing)
		}
	case Response:
		sec = secR
		if seen&topR == 0 {
			d.invalid("r", 0, ErrMissing)
		}
	case Error:
		sec = secE
		if seen&topE == 0 {
			d.invalid("e", 0, ErrMissing)
		}
	}
	// Keep only the body that "y" names, so that m reads the same whatever
	// else a sloppy sender put in.
	if m.Y != Query {
		m.Q, m.QName, m.A = MethodUnknown, nil, Args{}
	}
	if m.Y != Response {
		m.R = Return{Nodes: m.R.Nodes[:0], Nodes6: m.R.Nodes6[:0], Values: m.R.Values[:0], Samples: m.R.Samples[:0]}
	}
	if m.Y != Error {
		m.E = KRPCError{}
	}
	if e := d.errs[secTop]; e != nil {
		return e
	}
	if sec != secTop && d.errs[sec] != nil {
		return d.errs[sec]
	}
	return nil
}

// top decodes the value of the top-level key k.
func (d *decoder) top(m *Msg, k uint16) error {
	const depth = 1
	d.sec = secTop
	var err error
	switch k {
	case topT:
		m.T, _, err = d.strVal("t", depth)
	case topY:
		start := d.pos
		var y []byte
		var ok bool
		if y, ok, err = d.strVal("y", depth); ok {
			if len(y) == 1 && (y[0] == 'q' || y[0] == 'r' || y[0] == 'e') {
				m.Y = Kind(y[0])
			} else {
				d.invalid("y", start, ErrInvalid)
			}
		}
	case topQ:
		var ok bool
		if m.QName, ok, err = d.strVal("q", depth); ok {
			m.Q = ParseMethod(m.QName)
		}
	case topA:
		d.sec = secA
		err = d.args(&m.A, depth)
	case topR:
		d.sec = secR
		err = d.ret(&m.R, depth)
	case topE:
		d.sec = secE
		err = d.errorList(&m.E, depth)
	case topV:
		m.V, _, err = d.strVal("v", depth)
	case topIP:
		start := d.pos
		var s []byte
		var ok bool
		if s, ok, err = d.strVal("ip", depth); ok {
			if m.IP, err = ParseCompactAddr(s); err != nil {
				d.invalid("ip", start, ErrLength)
				err = nil
			}
		}
	case topRO:
		var ro int64
		ro, _, err = d.intVal("ro", depth, math.MinInt64, math.MaxInt64)
		m.RO = ro != 0
	case topNW:
		m.Net, _, err = d.strVal("nw", depth)
	}
	return err
}

const (
	maxInt = int64(^uint(0) >> 1)
	minInt = -maxInt - 1
)

// args decodes the "a" dictionary, whose value is enclosed by depth
// containers.
func (d *decoder) args(a *Args, depth int) error {
	if ok, err := d.dict("a", depth); !ok {
		return err
	}
	depth++ // the values of "a" are inside it
	for {
		more, err := d.next("a")
		if err != nil {
			return err
		}
		if !more {
			return nil
		}
		key, err := d.str("a")
		if err != nil {
			return err
		}
		var f Field
		switch string(key) {
		case "id":
			f = HasID
		case "target":
			f = HasTarget
		case "info_hash":
			f = HasInfoHash
		case "port":
			f = HasPort
		case "implied_port":
			f = HasImpliedPort
		case "token":
			f = HasToken
		case "want":
			f = HasWant
		case "v":
			f = HasV
		case "k":
			f = HasK
		case "sig":
			f = HasSig
		case "salt":
			f = HasSalt
		case "seq":
			f = HasSeq
		case "cas":
			f = HasCAS
		case "x":
			f = HasX
		case "scrape":
			f = HasScrape
		case "noseed":
			f = HasNoSeed
		case "seed":
			f = HasSeed
		default:
			if err := d.skip("a", depth); err != nil {
				return err
			}
			continue
		}
		if a.Has&f != 0 {
			if err := d.wrong("a."+f.String(), depth, ErrDuplicate); err != nil {
				return err
			}
			continue
		}
		ok, err := d.arg(a, f, depth)
		if err != nil {
			return err
		}
		if ok {
			a.Has |= f
		}
	}
}

// arg decodes the value of the argument f.
func (d *decoder) arg(a *Args, f Field, depth int) (ok bool, err error) {
	var n int64
	switch f {
	case HasID:
		return d.idVal("a.id", depth, &a.ID)
	case HasTarget:
		return d.idVal("a.target", depth, &a.Target)
	case HasInfoHash:
		return d.idVal("a.info_hash", depth, &a.InfoHash)
	case HasPort:
		n, ok, err = d.intVal("a.port", depth, 0, 1<<16-1)
		a.Port = int(n)
	case HasImpliedPort:
		n, ok, err = d.intVal("a.implied_port", depth, math.MinInt64, math.MaxInt64)
		a.ImpliedPort = n != 0
	case HasToken:
		a.Token, ok, err = d.strVal("a.token", depth)
	case HasWant:
		return d.want(a, depth)
	case HasV:
		a.V, err = d.rawVal("a.v", depth)
		ok = err == nil
	case HasK:
		a.K, ok, err = d.fixedVal("a.k", depth, 32)
	case HasSig:
		a.Sig, ok, err = d.fixedVal("a.sig", depth, 64)
	case HasSalt:
		a.Salt, ok, err = d.strVal("a.salt", depth)
	case HasX:
		a.X, err = d.rawVal("a.x", depth)
		ok = err == nil
	case HasSeq:
		a.Seq, ok, err = d.intVal("a.seq", depth, math.MinInt64, math.MaxInt64)
	case HasCAS:
		a.CAS, ok, err = d.intVal("a.cas", depth, math.MinInt64, math.MaxInt64)
	case HasScrape:
		n, ok, err = d.intVal("a.scrape", depth, math.MinInt64, math.MaxInt64)
		a.Scrape = n == 1
	case HasNoSeed:
		n, ok, err = d.intVal("a.noseed", depth, math.MinInt64, math.MaxInt64)
		a.NoSeed = n == 1
	case HasSeed:
		n, ok, err = d.intVal("a.seed", depth, math.MinInt64, math.MaxInt64)
		a.Seed = n == 1
	}
	return ok, err
}

// want decodes BEP 32's list of address families. Unknown families are
// ignored, as BEP 32 leaves room for more.
func (d *decoder) want(a *Args, depth int) (bool, error) {
	if ok, err := d.list("a.want", depth); !ok {
		return false, err
	}
	ok := true
	for {
		more, err := d.next("a.want")
		if err != nil || !more {
			return ok && err == nil, err
		}
		s, sok, err := d.strVal("a.want", depth+1)
		if err != nil {
			return false, err
		}
		switch {
		case !sok:
			ok = false
		case string(s) == "n4":
			a.Want |= WantN4
		case string(s) == "n6":
			a.Want |= WantN6
		}
	}
}

// ret decodes the "r" dictionary.
func (d *decoder) ret(r *Return, depth int) error {
	if ok, err := d.dict("r", depth); !ok {
		return err
	}
	depth++
	for {
		more, err := d.next("r")
		if err != nil {
			return err
		}
		if !more {
			return nil
		}
		key, err := d.str("r")
		if err != nil {
			return err
		}
		var f Field
		switch string(key) {
		case "id":
			f = HasID
		case "nodes":
			f = HasNodes
		case "nodes6":
			f = HasNodes6
		case "token":
			f = HasToken
		case "values":
			f = HasValues
		case "v":
			f = HasV
		case "k":
			f = HasK
		case "sig":
			f = HasSig
		case "seq":
			f = HasSeq
		case "samples":
			f = HasSamples
		case "interval":
			f = HasInterval
		case "num":
			f = HasNum
		case "x":
			f = HasX
		case "BFsd":
			f = HasBFsd
		case "BFpe":
			f = HasBFpe
		default:
			if err := d.skip("r", depth); err != nil {
				return err
			}
			continue
		}
		if r.Has&f != 0 {
			if err := d.wrong("r."+f.String(), depth, ErrDuplicate); err != nil {
				return err
			}
			continue
		}
		ok, err := d.retField(r, f, depth)
		if err != nil {
			return err
		}
		if ok {
			r.Has |= f
		}
	}
}

// retField decodes the value of the return field f.
func (d *decoder) retField(r *Return, f Field, depth int) (ok bool, err error) {
	start := d.pos
	var s []byte
	var n int64
	switch f {
	case HasID:
		return d.idVal("r.id", depth, &r.ID)
	case HasNodes:
		if s, ok, err = d.strVal("r.nodes", depth); ok {
			if r.Nodes, err = ParseCompactNodes(r.Nodes[:0], s); err != nil {
				d.invalid("r.nodes", start, ErrLength)
				return false, nil
			}
		}
	case HasNodes6:
		if s, ok, err = d.strVal("r.nodes6", depth); ok {
			if r.Nodes6, err = ParseCompactNodes6(r.Nodes6[:0], s); err != nil {
				d.invalid("r.nodes6", start, ErrLength)
				return false, nil
			}
		}
	case HasToken:
		r.Token, ok, err = d.strVal("r.token", depth)
	case HasValues:
		return d.values(r, depth)
	case HasV:
		r.V, err = d.rawVal("r.v", depth)
		ok = err == nil
	case HasK:
		r.K, ok, err = d.fixedVal("r.k", depth, 32)
	case HasSig:
		r.Sig, ok, err = d.fixedVal("r.sig", depth, 64)
	case HasSeq:
		r.Seq, ok, err = d.intVal("r.seq", depth, math.MinInt64, math.MaxInt64)
	case HasSamples:
		if s, ok, err = d.strVal("r.samples", depth); ok {
			if len(s)%id.Len != 0 {
				d.invalid("r.samples", start, ErrLength)
				return false, nil
			}
			r.Samples = r.Samples[:0]
			for ; len(s) > 0; s = s[id.Len:] {
				r.Samples = append(r.Samples, id.ID(s[:id.Len]))
			}
		}
	case HasInterval:
		n, ok, err = d.intVal("r.interval", depth, minInt, maxInt)
		r.Interval = int(n)
	case HasNum:
		n, ok, err = d.intVal("r.num", depth, minInt, maxInt)
		r.Num = int(n)
	case HasX:
		r.X, err = d.rawVal("r.x", depth)
		ok = err == nil
	case HasBFsd:
		r.BFsd, ok, err = d.fixedVal("r.BFsd", depth, BloomBytes)
	case HasBFpe:
		r.BFpe, ok, err = d.fixedVal("r.BFpe", depth, BloomBytes)
	}
	return ok, err
}

// values decodes the list of compact peers of a get_peers response.
func (d *decoder) values(r *Return, depth int) (bool, error) {
	if ok, err := d.list("r.values", depth); !ok {
		return false, err
	}
	r.Values = r.Values[:0]
	ok := true
	for {
		more, err := d.next("r.values")
		if err != nil || !more {
			return ok && err == nil, err
		}
		start := d.pos
		s, sok, err := d.strVal("r.values", depth+1)
		if err != nil {
			return false, err
		}
		if !sok {
			ok = false
			continue
		}
		p, perr := ParseCompactAddr(s)
		if perr != nil {
			d.invalid("r.values", start, ErrLength)
			ok = false
			continue
		}
		r.Values = append(r.Values, p)
	}
}

// errorList decodes the "e" list: a code and a message. Elements after those
// two are ignored.
func (d *decoder) errorList(e *KRPCError, depth int) error {
	start := d.pos
	if ok, err := d.list("e", depth); !ok {
		return err
	}
	var i int
	for ; ; i++ {
		more, err := d.next("e")
		if err != nil {
			return err
		}
		if !more {
			break
		}
		switch i {
		case 0:
			var code int64
			code, _, err = d.intVal("e.code", depth+1, minInt, maxInt)
			e.Code = int(code)
		case 1:
			e.Msg, _, err = d.strVal("e.msg", depth+1)
		default:
			err = d.skip("e", depth+1)
		}
		if err != nil {
			return err
		}
	}
	if i < 2 {
		d.invalid("e", start, ErrMissing)
	}
	return nil
}

// Missing returns the fields that m's method requires but m lacks: for a
// query, the arguments BEP 5, 44 and 51 make mandatory; for a response,
// the sender's id. A node answers a query with missing arguments with error
// 203. Queries of unknown methods need only an id.
func (m *Msg) Missing() Field {
	switch m.Y {
	case Query:
		return requiredArgs(m.Q, &m.A) &^ m.A.Has
	case Response:
		return HasID &^ m.R.Has
	}
	return 0
}

func requiredArgs(q Method, a *Args) Field {
	req := HasID
	switch q {
	case MethodFindNode, MethodGet, MethodSampleInfohashes:
		req |= HasTarget
	case MethodGetPeers:
		req |= HasInfoHash
	case MethodAnnouncePeer:
		req |= HasInfoHash | HasToken
		if !a.ImpliedPort {
			req |= HasPort
		}
	case MethodPut:
		req |= HasToken | HasV
		if a.Has&(HasK|HasSig|HasSeq|HasSalt|HasCAS) != 0 { // a mutable item
			req |= HasK | HasSig | HasSeq
		}
	}
	return req
}
