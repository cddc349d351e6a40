// Package owner makes a key its signer's: a record whose value is a signed
// envelope belongs to the envelope's signer, and a replica accepts a later
// write or delete of that key only when the same signer (or the heir it
// named) signed it with a newer version. Admit is the rule, a pure
// function that every replica runs on every record it is about to store
// (store.Config.Admit), whichever way the record arrived.
//
// # The envelope
//
//	"DKS\x02" signer(32) sig(64) time(8) writer(8) expires(8) flags(1) [heir(32)] payload
//
// Integers are big-endian; time and writer are the record's store.Version,
// expires its expiry in Unix milliseconds (never zero: an owned value
// always expires, and its owner renews it). Flag 0x01 marks a signed
// delete (the payload is empty), flag 0x02 says an heir's public key
// follows, flag 0x04 says the payload is the manifest of a value stored
// as chunks (package dhtkit's layout), which names every chunk by its
// hash: the signature then covers a value of any size. The ed25519 signature covers
//
//	"DKS\x02" uvarint(len(key)) key time writer expires flags [heir] payload
//
// so a replica can check that the record it is given is the one the owner
// wrote: the same key, version, expiry, deletion and bytes. An envelope
// moved under another key, given another version or a later expiry, or
// turned from a value into a delete, does not verify.
//
// The signer picks the version (the owner's clock, not the replica's): the
// version is part of what is signed, so a replica cannot pick it. Versions
// of one key still follow the store's single order (store.Version), so
// replicas converge by the usual newest-wins rule and anti-entropy needs
// nothing new.
//
// A signed delete travels as a record that is not a store tombstone but a
// value holding a delete envelope: it keeps the key its owner's, and
// readers treat it as absent. A plain tombstone carries no signature and
// cannot delete an owned key.
package owner

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha1"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/dhtkit/dhtkit/store"
)

// Magic starts every envelope.
var Magic = []byte("DKS\x02")

// Flags of an envelope.
const (
	flagDelete  = 1 << 0
	flagHeir    = 1 << 1
	flagChunked = 1 << 2
)

// headerLen is the length of an envelope without heir and payload.
const headerLen = 4 + ed25519.PublicKeySize + ed25519.SignatureSize + 8 + 8 + 8 + 1

// Errors of Parse, Verify and Admit; Admit wraps them with the details.
var (
	// ErrForged: the envelope is malformed, its signature does not
	// verify, or the record does not carry the version, expiry or kind
	// (value or delete) that was signed.
	ErrForged = errors.New("the record's signature does not verify")
	// ErrNotOwner: the key belongs to another signer.
	ErrNotOwner = errors.New("the key belongs to another signer")
	// ErrStale: the owner's record is not newer than the stored one (an
	// old signed record replayed).
	ErrStale = errors.New("not newer than the owner's stored version")
)

// Envelope is a parsed signed record.
type Envelope struct {
	Signer  ed25519.PublicKey
	Sig     []byte
	Version store.Version
	Expires time.Time // millisecond precision
	Deleted bool
	// Heir, when set, may sign the key's next versions too: how an owner
	// hands the key to a new signing key.
	Heir ed25519.PublicKey
	// Chunked: Payload is the manifest of a value stored as chunks.
	Chunked bool
	Payload []byte
}

// Is reports whether b starts like an envelope.
func Is(b []byte) bool { return bytes.HasPrefix(b, Magic) }

// Writer is the store.Version writer of the versions a signer issues: the
// first 64 bits of SHA-1(pub), so that two owners never tie.
func Writer(pub ed25519.PublicKey) uint64 {
	h := sha1.Sum(pub)
	return binary.BigEndian.Uint64(h[:8])
}

// Sign returns the envelope of e, signed with priv; e.Signer and e.Sig
// are ignored.
func Sign(key string, priv ed25519.PrivateKey, e Envelope) ([]byte, error) {
	if e.Version.IsZero() {
		return nil, fmt.Errorf("owner: signing %q: no version", key)
	}
	if e.Expires.UnixMilli() <= 0 {
		return nil, fmt.Errorf("owner: signing %q: no expiry", key)
	}
	if e.Deleted && (len(e.Payload) > 0 || e.Chunked) {
		return nil, fmt.Errorf("owner: signing %q: a delete carries no payload", key)
	}
	if e.Heir != nil && len(e.Heir) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("owner: signing %q: an heir is a %d-byte ed25519 key", key, ed25519.PublicKeySize)
	}
	e.Signer = priv.Public().(ed25519.PublicKey)
	b := make([]byte, 0, headerLen+len(e.Heir)+len(e.Payload))
	b = append(b, Magic...)
	b = append(b, e.Signer...)
	b = append(b, make([]byte, ed25519.SignatureSize)...)
	b = appendSigned(b, &e)
	sig := ed25519.Sign(priv, message(key, b))
	copy(b[4+ed25519.PublicKeySize:], sig)
	return b, nil
}

// appendSigned appends the signed fields after the signature.
func appendSigned(b []byte, e *Envelope) []byte {
	b = binary.BigEndian.AppendUint64(b, e.Version.Time)
	b = binary.BigEndian.AppendUint64(b, e.Version.Writer)
	b = binary.BigEndian.AppendUint64(b, uint64(e.Expires.UnixMilli()))
	var flags byte
	if e.Deleted {
		flags |= flagDelete
	}
	if e.Heir != nil {
		flags |= flagHeir
	}
	if e.Chunked {
		flags |= flagChunked
	}
	b = append(b, flags)
	b = append(b, e.Heir...)
	return append(b, e.Payload...)
}

