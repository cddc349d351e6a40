package httpapi

import (
	"net/url"
	"strings"
	"testing"
)

// TestValuesAPI: ?id= reads, writes and deletes one value of a key;
// /v1/values lists every value, newest first, and deletes them all.
func TestValuesAPI(t *testing.T) {
	tn := newTestNet(t, 3)
	key := "many values/ü"
	keyURL := func(i int) string { return tn.servers[i%3].URL + "/v1/keys/" + url.PathEscape(key) }
	valuesURL := tn.servers[2].URL + "/v1/values/" + url.PathEscape(key)
	for i, tc := range []struct{ id, value string }{{"", "default"}, {"1", "one"}, {"00ff", "two"}} {
		u := keyURL(i)
		if tc.id != "" {
			u += "?id=" + tc.id
		}
		resp, body := call(t, "PUT", u, strings.NewReader(tc.value))
		if resp.StatusCode != 200 {
			t.Fatalf("PUT %s: %d %s", u, resp.StatusCode, body)
		}
		if put := decode[putJSON](t, body); put.Key != key || (tc.id != "" && put.ID == "") {
			t.Fatalf("PUT reply %s", body)
		}
	}
	if resp, body := call(t, "GET", keyURL(1)+"?id=ff", nil); resp.StatusCode != 200 || string(body) != "two" {
		t.Fatalf("GET ?id=ff: %d %q", resp.StatusCode, body)
	}
	if resp, body := call(t, "GET", keyURL(1), nil); resp.StatusCode != 200 || string(body) != "default" {
		t.Fatalf("GET without id: %d %q", resp.StatusCode, body)
	}
	if resp, _ := call(t, "GET", keyURL(1)+"?id=xyz", nil); resp.StatusCode != 400 {
		t.Fatalf("GET ?id=xyz: %d, want 400", resp.StatusCode)
	}
	resp, body := call(t, "GET", valuesURL, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("GET /v1/values: %d %s", resp.StatusCode, body)
	}
	list := decode[valuesJSON](t, body)
	var got []string
	for _, v := range list.Values {
		got = append(got, v.ID+"="+string(v.Value))
	}
	if want := "00000000000000ff=two 0000000000000001=one 0000000000000000=default"; strings.Join(got, " ") != want {
		t.Fatalf("values %q, want %q (newest first)", got, want)
	}
	resp, body = call(t, "GET", valuesURL+"?data=0", nil)
	if l := decode[valuesJSON](t, body); resp.StatusCode != 200 || len(l.Values) != 3 || l.Values[0].Value != nil || l.Values[0].Size != 3 {
		t.Fatalf("GET /v1/values?data=0: %d %s", resp.StatusCode, body)
	}
	if resp, body := call(t, "DELETE", keyURL(0)+"?id=1", nil); resp.StatusCode != 200 || decode[deleteJSON](t, body).ID != "0000000000000001" {
		t.Fatalf("DELETE ?id=1: %d %s", resp.StatusCode, body)
	}
	resp, body = call(t, "DELETE", valuesURL, nil)
	if d := decode[deleteJSON](t, body); resp.StatusCode != 200 || d.Values == nil || *d.Values != 2 {
		t.Fatalf("DELETE /v1/values: %d %s, want 2 deleted", resp.StatusCode, body)
	}
	if resp, _ := call(t, "GET", valuesURL, nil); resp.StatusCode != 404 {
		t.Fatalf("GET /v1/values after deleting all: %d, want 404", resp.StatusCode)
	}
}
