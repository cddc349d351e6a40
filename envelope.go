package dhtkit

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha512"
	"errors"
	"fmt"
	"io"
	"time"

	"golang.org/x/crypto/curve25519"
	"golang.org/x/crypto/nacl/box"

	"github.com/dhtkit/dhtkit/kademlia"
	"github.com/dhtkit/dhtkit/owner"
	"github.com/dhtkit/dhtkit/store"
)

// Signed and encrypted values are end-to-end: the writer seals a value
// before it enters the DHT and the reader opens it after it leaves, so no
// node in between ever holds a private key, and a replica that alters a
// value is caught by the reader. An envelope is a value that starts with a
// magic of four bytes:
//
//	"DKS\x02" ...                          signed by its owner (package owner):
//	                                       the signature covers the key, the
//	                                       version, the expiry and the payload,
//	                                       and replicas check it
//	"DKE\x01" ephemeral(32) nonce(24) box  encrypted (NaCl box, X25519 +
//	                                       XSalsa20-Poly1305) to a recipient
//	"DKS\x01" pubkey(32) sig(64) payload   signed, as dhtkit before owner
//	                                       keys wrote it (read only)
//
// Sealing encrypts first, then signs: replicas must see the signer to let
// only the owner change the key, so the signer is public; the recipient
// alone reads the payload.
var (
	magicSigned    = []byte("DKS\x01")
	magicEncrypted = []byte("DKE\x01")
)

