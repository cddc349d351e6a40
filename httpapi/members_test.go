package httpapi

import (
	"strings"
	"testing"
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
