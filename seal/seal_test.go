package seal

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func rawKey(b byte) []byte { return bytes.Repeat([]byte{b}, KeySize) }

func ring(t testing.TB, keys ...byte) *Keyring {
	t.Helper()
	var raw [][]byte
	for _, k := range keys {
		raw = append(raw, rawKey(k))
	}
	r, err := NewKeyring(raw...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func node(b byte) [20]byte {
	var n [20]byte
	n[0] = b
	return n
}

func TestSealOpen(t *testing.T) {
	a := New(ring(t, 1), node(0xa), Config{})
	b := New(ring(t, 1), node(0xb), Config{})
	msg := []byte("d1:ad2:id20:xxxxxxxxxxxxxxxxxxxxe1:q4:ping1:t2:aa1:y1:qe")
	p := a.Seal(nil, msg, t0)
	if len(p) != len(msg)+Overhead {
		t.Fatalf("sealed %d bytes into %d, want %d", len(msg), len(p), len(msg)+Overhead)
	}
	if bytes.Contains(p, []byte("ping")) {
		t.Fatal("the sealed datagram shows its payload")
	}
	got, from, err := b.Open(bytes.Clone(p), t0.Add(time.Second))
	if err != nil || !bytes.Equal(got, msg) || from != node(0xa) {
		t.Fatalf("Open = %q, %x, %v; want the payload from node a", got, from, err)
	}
	if _, _, err := b.Open(bytes.Clone(p), t0.Add(time.Second)); !errors.Is(err, ErrReplayed) {
		t.Fatalf("a replay opened: err %v", err)
	}
	st := b.Stats()
	if st.Opened != 1 || st.Replayed != 1 || a.Stats().Sealed != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestOpenRefuses(t *testing.T) {
	msg := []byte("d1:y1:qe-payload-of-some-length")
	good := New(ring(t, 1), node(1), Config{}).Seal(nil, msg, t0)
	tests := []struct {
		name   string
		ring   *Keyring
		packet func() []byte
		at     time.Time
		want   error
	}{
		{"another key", ring(t, 2), func() []byte { return bytes.Clone(good) }, t0, ErrUnknownKey},
		{"plaintext KRPC", ring(t, 1), func() []byte { return bytes.Clone(msg) }, t0, ErrUnsealed},
		{"short plaintext", ring(t, 1), func() []byte { return []byte("de") }, t0, ErrUnsealed},
		{"empty", ring(t, 1), func() []byte { return nil }, t0, ErrShort},
		{"short", ring(t, 1), func() []byte { return good[:Overhead-1] }, t0, ErrShort},
		{"other version", ring(t, 1), func() []byte { p := bytes.Clone(good); p[0] = 7; return p }, t0, ErrForged},
		{"too old", ring(t, 1), func() []byte { return bytes.Clone(good) }, t0.Add(DefaultMaxAge + time.Second), ErrStale},
		{"from the future", ring(t, 1), func() []byte { return bytes.Clone(good) }, t0.Add(-DefaultMaxAge - time.Second), ErrStale},
	}
	// Every single-bit change anywhere but the key id is caught.
	for i := 5; i < len(good); i++ {
		tests = append(tests, struct {
			name   string
			ring   *Keyring
			packet func() []byte
			at     time.Time
			want   error
		}{"flip byte", ring(t, 1), func() []byte { p := bytes.Clone(good); p[i] ^= 0x10; return p }, t0, nil})
	}
	for _, tc := range tests {
		s := New(tc.ring, node(2), Config{})
		p := tc.packet()
		_, _, err := s.Open(p, tc.at)
		if err == nil {
			t.Errorf("%s: opened", tc.name)
			continue
		}
		if tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("%s: err %v, want %v", tc.name, err, tc.want)
		}
		if st := s.Stats(); st.Opened != 0 || len(s.win) != 0 {
			t.Errorf("%s: a refused datagram changed state: %+v, %d windows", tc.name, st, len(s.win))
		}
	}
}

func TestReplayWindow(t *testing.T) {
	a := New(ring(t, 1), node(1), Config{})
	b := New(ring(t, 1), node(2), Config{})
	var ps [][]byte
	for range windowBits + 10 {
		ps = append(ps, a.Seal(nil, []byte("x"), t0))
	}
	open := func(i int) error {
		_, _, err := b.Open(bytes.Clone(ps[i]), t0)
		return err
	}
	// Out of order within the window: all accepted once.
	for _, i := range []int{5, 3, 4, 0, 1, 2, 40, 39} {
		if err := open(i); err != nil {
			t.Fatalf("datagram %d in the window refused: %v", i, err)
		}
	}
	for _, i := range []int{5, 3, 0, 40} {
		if err := open(i); !errors.Is(err, ErrReplayed) {
			t.Fatalf("replay of %d: %v", i, err)
		}
	}
	// Far ahead: the window slides; what fell out of it is refused, even
	// if never seen.
	last := len(ps) - 1
	if err := open(last); err != nil {
		t.Fatal(err)
	}
	if err := open(6); !errors.Is(err, ErrReplayed) {
		t.Fatalf("a datagram older than the window opened: %v", err)
	}
	if err := open(last - 1); err != nil {
		t.Fatalf("a datagram just behind the newest refused: %v", err)
	}
}

func TestWindowShift(t *testing.T) {
	for _, n := range []uint64{1, 7, 63, 64, 65, 128, 200, 255, 256, 1000} {
		var w window
		w.accept(1, 0, 0)
		w.accept(1+n, 0, 0)
		// 1 is now n behind: refused if still in the window, else too old.
		if w.fresh(1) {
			t.Errorf("shift %d: sequence 1 fresh again", n)
		}
		if n > 1 && !w.fresh(2) && n-1 < windowBits {
			t.Errorf("shift %d: unseen sequence 2 refused", n)
		}
		if w.fresh(1 + n) {
			t.Errorf("shift %d: newest fresh again", n)
		}
	}
}

// A full table forgets the least recently heard sender, and a replay of
// the forgotten sender is still refused.
func TestReplayBoundedSources(t *testing.T) {
	b := New(ring(t, 1), node(0), Config{MaxSources: 4})
	var first []byte
	for i := range 10 {
		s := New(ring(t, 1), node(byte(i+1)), Config{})
		at := t0.Add(time.Duration(i) * time.Millisecond)
		p := s.Seal(nil, []byte("x"), at)
		if i == 0 {
			first = bytes.Clone(p)
		}
		if _, _, err := b.Open(p, at); err != nil {
			t.Fatalf("sender %d: %v", i, err)
		}
	}
	if len(b.win) > 4 {
		t.Fatalf("%d windows kept, more than the bound 4", len(b.win))
	}
	if _, _, err := b.Open(first, t0.Add(20*time.Millisecond)); !errors.Is(err, ErrReplayed) {
		t.Fatalf("a forgotten sender's datagram replayed: %v", err)
	}
	// A new sender, timestamped after the forgotten ones, is admitted.
	s := New(ring(t, 1), node(99), Config{})
	at := t0.Add(time.Second)
	if _, _, err := b.Open(s.Seal(nil, []byte("x"), at), at); err != nil {
		t.Fatalf("a new sender refused: %v", err)
	}
}

// 100,000 senders, each heard once, through the default table: memory
// stays at the bound, and a replay of any sender is still refused, the
// forgotten ones included.
func TestReplayManySources(t *testing.T) {
	n := 100_000
	if testing.Short() {
		n = 10_000
	}
	r := ring(t, 1)
	b := New(r, node(0), Config{})
	var kept [][]byte
	for i := range n {
		s := New(r, node(1), Config{})
		at := t0.Add(time.Duration(i) * time.Microsecond)
		p := s.Seal(nil, []byte("x"), at)
		if i%1000 == 0 {
			kept = append(kept, bytes.Clone(p))
		}
		if _, _, err := b.Open(p, at); err != nil {
			t.Fatalf("sender %d: %v", i, err)
		}
		if len(b.win) > DefaultMaxSources {
			t.Fatalf("%d windows after %d senders, over the bound %d", len(b.win), i+1, DefaultMaxSources)
		}
	}
	end := t0.Add(time.Duration(n) * time.Microsecond)
	for i, p := range kept {
		if _, _, err := b.Open(p, end); !errors.Is(err, ErrReplayed) {
			t.Fatalf("replay of sender %d: %v", i*1000, err)
		}
	}
}

// Rotation: A → (A,B) → (B,A) → B; at every step each pair of adjacent
// steps understands each other.
func TestRotation(t *testing.T) {
	steps := []*Keyring{ring(t, 1), ring(t, 1, 2), ring(t, 2, 1), ring(t, 2)}
	for i := 0; i+1 < len(steps); i++ {
		for _, pair := range [][2]*Keyring{{steps[i], steps[i+1]}, {steps[i+1], steps[i]}} {
			s := New(pair[0], node(1), Config{})
			r := New(pair[1], node(2), Config{})
			if _, _, err := r.Open(s.Seal(nil, []byte("x"), t0), t0); err != nil {
				t.Fatalf("step %d: %v sealed, %v opens: %v", i, pair[0].IDs(), pair[1].IDs(), err)
			}
		}
	}
	s := New(steps[0], node(1), Config{})
	r := New(steps[3], node(2), Config{})
	if _, _, err := r.Open(s.Seal(nil, []byte("x"), t0), t0); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("the removed key still opens: %v", err)
	}
	// SetKeyring switches a running sealer.
	s.SetKeyring(steps[3])
	if _, _, err := r.Open(s.Seal(nil, []byte("x"), t0), t0); err != nil {
		t.Fatal(err)
	}
}

func TestKeyFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "net.key")
	if err := WriteKeyFile(path); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", st.Mode().Perm())
	}
	before, _ := os.ReadFile(path)
	if err := WriteKeyFile(path); !errors.Is(err, ErrKeyFileExists) {
		t.Fatalf("overwrote: %v", err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Fatal("the refused overwrite changed the file")
	}
	r, err := LoadKeyring(path)
	if err != nil || r.Len() != 1 {
		t.Fatalf("LoadKeyring: %v, %v", r, err)
	}
	// Two different keys made by WriteKeyFile.
	p2 := filepath.Join(dir, "b.key")
	if err := WriteKeyFile(p2); err != nil {
		t.Fatal(err)
	}
	b2, _ := os.ReadFile(p2)
	if bytes.Equal(before, b2) {
		t.Fatal("two new keys are equal")
	}

	tests := []struct {
		name, text string
		mode       os.FileMode
		want       string
	}{
		{"two keys and a comment", "# rotation\n" + strings.Repeat("ab", 32) + "\n\n" + strings.Repeat("cd", 32) + "\n", 0o600, ""},
		{"group readable", strings.Repeat("ab", 32), 0o640, "chmod 600"},
		{"world readable", strings.Repeat("ab", 32), 0o604, "chmod 600"},
		{"empty", "\n# nothing\n", 0o600, "holds no key"},
		{"not hex", strings.Repeat("zz", 32), 0o600, "line 1 is not a network key"},
		{"short", strings.Repeat("ab", 16), 0o600, "line 1 is not a network key"},
		{"same key twice", strings.Repeat("ab", 32) + "\n" + strings.Repeat("ab", 32), 0o600, "share an id"},
		{"too many", strings.Repeat(strings.Repeat("ab", 32)+"\n", MaxKeys+1), 0o600, "at most"},
	}
	for _, tc := range tests {
		p := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_"))
		if err := os.WriteFile(p, []byte(tc.text), tc.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, tc.mode); err != nil {
			t.Fatal(err)
		}
		_, err := LoadKeyring(p)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: err %v, want one saying %q", tc.name, err, tc.want)
		case err != nil && strings.Contains(err.Error(), "\n"):
			t.Errorf("%s: the error is not one line: %q", tc.name, err)
		}
	}
	if _, err := LoadKeyring(filepath.Join(dir, "absent")); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("a missing file: %v", err)
	}
}

