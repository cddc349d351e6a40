package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/dhtkit/dhtkit/httpapi"
	"github.com/dhtkit/dhtkit/internal/syncbuf"
)

func TestAppendEscaped(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"plain text\nand a\ttab", "plain text\nand a\ttab"},
		{"\x1b]0;pwned\x07", `\x1b]0;pwned\x07`},
		{"\x1b[2J\x1b[H", `\x1b[2J\x1b[H`},
		{"over\rwrite\b", `over\x0dwrite\x08`},
		{"del\x7f", `del\x7f`},
		{"c1 \u009b2J", `c1 \u{009b}2J`},
		{"bidi \u202egnp.exe", `bidi \u{202e}gnp.exe`},
		{"bad \xff utf8", `bad \xff utf8`},
		{"héllo wörld ✓", "héllo wörld ✓"},
	} {
		if got := escapeString(tc.in); got != tc.want {
			t.Errorf("escape(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestEscaperSplitsRunes writes a value one byte at a time: characters
// cut between writes come out whole, escapes too.
func TestEscaperSplitsRunes(t *testing.T) {
	in := "a✓\x1b[31mé\xff\u009b"
	var out bytes.Buffer
	e := &escaper{w: &out}
	for i := range len(in) {
		if _, err := e.Write([]byte{in[i]}); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.flush(); err != nil {
		t.Fatal(err)
	}
	if want := escapeString(in); out.String() != want {
		t.Fatalf("byte by byte: %q, want %q", out.String(), want)
	}
	e = &escaper{w: &out}
	out.Reset()
	e.Write([]byte("x\xe2\x9c")) // a cut ✓ at the very end
	e.flush()
	if out.String() != `x\xe2\x9c` {
		t.Fatalf("a cut character at the end: %q", out.String())
	}
}

// TestTerminalEscaping stores a value that would set the window title and
// clear the screen, and reads it with get and listen: escaped on a
// terminal, raw bytes into a pipe or --out.
func TestTerminalEscaping(t *testing.T) {
	nodes := testNetwork(t, 4)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	url, err := serveHTTP(ctx, "127.0.0.1:0", nodes[1], httpapi.Options{}, nodes[1].Logger())
	if err != nil {
		t.Fatal(err)
	}
	api := "--api=" + strings.TrimSuffix(url, "/")
	const evil = "title\x1b]0;pwned\x07clear\x1b[2J\x1b[H\u009b31m"
	if code, _, errs := dhtkitCmd(t, "put", "evil", evil, api); code != 0 {
		t.Fatalf("put: %s", errs)
	}
	tty := func(on bool) {
		old := isTerminalWriter
		isTerminalWriter = func(io.Writer) bool { return on }
		t.Cleanup(func() { isTerminalWriter = old })
	}

	tty(false)
	if code, out, _ := dhtkitCmd(t, "get", "evil", api); code != 0 || out != evil {
		t.Fatalf("get into a pipe: exit %d, %q; want the raw bytes", code, out)
	}
	tty(true)
	code, out, _ := dhtkitCmd(t, "get", "evil", api)
	if code != 0 || strings.ContainsAny(out, "\x1b\x07\u009b") || !strings.Contains(out, `\x1b]0;pwned\x07`) {
		t.Fatalf("get on a terminal: exit %d, %q", code, out)
	}
	path := filepath.Join(t.TempDir(), "v")
	if code, _, errs := dhtkitCmd(t, "get", "evil", "--out", path, api); code != 0 {
		t.Fatalf("get --out: %s", errs)
	}
	if b, _ := os.ReadFile(path); string(b) != evil {
		t.Fatalf("get --out on a terminal wrote %q; want the raw bytes", b)
	}

	// listen prints the current value first, escaped.
	var buf syncBuffer
	lctx, lcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer lcancel()
	done := make(chan int)
	go func() { done <- run(lctx, []string{"listen", "evil", api}, &buf, io.Discard) }()
	for !strings.Contains(buf.String(), "pwned") {
		if lctx.Err() != nil {
			t.Fatalf("listen printed %q", buf.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	lcancel()
	<-done
	if s := buf.String(); strings.ContainsAny(s, "\x1b\x07\u009b") || !strings.Contains(s, `\x1b[2J`) {
		t.Fatalf("listen on a terminal: %q", s)
	}
}

type syncBuffer = syncbuf.Buffer

// TestOwnerCommands: put --sign makes the key the signer's; get --signer
// fails for another key and for an unsigned value; neither an unsigned
// put nor a plain del changes the key; del --sign deletes it; --heir
// hands it to a new key.
func TestOwnerCommands(t *testing.T) {
	nodes := testNetwork(t, 5)
	run, _ := cliThrough(t, nodes[2])
	dir := t.TempDir()
	alice, bob := filepath.Join(dir, "alice"), filepath.Join(dir, "bob")
	pub := func(path string) string {
		_, out, _ := dhtkitCmd(t, "key", "--key", path)
		return strings.Fields(out)[1]
	}
	alicePub, bobPub := pub(alice), pub(bob)

	if code, _, errs := run("put", "owned", "v1", "--sign", "--key", alice); code != 0 {
		t.Fatalf("put --sign: %s", errs)
	}
	if code, out, errs := run("get", "owned", "--signer", alicePub); code != 0 || out != "v1" {
		t.Fatalf("get --signer alice: exit %d, %q, %s", code, out, errs)
	}
	if code, out, errs := run("get", "owned", "--signer", bobPub); code != 1 || out != "" || !strings.Contains(errs, "not by "+bobPub) {
		t.Fatalf("get --signer bob: exit %d, %q, %s", code, out, errs)
	}
	if code, _, errs := run("put", "owned", "mallory", "--sign", "--key", bob); code == 0 {
		t.Fatalf("bob overwrote alice's key: %s", errs)
	}
	if code, _, _ := run("put", "owned", "unsigned"); code == 0 {
		t.Fatal("an unsigned put overwrote alice's key")
	}
	if code, _, _ := run("del", "owned"); code == 0 {
		t.Fatal("a plain del removed alice's key")
	}
	if code, out, _ := run("get", "owned"); code != 0 || out != "v1" {
		t.Fatalf("after the refused writes: exit %d, %q", code, out)
	}
	// A large value (chunks) signed, and signed and encrypted to its owner:
	// the signature covers every chunk.
	big := make([]byte, 300<<10)
	rand.Read(big)
	bigPath := filepath.Join(dir, "big")
	os.WriteFile(bigPath, big, 0o600)
	_, keys, _ := dhtkitCmd(t, "key", "--key", alice)
	encPub := strings.Fields(keys)[3]
	for _, extra := range [][]string{nil, {"--encrypt-to", encPub}} {
		args := append([]string{"put", "big", "--file", bigPath, "--sign", "--key", alice}, extra...)
		if code, _, errs := run(args...); code != 0 {
			t.Fatalf("put --sign --file %v: %s", extra, errs)
		}
		out := filepath.Join(dir, "big.out")
		if code, _, errs := run("get", "big", "--signer", alicePub, "--key", alice, "--out", out); code != 0 || !strings.Contains(errs, "signed by "+alicePub) {
			t.Fatalf("get --signer of a large value %v: exit %d, %s", extra, code, errs)
		}
		if got, _ := os.ReadFile(out); !bytes.Equal(got, big) {
			t.Fatalf("a large signed value %v came back different (%d bytes)", extra, len(got))
		}
		os.Remove(out)
		if code, _, _ := run("get", "big", "--signer", bobPub, "--key", alice, "--out", out); code != 1 {
			t.Fatalf("get --signer bob of alice's large value: exit %d", code)
		}
		if _, err := os.Stat(out); err == nil {
			t.Fatal("a refused get --signer left its --out file")
		}
	}
	if code, _, _ := run("put", "big", "--file", bigPath); code == 0 {
		t.Fatal("an unsigned large put overwrote alice's large value")
	}

	// An unsigned value with --signer fails too.
	run("put", "plain", "anyone's")
	if code, out, errs := run("get", "plain", "--signer", alicePub); code != 1 || out != "" || !strings.Contains(errs, "not signed") {
		t.Fatalf("get --signer of an unsigned value: exit %d, %q, %s", code, out, errs)
	}
	// Rotation: alice names bob her heir; bob writes; alice no longer can.
	if code, _, errs := run("put", "owned", "v2, handing over", "--sign", "--key", alice, "--heir", bobPub); code != 0 {
		t.Fatalf("put --heir: %s", errs)
	}
	if code, _, errs := run("put", "owned", "bob's now", "--sign", "--key", bob); code != 0 {
		t.Fatalf("the heir's put: %s", errs)
	}
	if code, out, _ := run("get", "owned", "--signer", bobPub); code != 0 || out != "bob's now" {
		t.Fatalf("get --signer bob after the hand-over: exit %d, %q", code, out)
	}
	if code, _, _ := run("put", "owned", "alice again", "--sign", "--key", alice); code == 0 {
		t.Fatal("alice wrote after handing the key to bob")
	}
	if code, _, errs := run("del", "owned", "--sign", "--key", bob); code != 0 {
		t.Fatalf("del --sign: %s", errs)
	}
	if code, _, _ := run("get", "owned"); code != exitNotFound {
		t.Fatalf("get after del --sign: exit %d", code)
	}
}

// TestHTTPToken: a node refuses an API off loopback without a token; a
// data command without the token gets a clear refusal, and succeeds with
// --token FILE or DHTKIT_TOKEN.
func TestHTTPToken(t *testing.T) {
	code, _, errs := dhtkitCmd(t, "node", "--listen", "127.0.0.1:0", "--http", "0.0.0.0:0")
	if code != exitUsage || !strings.Contains(errs, "without a token") {
		t.Fatalf("node --http 0.0.0.0:0: exit %d, %s", code, errs)
	}
	// --http-insecure starts, and says what it means.
	var stdout, stderr syncBuffer
	nctx, ncancel := context.WithTimeout(context.Background(), 30*time.Second)
	done := make(chan int)
	go func() {
		done <- run(nctx, []string{"node", "--listen", "127.0.0.1:0", "--http", "0.0.0.0:0", "--http-insecure"}, &stdout, &stderr)
	}()
	for !strings.Contains(stdout.String(), "web UI and HTTP API on") && nctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
	}
	ncancel()
	<-done
	if !strings.Contains(stderr.String(), "anyone who can reach") {
		t.Fatalf("node --http-insecure did not say so: %q", stderr.String())
	}

	dir := t.TempDir()
	loose := filepath.Join(dir, "loose")
	os.WriteFile(loose, []byte("secret\n"), 0o644)
	if _, err := loadToken(loose, false); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("a token file others can read: %v", err)
	}
	file := filepath.Join(dir, "token")
	tok, err := loadToken(file, true)
	if err != nil || len(tok) != 64 {
		t.Fatalf("making a token: %q, %v", tok, err)
	}
	if again, _ := loadToken(file, true); again != tok {
		t.Fatal("a second load made another token")
	}

	nodes := testNetwork(t, 3)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	url, err := serveHTTP(ctx, "127.0.0.1:0", nodes[0], httpapi.Options{Token: tok}, nodes[0].Logger())
	if err != nil {
		t.Fatal(err)
	}
	api := "--api=" + strings.TrimSuffix(url, "/")
	if code, _, errs := dhtkitCmd(t, "put", "k", "v", api); code != 1 || !strings.Contains(errs, "needs its token") {
		t.Fatalf("put without a token: exit %d, %s", code, errs)
	}
	if code, _, errs := dhtkitCmd(t, "put", "k", "v", api, "--token", file); code != 0 {
		t.Fatalf("put --token: %s", errs)
	}
	t.Setenv("DHTKIT_TOKEN", tok)
	if code, out, errs := dhtkitCmd(t, "get", "k", api); code != 0 || out != "v" {
		t.Fatalf("get with DHTKIT_TOKEN: exit %d, %q, %s", code, out, errs)
	}
	t.Setenv("DHTKIT_TOKEN", "wrong")
	if code, _, _ := dhtkitCmd(t, "get", "k", api); code != 1 {
		t.Fatalf("get with a wrong token: exit %d", code)
	}
}

// FuzzEscape: whatever a value holds, what reaches the terminal is valid
// UTF-8 without a control character but newline and tab, and the
// escaper fed in pieces writes the same.
func FuzzEscape(f *testing.F) {
	f.Add([]byte("\x1b]0;title\x07\u009b2J\xff\xe2\x9c"), 3)
	f.Fuzz(func(t *testing.T, b []byte, cut int) {
		out := appendEscaped(nil, b)
		if !utf8.Valid(out) {
			t.Fatalf("invalid UTF-8 out of %q", b)
		}
		for _, r := range string(out) {
			if (r < 0x20 && r != '\n' && r != '\t') || r == 0x7f || (r >= 0x80 && r <= 0x9f) || (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069) {
				t.Fatalf("%U reaches the terminal from %q", r, b)
			}
		}
		var buf bytes.Buffer
		e := &escaper{w: &buf}
		if len(b) > 0 {
			cut = ((cut % len(b)) + len(b)) % len(b)
		} else {
			cut = 0
		}
		e.Write(b[:cut])
		e.Write(b[cut:])
		e.flush()
		if buf.String() != string(out) {
			t.Fatalf("in two pieces %q, at once %q", buf.String(), out)
		}
	})
}
