package guard

import (
	"net/netip"
	"testing"

	"github.com/dhtkit/dhtkit/id"
)

func TestKnown(t *testing.T) {
	a := netip.MustParseAddrPort("192.0.2.1:1000")
	b := netip.MustParseAddrPort("192.0.2.2:1000")
	x, y := id.FromString("x"), id.FromString("y")
	tests := []struct {
		name  string
		do    func(k *Known)
		addr  netip.AddrPort
		node  id.ID
		want  bool
		token string
	}{
		{"unknown", func(k *Known) {}, a, x, false, ""},
		{"answered", func(k *Known) { k.Answered(a, x) }, a, x, true, ""},
		{"another id at the address", func(k *Known) { k.Answered(a, x) }, a, y, false, ""},
		{"the same id at another address", func(k *Known) { k.Answered(a, x) }, b, x, false, ""},
		{"a token alone proves nothing", func(k *Known) { k.SetToken(a, []byte("tok")) }, a, x, false, "tok"},
		{"token kept", func(k *Known) { k.Answered(a, x); k.SetToken(a, []byte("tok")) }, a, x, true, "tok"},
		{"a new node at the address drops the token", func(k *Known) {
			k.Answered(a, x)
			k.SetToken(a, []byte("tok"))
			k.Answered(a, y)
		}, a, y, true, ""},
		{"the least recent is forgotten", func(k *Known) {
			k.Max = 1
			k.Answered(a, x)
			k.Answered(b, y)
		}, a, x, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var k Known
			tt.do(&k)
			if got := k.Proven(tt.addr, tt.node); got != tt.want {
				t.Errorf("Proven = %v, want %v", got, tt.want)
			}
			if got := string(k.Token(tt.addr)); got != tt.token {
				t.Errorf("Token = %q, want %q", got, tt.token)
			}
			if k.Max > 0 && k.Len() > k.Max {
				t.Errorf("%d entries, over %d", k.Len(), k.Max)
			}
		})
	}
}
