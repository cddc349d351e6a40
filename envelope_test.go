package dhtkit

import (
	"bytes"
	"errors"
	"testing"
)

func TestEnvelope(t *testing.T) {
	alice, _ := NewIdentity(bytes.Repeat([]byte{1}, 32))
	bob, _ := NewIdentity(bytes.Repeat([]byte{2}, 32))
	bobPub := bob.EncryptPublic()
	msg := []byte("meet at noon")
	for _, tc := range []struct {
		name      string
		sign      bool
		encrypt   bool
		reader    *Identity
		wantErr   error
		wantSign  bool
		tamper    func([]byte)
		storedKey string
	}{
		{name: "plain", reader: nil},
		{name: "signed", sign: true, wantSign: true},
		{name: "encrypted", encrypt: true, reader: &bob},
		{name: "signed and encrypted", sign: true, encrypt: true, reader: &bob, wantSign: true},
		{name: "encrypted, no key", encrypt: true, wantErr: ErrNoKey},
		{name: "encrypted to someone else", encrypt: true, reader: &alice, wantErr: ErrNotForUs},
		{name: "signed, altered", sign: true, tamper: func(b []byte) { b[len(b)-1] ^= 1 }, wantErr: ErrBadSignature},
		{name: "signed, replayed under another key", sign: true, storedKey: "other", wantErr: ErrBadSignature},
		{name: "encrypted, altered", encrypt: true, reader: &bob, tamper: func(b []byte) { b[len(b)-1] ^= 1 }, wantErr: ErrNotForUs},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var to *[32]byte
			if tc.encrypt {
				to = &bobPub
			}
			var sign = alice.Sign
			if !tc.sign {
				sign = nil
			}
			sealed, err := Seal("key", msg, sign, to)
			if err != nil {
				t.Fatal(err)
			}
			if tc.encrypt && bytes.Contains(sealed, msg) {
				t.Fatal("the plaintext is visible in the encrypted value")
			}
			if tc.tamper != nil {
				tc.tamper(sealed)
			}
			var priv *[32]byte
			if tc.reader != nil {
				priv = &tc.reader.Decrypt
			}
			key := "key"
			if tc.storedKey != "" {
				key = tc.storedKey
			}
			o, err := Open(key, sealed, priv)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Open: %v, want %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			if !bytes.Equal(o.Payload, msg) || o.Encrypted != tc.encrypt || (o.Signer != nil) != tc.wantSign {
				t.Fatalf("Open: %+v", o)
			}
			if tc.wantSign && !bytes.Equal(o.Signer, alice.SignPublic()) {
				t.Fatal("wrong signer")
			}
		})
	}
}

func FuzzOpen(f *testing.F) {
	id, _ := NewIdentity(bytes.Repeat([]byte{3}, 32))
	pub := id.EncryptPublic()
	s, _ := Seal("k", []byte("v"), id.Sign, &pub)
	f.Add(s)
	s, _ = Seal("k", []byte("v"), id.Sign, nil)
	f.Add(s)
	f.Add([]byte("DKS\x01short"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = Open("k", b, &id.Decrypt) // must not panic
	})
}