// sizes are typical payloads: a ping query, a find_node answer with 8
// nodes, a dk_store of a 1 KiB value.
var sizes = []int{80, 300, 1200}

func BenchmarkSeal(b *testing.B) {
	for _, size := range sizes {
		b.Run(strconv.Itoa(size), func(b *testing.B) {
			s := New(ring(b, 1), node(1), Config{})
			msg := bytes.Repeat([]byte("x"), size)
			buf := make([]byte, 0, size+Overhead)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				buf = s.Seal(buf[:0], msg, t0)
			}
		})
	}
}

func BenchmarkOpen(b *testing.B) {
	for _, size := range sizes {
		b.Run(strconv.Itoa(size), func(b *testing.B) {
			s := New(ring(b, 1), node(1), Config{})
			msg := bytes.Repeat([]byte("x"), size)
			// Pre-sealed datagrams, opened in order: the replay window slides.
			const n = 1 << 12
			ps := make([][]byte, n)
			for i := range ps {
				ps[i] = s.Seal(nil, msg, t0)
			}
			r := New(ring(b, 1), node(2), Config{})
			buf := make([]byte, len(ps[0]))
			b.SetBytes(int64(size))
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if i == n {
					// A fresh receiver: every sequence is new again.
					b.StopTimer()
					r = New(ring(b, 1), node(2), Config{})
					i = 0
					b.StartTimer()
				}
				copy(buf, ps[i])
				if _, _, err := r.Open(buf, t0); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}