// Errors of Open. Their text has no "dhtkit:" of its own: the node's
// errors wrap them as `dhtkit: get "KEY": …`, and the command line puts
// "dhtkit:" before what it prints, once (issue 14).
var (
	ErrBadSignature = errors.New("the value's signature does not verify: it was altered or forged")
	ErrNoKey        = errors.New("the value is encrypted and no private key was given")
	ErrNotForUs     = errors.New("the value is encrypted to another key")
	// ErrSigner: the value is unsigned, or signed by another key than
	// the one asked for (GetSignedBy, get --signer).
	ErrSigner = errors.New("the value is not signed by the expected key")
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

// SignOptions say what an owner signs besides the value.
type SignOptions struct {
	// Version is the value's version; zero: the wall clock's (see
	// owner.NextVersion: pass the key's current version there so that the
	// new one is newer).
	Version store.Version
	// TTL is how long the value lives; 0: kademlia.DefaultConfig().DefaultTTL (24h). The
	// expiry is signed, so replicas cannot extend it.
	TTL time.Duration
	// Heir, when set, may sign the key's next versions too: how the owner
	// moves the key to a new signing key (see owner).
	Heir ed25519.PublicKey
}

func (o SignOptions) envelope(pub ed25519.PublicKey, now time.Time) owner.Envelope {
	ttl := o.TTL
	if ttl <= 0 {
		ttl = kademlia.DefaultConfig().DefaultTTL
	}
	v := o.Version
	if v.IsZero() {
		v = owner.NextVersion(pub, now, store.Version{})
	}
	return owner.Envelope{Version: v, Expires: now.Add(ttl), Heir: o.Heir}
}

// Seal wraps the value v of key: encrypted to the X25519 public key to
// when it is not nil, then signed with sign when it is not nil, at the
// wall clock's version with the default TTL (SealWith chooses them).
func Seal(key string, v []byte, sign ed25519.PrivateKey, to *[32]byte) ([]byte, error) {
	return SealWith(key, v, sign, to, SignOptions{})
}

// SealWith is Seal with the version, TTL and heir of a signed value.
func SealWith(key string, v []byte, sign ed25519.PrivateKey, to *[32]byte, o SignOptions) ([]byte, error) {
	out := v
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
	if sign != nil {
		e := o.envelope(sign.Public().(ed25519.PublicKey), time.Now())
		e.Payload = out
		var err error
		if out, err = owner.Sign(key, sign, e); err != nil {
			return nil, fmt.Errorf("dhtkit: %w", err)
		}
	}
	return out, nil
}

// SignDelete returns the signed delete of key (a tombstone only its
// owner can write): give it to Node.DeleteSigned, or send it as the body
// of DELETE /v1/keys/{key}.
func SignDelete(key string, sign ed25519.PrivateKey, o SignOptions) ([]byte, error) {
	e := o.envelope(sign.Public().(ed25519.PublicKey), time.Now())
	e.Deleted = true
	b, err := owner.Sign(key, sign, e)
	if err != nil {
		return nil, fmt.Errorf("dhtkit: %w", err)
	}
	return b, nil
}

// SignValue signs payload, the value of key as it is to be stored
// (encrypted already, if it is to be), for its owner. A value that fits
// one record with its signature comes back whole as inline, to store with
// Node.Put. A larger one is stored as chunks: env is then the signature
// of their manifest, to store with Node.PutSigned(key, payload, env)
// within the upload limit (Config.ChunkGrace less its margin, 45 minutes
// by default) of the signature: the chunks are one upload, which the
// collectors release once the key no longer holds this manifest
// (signedchunks.go). They are named by their hashes, so the signature
// covers every byte.
func SignValue(key string, payload []byte, sign ed25519.PrivateKey, o SignOptions) (inline, env []byte, err error) {
	e := o.envelope(sign.Public().(ed25519.PublicKey), time.Now())
	e.Payload = payload
	if inline, err = owner.Sign(key, sign, e); err != nil {
		return nil, nil, fmt.Errorf("dhtkit: %w", err)
	}
	if len(inline) <= kademlia.MaxRecordValue {
		return inline, nil, nil
	}
	m, err := signLayout(key, payload, time.Now())
	if err != nil {
		return nil, nil, fmt.Errorf("dhtkit: %w", err)
	}
	e.Payload, e.Chunked = encodeManifest(m)[1:], true
	if env, err = owner.Sign(key, sign, e); err != nil {
		return nil, nil, fmt.Errorf("dhtkit: %w", err)
	}
	return nil, env, nil
}

// OpenChunked is Open for a large signed value: value is what the chunks
// held (Value.Data), env the envelope that signs their manifest
// (Value.Envelope). It checks the signature and that value is the value
// signed, then decrypts it with priv if it is encrypted.
func OpenChunked(key string, value, env []byte, priv *[32]byte) (Opened, error) {
	var o Opened
	e, err := owner.Open(key, env)
	if err != nil || !e.Chunked {
		return o, ErrBadSignature
	}
	if !signedLayoutMatches(key, value, e.Payload) {
		return o, ErrBadSignature
	}
	o.Signer, o.Version, o.Expires, o.Heir = e.Signer, e.Version, e.Expires, e.Heir
	o.Payload, o.Encrypted, err = decrypt(value, priv)
	return o, err
}

// decrypt opens v with priv if it is encrypted, and returns it as it is
// otherwise.
func decrypt(v []byte, priv *[32]byte) (plain []byte, encrypted bool, err error) {
	if !bytes.HasPrefix(v, magicEncrypted) {
		return v, false, nil
	}
	if len(v) < 4+32+24+box.Overhead {
		return nil, true, fmt.Errorf("dhtkit: the encrypted value is truncated")
	}
	if priv == nil {
		return nil, true, ErrNoKey
	}
	var eph [32]byte
	var nonce [24]byte
	copy(eph[:], v[4:36])
	copy(nonce[:], v[36:60])
	plain, ok := box.Open(nil, v[60:], &nonce, &eph, priv)
	if !ok {
		return nil, true, ErrNotForUs
	}
	return plain, true, nil
}

// Opened is what Open found inside an envelope.
type Opened struct {
	Payload   []byte
	Signer    ed25519.PublicKey // nil when unsigned
	Encrypted bool
	// Version and Expires are the ones the owner signed (owner keys);
	// Deleted marks a signed delete.
	Version store.Version
	Expires time.Time
	Deleted bool
	// Heir is the key the owner named to sign the key's next versions.
	Heir ed25519.PublicKey
}

// Open unwraps a value of key sealed by Seal: it verifies the signature
// and decrypts with priv (nil when the reader has no key). A value that is
// no envelope comes back as it is.
func Open(key string, v []byte, priv *[32]byte) (Opened, error) {
	var o Opened
	if owner.Is(v) {
		e, err := owner.Open(key, v)
		if err != nil {
			return o, ErrBadSignature
		}
		o.Signer, o.Version, o.Expires, o.Deleted, o.Heir = e.Signer, e.Version, e.Expires, e.Deleted, e.Heir
		v = e.Payload
	}
	var err error
	if v, o.Encrypted, err = decrypt(v, priv); err != nil {
		return o, err
	}
	if o.Signer == nil && bytes.HasPrefix(v, magicSigned) {
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
