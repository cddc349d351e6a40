package dhtkit

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha512"
	"errors"
	"fmt"
	"io"

	"golang.org/x/crypto/curve25519"
	"golang.org/x/crypto/nacl/box"
)

// Signed and encrypted values are end-to-end: the writer seals a value
// before it enters the DHT and the reader opens it after it leaves, so no
// node in between ever holds a private key, and a replica that alters a
// value is caught by the reader. An envelope is a value that starts with a
// magic of four bytes:
//
//	"DKS\x01" pubkey(32) sig(64) payload   signed by the ed25519 pubkey
//	"DKE\x01" ephemeral(32) nonce(24) box  encrypted (NaCl box, X25519 +
//	                                       XSalsa20-Poly1305) to a recipient
//
// The signature covers the magic, the key the value is stored under and
// the payload, so a signed value cannot be replayed under another key.
// Sealing signs first, then encrypts: the signer stays hidden from all but
// the recipient.
var (
	magicSigned    = []byte("DKS\x01")
	magicEncrypted = []byte("DKE\x01")
)

// Errors of Open.
var (
	ErrBadSignature = errors.New("dhtkit: the value's signature does not verify: it was altered or forged")
	ErrNoKey        = errors.New("dhtkit: the value is encrypted and no private key was given")
	ErrNotForUs     = errors.New("dhtkit: the value is encrypted to another key")
)

// Identity is a person's key pair for signing (ed25519) and for receiving
// encrypted values (X25519, derived from the same seed).
type Identity struct {
	Sign    ed25519.PrivateKey
	Decrypt [32]byte // X25519 private key
}

// NewIdentity derives an identity from a 32-byte seed; nil draws one.
func NewIdentity(seed []byte) (Identity, error) {
	if seed == nil {
		seed = make([]byte, ed25519.SeedSize)
		if _, err := io.ReadFull(rand.Reader, seed); err != nil {
			return Identity{}, err
		}
	}
	if len(seed) != ed25519.SeedSize {
		return Identity{}, fmt.Errorf("dhtkit: an identity seed is %d bytes, not %d", ed25519.SeedSize, len(seed))
	}
	id := Identity{Sign: ed25519.NewKeyFromSeed(seed)}
	h := sha512.Sum512(append([]byte("dhtkit-x25519"), seed...))
	copy(id.Decrypt[:], h[:32])
	return id, nil
}

// SignPublic is the public key readers check signatures against.
func (i Identity) SignPublic() ed25519.PublicKey { return i.Sign.Public().(ed25519.PublicKey) }

// EncryptPublic is the public key writers encrypt to.
func (i Identity) EncryptPublic() [32]byte {
	var pub [32]byte
	curve25519.ScalarBaseMult(&pub, &i.Decrypt)
	return pub
}

func signedMessage(key string, payload []byte) []byte {
	m := make([]byte, 0, len(magicSigned)+len(key)+1+len(payload))
	m = append(m, magicSigned...)
	m = append(m, key...)
	m = append(m, 0)
	return append(m, payload...)
}

// Seal wraps the value v of key: signed with sign when it is not nil, then
// encrypted to the X25519 public key to when it is not nil.
func Seal(key string, v []byte, sign ed25519.PrivateKey, to *[32]byte) ([]byte, error) {
	out := v
	if sign != nil {
		sig := ed25519.Sign(sign, signedMessage(key, v))
		out = make([]byte, 0, len(magicSigned)+ed25519.PublicKeySize+ed25519.SignatureSize+len(v))
		out = append(out, magicSigned...)
		out = append(out, sign.Public().(ed25519.PublicKey)...)
		out = append(out, sig...)
		out = append(out, v...)
	}
	if to != nil {
		pub, priv, err := box.GenerateKey(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("dhtkit: encrypting: %w", err)
		}
		var nonce [24]byte
		if _, err := io.ReadFull(rand.Reader, nonce[:]); err != nil {
			return nil, fmt.Errorf("dhtkit: encrypting: %w", err)
		}
		sealed := append(append(append([]byte{}, magicEncrypted...), pub[:]...), nonce[:]...)
		out = box.Seal(sealed, out, &nonce, to, priv)
	}
	return out, nil
}

// Opened is what Open found inside an envelope.
type Opened struct {
	Payload   []byte
	Signer    ed25519.PublicKey // nil when unsigned
	Encrypted bool
}

// Open unwraps a value of key sealed by Seal: it decrypts with priv (nil
// when the reader has no key) and verifies the signature. A value that is
// no envelope comes back as it is.
func Open(key string, v []byte, priv *[32]byte) (Opened, error) {
	var o Opened
	if bytes.HasPrefix(v, magicEncrypted) {
		o.Encrypted = true
		if len(v) < 4+32+24+box.Overhead {
			return o, fmt.Errorf("dhtkit: the encrypted value is truncated")
		}
		if priv == nil {
			return o, ErrNoKey
		}
		var eph [32]byte
		var nonce [24]byte
		copy(eph[:], v[4:36])
		copy(nonce[:], v[36:60])
		plain, ok := box.Open(nil, v[60:], &nonce, &eph, priv)
		if !ok {
			return o, ErrNotForUs
		}
		v = plain
	}
	if bytes.HasPrefix(v, magicSigned) {
		if len(v) < 4+ed25519.PublicKeySize+ed25519.SignatureSize {
			return o, ErrBadSignature
		}
		pub := ed25519.PublicKey(bytes.Clone(v[4:36]))
		sig := v[36:100]
		payload := v[100:]
		if !ed25519.Verify(pub, signedMessage(key, payload), sig) {
			return o, ErrBadSignature
		}
		o.Signer, v = pub, payload
	}
	o.Payload = v
	return o, nil
}
