// Package seal admits only the members of a private network: it seals
// every datagram a node sends with a network key (AES-256-GCM) and
// opens every datagram it receives, dropping, without an answer, whatever
// was not sealed with a key of its keyring or was seen before.
//
// It sits in the UDP runtime between the socket and the engine, so the
// protocol engines never see a sealed byte and the simulator pays nothing.
//
// A keyring holds several keys, the way hashicorp/memberlist's does, so
// that a running network changes keys without downtime: the first key
// seals, every key opens. Rotating from key A to key B is three steps,
// each applied to every node before the next begins: install B as a
// second line (A, B), switch (B, A), remove A (B).
package seal

import (
	"bufio"
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
)

// KeySize is the length of a network key in bytes; a key file holds it as
// 64 hex digits per line.
const KeySize = 32

// MaxKeys bounds a keyring: opening tries at most this many keys.
const MaxKeys = 8

// Errors of LoadKeyring and ParseKeyring. Each is one line that says what
// to do.
var (
	ErrNoKeys         = errors.New("the key file holds no key (make one with `dhtkit network-key FILE`)")
	ErrLoosePerms     = errors.New("the key file is readable by other users: chmod 600 it")
	ErrKeyFileExists  = errors.New("the file exists; a network key is never overwritten (remove it first, or pick another name)")
	errTooManyKeys    = fmt.Errorf("a keyring holds at most %d keys", MaxKeys)
	errKeyIDCollision = errors.New("two keys of the keyring share an id; make a new key")
)

// key is one network key, ready to seal and open.
type key struct {
	id   uint32 // the first 4 bytes of SHA-256 of the key: which key sealed a datagram
	aead cipher.AEAD
}

// Keyring is an immutable list of network keys: the first seals, every
// one opens.
type Keyring struct {
	keys []key
}

// Len is the number of keys.
func (k *Keyring) Len() int { return len(k.keys) }

// IDs returns the key ids, the primary's first, as 8 hex digits each: what
// logs and status pages show of a keyring (never the keys).
func (k *Keyring) IDs() []string {
	ids := make([]string, len(k.keys))
	for i, kk := range k.keys {
		ids[i] = fmt.Sprintf("%08x", kk.id)
	}
	return ids
}

func keyID(raw []byte) uint32 {
	h := sha256.Sum256(append([]byte("dhtkit network key id\x00"), raw...))
	return binary.BigEndian.Uint32(h[:4])
}

// NewKeyring makes a keyring of raw keys of KeySize bytes each, the
// sealing key first.
func NewKeyring(raw ...[]byte) (*Keyring, error) {
	if len(raw) == 0 {
		return nil, ErrNoKeys
	}
	if len(raw) > MaxKeys {
		return nil, errTooManyKeys
	}
	ring := &Keyring{keys: make([]key, 0, len(raw))}
	for _, r := range raw {
		if len(r) != KeySize {
			return nil, fmt.Errorf("a network key is %d bytes, not %d", KeySize, len(r))
		}
		block, err := aes.NewCipher(r)
		if err != nil {
			return nil, err
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, err
		}
		k := key{id: keyID(r), aead: aead}
		for _, o := range ring.keys {
			if o.id == k.id {
				return nil, errKeyIDCollision
			}
		}
		ring.keys = append(ring.keys, k)
	}
	return ring, nil
}

// ParseKeyring reads a key file's text: one key per line as 64 hex
// digits; blank lines and lines starting with # are ignored.
func ParseKeyring(text []byte) (*Keyring, error) {
	var raw [][]byte
	sc := bufio.NewScanner(bytes.NewReader(text))
	for line := 1; sc.Scan(); line++ {
		s := strings.TrimSpace(sc.Text())
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		b, err := hex.DecodeString(s)
		if err != nil || len(b) != KeySize {
			return nil, fmt.Errorf("line %d is not a network key (want %d hex digits, as `dhtkit network-key` writes)", line, 2*KeySize)
		}
		raw = append(raw, b)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return NewKeyring(raw...)
}

// LoadKeyring reads the key file at path. It refuses a file that other
// users may read (any group or world permission bit): a network key is
// the only thing that keeps strangers out of the network.
func LoadKeyring(path string) (*Keyring, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("network key %s: no such file (make one with `dhtkit network-key %s`)", path, path)
		}
		return nil, fmt.Errorf("network key: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("network key: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("network key %s: mode %04o: %w", path, st.Mode().Perm(), ErrLoosePerms)
	}
	text, err := io.ReadAll(io.LimitReader(f, 1<<16))
	if err != nil {
		return nil, fmt.Errorf("network key: %w", err)
	}
	ring, err := ParseKeyring(text)
	if err != nil {
		return nil, fmt.Errorf("network key %s: %w", path, err)
	}
	return ring, nil
}

// NewKeyText returns a new random key as a key file's line.
func NewKeyText() ([]byte, error) {
	raw := make([]byte, KeySize)
	if _, err := rand.Read(raw); err != nil {
		return nil, err
	}
	return []byte(hex.EncodeToString(raw) + "\n"), nil
}

// WriteKeyFile writes a new random key to path with mode 0600. It never
// overwrites: an existing file is an error wrapping ErrKeyFileExists.
func WriteKeyFile(path string) error {
	text, err := NewKeyText()
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s: %w", path, ErrKeyFileExists)
		}
		return err
	}
	if _, err := f.Write(text); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	return f.Close()
}
