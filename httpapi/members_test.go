package httpapi

import (
	"fmt"
	"html"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/dhtkit/dhtkit/id"
)

// TestMembersAndKeys: GET /v1/members lists the routing table's nodes
// with their state; GET /v1/keys lists the keys the whole network holds,
// refuses bad bounds, and a missing key's error names "get" once.
func TestMembersAndKeys(t *testing.T) {
	tn := newTestNet(t, 4)
	base := tn.servers[0].URL
	resp, body := call(t, "GET", base+"/v1/members", nil)
	m := decode[membersJSON](t, body)
	if resp.StatusCode != 200 || m.Self.ID != tn.nodes[0].ID().String() || len(m.Members) != 3 || m.States["good"]+m.States["questionable"] != 3 {
		t.Fatalf("members: %d %s", resp.StatusCode, body)
	}
	for _, x := range m.Members {
		if x.URL == "" || x.Addr == "" {
			t.Errorf("member without address or page: %+v", x)
		}
	}
	for i := range 12 {
		key := "m-" + strings.Repeat("x", i+1)
		if resp, body := call(t, "PUT", tn.servers[1+i%3].URL+"/v1/keys/"+key, strings.NewReader("v")); resp.StatusCode != 200 {
			t.Fatalf("PUT: %d %s", resp.StatusCode, body)
		}
	}
	resp, body = call(t, "GET", base+"/v1/keys?prefix=m-&limit=5", nil)
	k := decode[keysJSON](t, body)
	if resp.StatusCode != 200 || len(k.Keys) != 5 || !k.More || k.Next != k.Keys[4] || k.Asked != 4 || k.Answered != 4 || k.Partial {
		t.Fatalf("keys page 1: %d %s", resp.StatusCode, body)
	}
	resp, body = call(t, "GET", base+"/v1/keys?prefix=m-&limit=100&after="+k.Next, nil)
	if k2 := decode[keysJSON](t, body); resp.StatusCode != 200 || len(k2.Keys) != 7 || k2.More {
		t.Fatalf("keys page 2: %d %s", resp.StatusCode, body)
	}
	for _, q := range []string{"limit=0", "limit=x", "nodes=-1"} {
		resp, body := call(t, "GET", base+"/v1/keys?"+q, nil)
		wantError(t, resp, body, 400, "want a positive number")
	}
	resp, body = call(t, "GET", base+"/v1/keys/nope", nil)
	wantError(t, resp, body, 404, "not found")
	if strings.Count(string(body), "get") != 1 || strings.Count(string(body), "dhtkit") != 1 {
		t.Errorf("GET of a missing key: %s; want one get, one dhtkit", body)
	}
}

// TestPageLinksKeysOnce: the page links a key holding "/", "%" or a
// space to its own value, escaped once (issue 14: a/b/c linked to
// key=a%252Fb%252Fc, "No value is stored under this key"), and counts
// the values it lists, not the chunks of large ones.
func TestPageLinksKeysOnce(t *testing.T) {
	tn := newTestNet(t, 1)
	base := tn.servers[0].URL
	keys := []string{"a/b/c", "100%", "two words", "q?x=1&y"}
	for _, k := range keys {
		if resp, body := call(t, "PUT", base+"/v1/keys/"+url.PathEscape(k), strings.NewReader("value of "+k)); resp.StatusCode != 200 {
			t.Fatalf("PUT %q: %d %s", k, resp.StatusCode, body)
		}
	}
	big := strings.Repeat("z", 100<<10) // a large value: a manifest and chunks
	if resp, body := call(t, "PUT", base+"/v1/keys/big", strings.NewReader(big)); resp.StatusCode != 200 {
		t.Fatalf("PUT big: %d %s", resp.StatusCode, body)
	}
	_, page := call(t, "GET", base+"/", nil)
	_, st := call(t, "GET", base+"/v1/status", nil)
	records := decode[struct{ Store storeSize }](t, st).Store.Keys
	if records <= 5 || !strings.Contains(string(page), fmt.Sprintf("(%d records,", records)) || !strings.Contains(string(page), "records stored (values and chunks)") {
		t.Errorf("the page does not count its %d records as records:\n%s", records, page)
	}
	href := regexp.MustCompile(`href="(/ui/get\?key=[^"]*)"`)
	found := 0
	for _, m := range href.FindAllStringSubmatch(string(page), -1) {
		link := html.UnescapeString(m[1])
		resp, body := call(t, "GET", base+link, nil)
		if resp.StatusCode != 200 || strings.Contains(string(body), "No value is stored") {
			t.Errorf("link %s: %d, no value", link, resp.StatusCode)
			continue
		}
		for _, k := range keys {
			if strings.Contains(string(body), html.EscapeString("value of "+k)) {
				found++
			}
		}
	}
	if found != len(keys) {
		t.Errorf("the page's links lead to %d of the %d values", found, len(keys))
	}
	// A key's page shows its hash, and does not call a node that lacks
	// the key one that holds it.
	_, body := call(t, "GET", base+"/ui/get?key="+url.QueryEscape("a/b/c"), nil)
	if !strings.Contains(string(body), id.FromString("a/b/c").String()) || strings.Contains(string(body), "Held by") {
		t.Errorf("the key's page lacks its hash, or says Held by:\n%s", body)
	}
}
