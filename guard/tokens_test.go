package guard

import (
	"net/netip"
	"testing"
	"time"
)

func TestAnnounceTokenLifetime(t *testing.T) {
	var tk Tokens
	now := time.Unix(0, 0)
	counter := byte(0)
	secret := func(b []byte) {
		counter++
		for i := range b {
			b[i] = counter
		}
	}
	tk.Init(now, 5*time.Minute, secret)
	ip := netip.MustParseAddr("127.0.0.5")
	tok := tk.Issue(ip, nil)
	if !tk.Valid(ip, tok) {
		t.Fatal("fresh token rejected")
	}
	if tk.Valid(netip.MustParseAddr("127.0.0.6"), tok) {
		t.Error("token accepted from another IP")
	}
	tk.MaybeRotate(now.Add(5*time.Minute), secret)
	if !tk.Valid(ip, tok) {
		t.Error("token rejected after one rotation (must live 5-10 minutes)")
	}
	tk.MaybeRotate(now.Add(10*time.Minute), secret)
	if tk.Valid(ip, tok) {
		t.Error("token accepted after two rotations")
	}
}
