package kademlia

import (
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/dhtkit/dhtkit/krpc"
)

// The test vectors of BEP 44.
func TestItemBEP44Vector(t *testing.T) {
	unhex := func(s string) []byte { b, _ := hex.DecodeString(s); return b }
	it := Item{
		V:    []byte("12:Hello World!"),
		K:    unhex("77ff84905a91936367c01360803104f92432fcd904a43511876df5cdf3e7e548"),
		Sig:  unhex("6834284b6b24c3204eb2fea824d82f88883a3d95e8b4a21b8c0ded553d17d17ddf9a8a7104b1258f30bed3787e6cb896fca78c58f8e03b5f18f14951a87d9a08"),
		Salt: []byte("foobar"),
		Seq:  1,
	}
	if got := it.Target().String(); got != "411eba73b6f087ca51a3795d9c8c938d365e32c1" {
		t.Errorf("mutable target %s, want BEP 44's 411eba73…", got)
	}
	if got := string(SignedBuffer(it.Salt, it.Seq, it.V)); got != "4:salt6:foobar3:seqi1e1:v12:Hello World!" {
		t.Errorf("signed buffer %q", got)
	}
	if err := it.Validate(); err != nil {
		t.Fatalf("own signature does not verify: %v", err)
	}
	imm := Item{V: []byte("12:Hello World!")}
	if got := imm.Target().String(); got != "e5f96f6f38320f0f33959cb4d3d656452117aadb" {
		t.Errorf("immutable target %s, want BEP 44's e5f96f6f…", got)
	}
}

func TestItemValidate(t *testing.T) {
	key := ed25519.NewKeyFromSeed(make([]byte, 32))
	good := SignItem(key, []byte("s"), 3, []byte("i42e"))
	forged := good
	forged.V = []byte("i43e")
	for _, tc := range []struct {
		name string
		it   Item
		want error
	}{
		{"immutable", Item{V: []byte("4:spam")}, nil},
		{"mutable", good, nil},
		{"forged value", forged, ErrBadSignature},
		{"too big", Item{V: []byte("1001:" + strings.Repeat("x", 1001))}, ErrItemTooBig},
		{"not bencode", Item{V: []byte("spam")}, ErrNotBencoded},
		{"trailing bytes", Item{V: []byte("i1ei2e")}, ErrNotBencoded},
		{"long salt", SignItem(key, make([]byte, 65), 1, []byte("i1e")), ErrSaltTooBig},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.it.Validate(); !errors.Is(err, tc.want) {
				t.Errorf("Validate() = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestItemPutGet(t *testing.T) {
	n := newTestNet(t, 11)
	n.build(40, Config{})
	a, b := n.Order[3], n.Order[30]

	imm := Item{V: []byte("12:Hello World!")}
	if r := n.do(a, PutItem{Item: imm}); r.Err != nil || r.Stored == 0 {
		t.Fatalf("immutable put: stored %d, err %v", r.Stored, r.Err)
	}
	r := n.do(b, GetItem{Target: imm.Target()})
	if r.Err != nil || r.Item == nil || string(r.Item.V) != "12:Hello World!" {
		t.Fatalf("immutable get: %+v, err %v", r.Item, r.Err)
	}

	key := ed25519.NewKeyFromSeed(make([]byte, 32))
	salt := []byte("profile")
	v1 := SignItem(key, salt, 1, []byte("2:v1"))
	v2 := SignItem(key, salt, 2, []byte("2:v2"))
	if r := n.do(a, PutItem{Item: v1}); r.Err != nil {
		t.Fatalf("mutable put seq 1: %v", r.Err)
	}
	if r := n.do(a, PutItem{Item: v2, UseCAS: true, CAS: 1}); r.Err != nil {
		t.Fatalf("mutable put seq 2 with cas 1: %v", r.Err)
	}
	r = n.do(b, GetItem{Target: v1.Target(), Salt: salt})
	if r.Err != nil || r.Item == nil || r.Item.Seq != 2 || string(r.Item.V) != "2:v2" {
		t.Fatalf("mutable get: %+v, err %v", r.Item, r.Err)
	}
	// Going back in seq, or a stale CAS, is refused with BEP 44's codes.
	r = n.do(a, PutItem{Item: v1})
	var re *RemoteError
	if !errors.As(r.Err, &re) || re.Code != krpc.CodeSeqTooOld {
		t.Errorf("put of an older seq: %v, want remote error 302", r.Err)
	}
	v3 := SignItem(key, salt, 3, []byte("2:v3"))
	r = n.do(a, PutItem{Item: v3, UseCAS: true, CAS: 1})
	if !errors.As(r.Err, &re) || re.Code != krpc.CodeCASMismatch {
		t.Errorf("put with a stale cas: %v, want remote error 301", r.Err)
	}
	// A wrong salt yields another target: nothing there.
	if r := n.do(b, GetItem{Target: v1.Target(), Salt: []byte("other")}); !errors.Is(r.Err, ErrNotFound) {
		t.Errorf("get with the wrong salt: %v, want ErrNotFound", r.Err)
	}
	if r := n.do(b, GetItem{Target: Item{V: []byte("i0e")}.Target()}); !errors.Is(r.Err, ErrNotFound) {
		t.Errorf("get of an absent item: %v, want ErrNotFound", r.Err)
	}
}
