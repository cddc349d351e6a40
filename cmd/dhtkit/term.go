package main

import (
	"fmt"
	"io"
	"os"
	"unicode/utf8"
)

// Values come from the network: a value that holds an escape sequence
// must not set the window title, clear the screen or rewrite what was
// printed before it when a command shows it on a terminal. Commands that
// print values write through terminalSafe, which escapes control
// characters when the writer is a terminal and leaves the bytes alone
// otherwise (a pipe, a file, --out): scripts get the value exactly.

// isTerminalWriter reports whether w is a terminal; tests replace it.
var isTerminalWriter = func(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && isTerminal(f)
}

// terminalSafe returns w, or an escaping writer in front of it when w is
// a terminal. flush writes what an escaping writer still holds (the start
// of a character cut by the end of the value).
func terminalSafe(w io.Writer) (out io.Writer, flush func() error) {
	if !isTerminalWriter(w) {
		return w, func() error { return nil }
	}
	e := &escaper{w: w}
	return e, e.flush
}

// escaper escapes what is written to it with appendEscaped, keeping a
// UTF-8 sequence cut between two writes whole.
type escaper struct {
	w     io.Writer
	carry []byte
	out   []byte
}

func (e *escaper) Write(p []byte) (int, error) {
	buf := append(e.carry, p...)
	cut := len(buf)
	for i := len(buf) - 1; i >= 0 && i >= len(buf)-utf8.UTFMax+1; i-- {
		if utf8.RuneStart(buf[i]) {
			if !utf8.FullRune(buf[i:]) {
				cut = i
			}
			break
		}
	}
	e.out = appendEscaped(e.out[:0], buf[:cut])
	e.carry = append([]byte(nil), buf[cut:]...)
	if _, err := e.w.Write(e.out); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (e *escaper) flush() error {
	if len(e.carry) == 0 {
		return nil
	}
	_, err := e.w.Write(appendEscaped(nil, e.carry))
	e.carry = nil
	return err
}

// escapeString is s as a terminal may show it.
func escapeString(s string) string { return string(appendEscaped(nil, []byte(s))) }

// appendEscaped appends b with every character a terminal would act on
// written out instead: C0 controls but newline and tab (so ESC, BEL, CR,
// backspace), DEL, C1 controls (U+0080–U+009F, which some terminals
// take as CSI and OSC), the Unicode bidirectional overrides that reorder
// what is shown, and bytes that are not UTF-8. They become \xNN or
// \u{NNNN}, visible.
func appendEscaped(dst, b []byte) []byte {
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		switch {
		case r == utf8.RuneError && size <= 1:
			dst = fmt.Appendf(dst, `\x%02x`, b[0])
		case r == '\n' || r == '\t':
			dst = append(dst, byte(r))
		case r < 0x20 || r == 0x7f:
			dst = fmt.Appendf(dst, `\x%02x`, r)
		case r >= 0x80 && r <= 0x9f, r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069:
			dst = fmt.Appendf(dst, `\u{%04x}`, r)
		default:
			dst = append(dst, b[:size]...)
		}
		b = b[size:]
	}
	return dst
}