// message is what the signature covers, for the envelope b.
func message(key string, b []byte) []byte {
	m := make([]byte, 0, len(Magic)+binary.MaxVarintLen64+len(key)+len(b)-headerLen+25)
	m = append(m, Magic...)
	m = binary.AppendUvarint(m, uint64(len(key)))
	m = append(m, key...)
	return append(m, b[4+ed25519.PublicKeySize+ed25519.SignatureSize:]...)
}

// Parse splits an envelope into its fields without checking the
// signature (Verify does). It fails with ErrForged when b is not a
// well-formed envelope.
func Parse(b []byte) (Envelope, error) {
	var e Envelope
	if !Is(b) || len(b) < headerLen {
		return e, fmt.Errorf("%w: not a signed envelope, or truncated", ErrForged)
	}
	p := b[4:]
	e.Signer, p = ed25519.PublicKey(p[:32]), p[32:]
	e.Sig, p = p[:64], p[64:]
	e.Version.Time, p = binary.BigEndian.Uint64(p), p[8:]
	e.Version.Writer, p = binary.BigEndian.Uint64(p), p[8:]
	ms := int64(binary.BigEndian.Uint64(p))
	p = p[8:]
	flags := p[0]
	p = p[1:]
	if ms <= 0 || flags&^(flagDelete|flagHeir|flagChunked) != 0 || e.Version.IsZero() {
		return e, fmt.Errorf("%w: bad expiry, flags or version", ErrForged)
	}
	e.Expires = time.UnixMilli(ms)
	e.Deleted = flags&flagDelete != 0
	e.Chunked = flags&flagChunked != 0
	if flags&flagHeir != 0 {
		if len(p) < ed25519.PublicKeySize {
			return e, fmt.Errorf("%w: truncated heir", ErrForged)
		}
		e.Heir, p = ed25519.PublicKey(p[:32]), p[32:]
	}
	if e.Deleted && (len(p) > 0 || e.Chunked) {
		return e, fmt.Errorf("%w: a delete with a payload", ErrForged)
	}
	e.Payload = p
	return e, nil
}

// Open parses the envelope b of key and verifies its signature.
func Open(key string, b []byte) (Envelope, error) {
	e, err := Parse(b)
	if err != nil {
		return e, err
	}
	if !ed25519.Verify(e.Signer, message(key, b), e.Sig) {
		return e, ErrForged
	}
	return e, nil
}

// Signer returns the signer of a stored record whose value is an
// envelope, nil otherwise. It does not verify the signature: the record
// passed Admit when it was stored.
func Signer(r *store.Record) ed25519.PublicKey {
	if r == nil || r.Deleted || !Is(r.Value) {
		return nil
	}
	e, err := Parse(r.Value)
	if err != nil {
		return nil
	}
	return e.Signer
}

// Admit is the owner rule, for store.Config.Admit: it decides whether a
// replica holding old (nil: nothing) for r.Key may store r.
//
//   - r, if its value is an envelope, must verify for r.Key and carry the
//     version and expiry that were signed (ErrForged);
//   - when old is owned, r must be signed by old's signer or by the heir
//     old names (ErrNotOwner), with a newer version (ErrStale); an
//     unsigned value and a plain tombstone are refused;
//   - when old is not owned, anything goes: the first signed write claims
//     the key.
//
// Its errors do not name the key: the writer that reads the refusal names
// it (`dhtkit: put "KEY": …`), once.
func Admit(old *store.Record, r store.Record) error {
	var e Envelope
	signed := !r.Deleted && Is(r.Value)
	if signed {
		var err error
		if e, err = Open(r.Key, r.Value); err != nil {
			return fmt.Errorf("owner: %w", err)
		}
		if e.Version != r.Version || !sameMilli(e.Expires, r.Expires) {
			return fmt.Errorf("owner: %w: the record's version or expiry is not the signed one", ErrForged)
		}
	}
	if old == nil || old.Deleted || !Is(old.Value) {
		return nil
	}
	o, err := Parse(old.Value)
	if err != nil {
		return nil // stored before the rule, and no envelope
	}
	switch {
	case !signed && r.Deleted:
		return fmt.Errorf("owner: %w %s: an unsigned delete cannot remove it", ErrNotOwner, hex.EncodeToString(o.Signer))
	case !signed:
		return fmt.Errorf("owner: %w %s: an unsigned value cannot replace it", ErrNotOwner, hex.EncodeToString(o.Signer))
	case !e.Signer.Equal(o.Signer) && !(o.Heir != nil && e.Signer.Equal(o.Heir)):
		return fmt.Errorf("owner: %w %s, not to %s", ErrNotOwner, hex.EncodeToString(o.Signer), hex.EncodeToString(e.Signer))
	case !r.Version.Newer(old.Version):
		return fmt.Errorf("owner: %w: version %v, stored %v", ErrStale, r.Version, old.Version)
	}
	return nil
}

func sameMilli(a, b time.Time) bool {
	if a.IsZero() || b.IsZero() {
		return a.IsZero() == b.IsZero()
	}
	return a.UnixMilli() == b.UnixMilli()
}

// NextVersion is the version an owner signs its next write of a key
// with: its wall clock's, or one past current (the key's version now)
// when that is not older, so that the write wins even when the owner's
// clock lags behind the previous writer's.
func NextVersion(pub ed25519.PublicKey, now time.Time, current store.Version) store.Version {
	ms := max(now.UnixMilli(), 0)
	t := uint64(ms) << 16
	if t <= current.Time {
		t = current.Time + 1
	}
	return store.Version{Time: t, Writer: Writer(pub)}
}
