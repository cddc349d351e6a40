package httpapi

import (
	"bytes"
	"encoding/hex"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/dhtkit/dhtkit"
)

// TestSignedValues drives owner keys through the API: ?signer=, the
// signer header, the page showing the signed payload, an unsigned write
// refused, and the owner's signed DELETE.
func TestSignedValues(t *testing.T) {
	tn := newTestNet(t, 1) // one node: it is every key's replica
	base := tn.servers[0].URL
	alice, _ := dhtkit.NewIdentity(bytes.Repeat([]byte{1}, 32))
	bob, _ := dhtkit.NewIdentity(bytes.Repeat([]byte{2}, 32))
	aliceHex, bobHex := hex.EncodeToString(alice.SignPublic()), hex.EncodeToString(bob.SignPublic())
	env, err := dhtkit.Seal("note", []byte("hello <b>world</b>"), alice.Sign, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp, body := call(t, "PUT", base+"/v1/keys/note", bytes.NewReader(env)); resp.StatusCode != 200 {
		t.Fatalf("signed PUT: %d %s", resp.StatusCode, body)
	}
	resp, body := call(t, "GET", base+"/v1/keys/note?signer="+aliceHex, nil)
	if resp.StatusCode != 200 || !bytes.Equal(body, env) || resp.Header.Get("X-Dhtkit-Signer") != aliceHex {
		t.Fatalf("GET ?signer=alice: %d, signer header %q", resp.StatusCode, resp.Header.Get("X-Dhtkit-Signer"))
	}
	resp, body = call(t, "GET", base+"/v1/keys/note?signer="+bobHex, nil)
	wantError(t, resp, body, http.StatusConflict, "not by "+bobHex)
	resp, body = call(t, "GET", base+"/v1/keys/note?signer=xyz", nil)
	wantError(t, resp, body, http.StatusBadRequest, "signer")
	call(t, "PUT", base+"/v1/keys/plain", strings.NewReader("unsigned"))
	resp, body = call(t, "GET", base+"/v1/keys/plain?signer="+aliceHex, nil)
	wantError(t, resp, body, http.StatusConflict, "not signed")

	// The page shows the payload and who signed it, escaped.
	resp, body = call(t, "GET", base+"/ui/get?key=note", nil)
	if resp.StatusCode != 200 || !strings.Contains(string(body), aliceHex) || !strings.Contains(string(body), "hello &lt;b&gt;world&lt;/b&gt;") {
		t.Fatalf("the page of a signed value:\n%s", body)
	}

	// Nobody but alice changes it.
	resp, body = call(t, "PUT", base+"/v1/keys/note", strings.NewReader("overwrite"))
	wantError(t, resp, body, http.StatusForbidden, "belongs to another signer")
	resp, body = call(t, "DELETE", base+"/v1/keys/note", nil)
	wantError(t, resp, body, http.StatusForbidden, "belongs to another signer")
	forged, _ := dhtkit.Seal("note", []byte("bob's"), bob.Sign, nil)
	resp, body = call(t, "PUT", base+"/v1/keys/note", bytes.NewReader(forged))
	wantError(t, resp, body, http.StatusForbidden, "belongs to another signer")
	tomb, _ := dhtkit.SignDelete("note", bob.Sign, dhtkit.SignOptions{})
	resp, body = call(t, "DELETE", base+"/v1/keys/note", bytes.NewReader(tomb))
	wantError(t, resp, body, http.StatusForbidden, "belongs to another signer")

	tomb, _ = dhtkit.SignDelete("note", alice.Sign, dhtkit.SignOptions{})
	if resp, body := call(t, "DELETE", base+"/v1/keys/note", bytes.NewReader(tomb)); resp.StatusCode != 200 {
		t.Fatalf("alice's signed DELETE: %d %s", resp.StatusCode, body)
	}
	if resp, _ := call(t, "GET", base+"/v1/keys/"+url.PathEscape("note"), nil); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("GET after the signed delete: %d", resp.StatusCode)
	}
}
