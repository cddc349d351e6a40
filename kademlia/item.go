package kademlia

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha1"
	"errors"
	"fmt"
	"strconv"

	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/krpc"
)

// BEP 44 limits.
const (
	MaxItemValue = 1000 // bytes of bencoded v
	MaxItemSalt  = 64
)

// Item is a BEP 44 item: immutable when K is empty (its target is the
// SHA-1 of V), mutable otherwise (its target is the SHA-1 of K and Salt,
// and Sig signs Salt, Seq and V with the ed25519 key K).
type Item struct {
	V    []byte // the value, bencoded
	K    []byte // ed25519 public key, 32 bytes; empty for immutable items
	Sig  []byte // 64 bytes
	Salt []byte
	Seq  int64
}

// Errors of item validation; each matches a BEP 44 error code.
var (
	ErrItemTooBig   = errors.New("kademlia: item value is larger than 1000 bytes (BEP 44)")
	ErrSaltTooBig   = errors.New("kademlia: item salt is larger than 64 bytes (BEP 44)")
	ErrBadSignature = errors.New("kademlia: item signature does not verify")
	ErrNotBencoded  = errors.New("kademlia: item value is not valid bencode")
)

// Mutable reports whether it is a mutable item.
func (it Item) Mutable() bool { return len(it.K) > 0 }

// Target is where the item lives in the id space.
func (it Item) Target() id.ID { return ItemTarget(it.K, it.Salt, it.V) }

// ItemTarget is the BEP 44 target: SHA-1(k ‖ salt) for a mutable item,
// SHA-1(v) for an immutable one (k empty).
func ItemTarget(k, salt, v []byte) id.ID {
	if len(k) == 0 {
		return sha1.Sum(v)
	}
	h := sha1.New()
	h.Write(k)
	h.Write(salt)
	var x id.ID
	h.Sum(x[:0])
	return x
}

// SignedBuffer is what a mutable item's signature covers (BEP 44): the
// bencoded salt (when not empty), seq and v keys, without the enclosing dict.
func SignedBuffer(salt []byte, seq int64, v []byte) []byte {
	var b []byte
	if len(salt) > 0 {
		b = append(b, "4:salt"...)
		b = strconv.AppendInt(b, int64(len(salt)), 10)
		b = append(b, ':')
		b = append(b, salt...)
	}
	b = append(b, "3:seqi"...)
	b = strconv.AppendInt(b, seq, 10)
	b = append(b, "e1:v"...)
	return append(b, v...)
}

// SignItem returns a mutable item holding the bencoded value v, signed
// with key.
func SignItem(key ed25519.PrivateKey, salt []byte, seq int64, v []byte) Item {
	pub := key.Public().(ed25519.PublicKey)
	return Item{
		V:    bytes.Clone(v),
		K:    bytes.Clone(pub),
		Sig:  ed25519.Sign(key, SignedBuffer(salt, seq, v)),
		Salt: bytes.Clone(salt),
		Seq:  seq,
	}
}

// Validate checks sizes, encoding and, for a mutable item, the signature.
func (it Item) Validate() error {
	if len(it.V) > MaxItemValue {
		return ErrItemTooBig
	}
	if n, err := krpc.ValidBencode(it.V); err != nil || n != len(it.V) {
		return ErrNotBencoded
	}
	if len(it.Salt) > MaxItemSalt {
		return ErrSaltTooBig
	}
	if !it.Mutable() {
		if len(it.Sig) > 0 || len(it.Salt) > 0 {
			return fmt.Errorf("kademlia: immutable item with salt or signature: %w", ErrBadSignature)
		}
		return nil
	}
	if len(it.K) != ed25519.PublicKeySize || len(it.Sig) != ed25519.SignatureSize {
		return ErrBadSignature
	}
	if !ed25519.Verify(it.K, SignedBuffer(it.Salt, it.Seq, it.V), it.Sig) {
		return ErrBadSignature
	}
	return nil
}

// errCode maps a validation error to its BEP 44 error code.
func errCode(err error) int {
	switch {
	case errors.Is(err, ErrItemTooBig):
		return krpc.CodeTooBig
	case errors.Is(err, ErrSaltTooBig):
		return krpc.CodeSaltTooBig
	case errors.Is(err, ErrBadSignature):
		return krpc.CodeBadSignature
	}
	return krpc.CodeProtocol
}
