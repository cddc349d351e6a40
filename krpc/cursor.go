package krpc

// Cursor reads bencode one token at a time and builds no Go values: a
// payload decoded on every put (a dk_store's records) walks it with a
// Cursor where Unmarshal would allocate a map per dictionary and an
// interface per value. It checks what Unmarshal checks of each token it
// reads (canonical integers that fit an int64, strings within the input)
// and never reads outside its input; the caller checks the shape, bounds
// its own nesting, and calls Done to refuse trailing bytes.
type Cursor struct{ s scanner }

// NewCursor returns a Cursor at the start of b, or false if b is longer
// than any message Decode or Unmarshal accepts (MaxPacketSize).
func NewCursor(b []byte) (Cursor, bool) {
	return Cursor{s: scanner{b: b}}, len(b) <= MaxPacketSize
}

// Open steps into a list (kind 'l') or a dictionary (kind 'd') if one
// starts here, and reports whether it did.
func (c *Cursor) Open(kind byte) bool {
	if c.s.peek() != kind {
		return false
	}
	c.s.pos++
	return true
}

// Close steps out of the list or dictionary being read if it ends here,
// and reports whether it did.
func (c *Cursor) Close() bool {
	if c.s.peek() != 'e' {
		return false
	}
	c.s.pos++
	return true
}

// Int reads an integer.
func (c *Cursor) Int() (int64, error) { return c.s.int("") }

// Str reads a byte string. The result refers into the input, capped so
// that appending to it cannot overwrite the rest.
func (c *Cursor) Str() ([]byte, error) { return c.s.str("") }

// Done reports whether the whole input has been read.
func (c *Cursor) Done() bool { return c.s.pos == len(c.s.b) }
