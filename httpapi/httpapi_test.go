package httpapi

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit"
	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/kademlia"
)

func TestStatus(t *testing.T) {
	tn := newTestNet(t, 3)
	resp, body := call(t, "GET", tn.servers[0].URL+"/v1/status", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	// The shape of CONTRACT.md, field by field.
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"id", "network", "protocol", "listen", "uptime_s", "routing", "store"} {
		if _, ok := raw[f]; !ok {
			t.Errorf("/v1/status lacks %q: %s", f, body)
		}
	}
	st := decode[statusJSON](t, body)
	n := tn.nodes[0]
	if st.ID != n.ID().String() || st.Network != "dhtkit-test" || st.Protocol != "kademlia" || st.Listen != n.Addr().String() {
		t.Errorf("status = %+v, want id %v network dhtkit-test protocol kademlia listen %v", st, n.ID(), n.Addr())
	}
	if st.Routing.Nodes != 2 {
		t.Errorf("routing.nodes = %d, want 2", st.Routing.Nodes)
	}
	if !st.Ready || st.NotReady != "" {
		t.Errorf("a joined node of 3: ready %v (%q), want true", st.Ready, st.NotReady)
	}
	if st.UptimeS < 0 {
		t.Errorf("uptime_s = %v", st.UptimeS)
	}
}

func TestRouting(t *testing.T) {
	tn := newTestNet(t, 4)
	resp, body := call(t, "GET", tn.servers[1].URL+"/v1/routing", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	rt := decode[routingJSON](t, body)
	if rt.ID != tn.nodes[1].ID().String() || rt.Nodes != 3 {
		t.Fatalf("routing id %s nodes %d, want %v and 3", rt.ID, rt.Nodes, tn.nodes[1].ID())
	}
	seen := map[string]contactJSON{}
	for _, b := range rt.Buckets {
		for _, c := range b.Contacts {
			seen[c.ID] = c
		}
	}
	for i, n := range tn.nodes {
		if i == 1 {
			continue
		}
		c, ok := seen[n.ID().String()]
		if !ok {
			t.Errorf("node %d (%v) missing from the routing table", i, n.ID())
			continue
		}
		if c.Addr != n.Addr().String() || c.URL != tn.servers[i].URL+"/" || c.State == "" {
			t.Errorf("contact %+v: want addr %v, url %s/ and a state", c, n.Addr(), tn.servers[i].URL)
		}
	}
}

func TestLookup(t *testing.T) {
	tn := newTestNet(t, 5)
	target := tn.nodes[3].ID()
	for _, method := range []string{"POST", "GET"} {
		resp, body := call(t, method, tn.servers[0].URL+"/v1/lookup/"+target.String(), nil)
		if resp.StatusCode != 200 {
			t.Fatalf("%s lookup: %d %s", method, resp.StatusCode, body)
		}
		lk := decode[lookupJSON](t, body)
		if lk.Target != target.String() || len(lk.Nodes) == 0 || lk.Nodes[0].ID != target.String() {
			t.Errorf("lookup of node 3's id: %s", body)
		}
		if lk.Stats.Queries == 0 {
			t.Errorf("lookup stats %+v: no queries", lk.Stats)
		}
	}
	// A name instead of 40 hex digits is hashed, as the CLI does.
	_, body := call(t, "POST", tn.servers[0].URL+"/v1/lookup/hello", nil)
	if lk := decode[lookupJSON](t, body); lk.Target != id.FromString("hello").String() {
		t.Errorf("lookup/hello target %s, want SHA-1 of hello", lk.Target)
	}
}

func TestAnnounceAndPeers(t *testing.T) {
	tn := newTestNet(t, 5)
	ih := id.FromString("some torrent")
	resp, body := call(t, "POST", tn.servers[1].URL+"/v1/announce/"+ih.String()+"?port=6999", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("announce: %d %s", resp.StatusCode, body)
	}
	if a := decode[announceJSON](t, body); a.Stored == 0 || a.Port != 6999 || a.InfoHash != ih.String() {
		t.Errorf("announce = %s", body)
	}
	resp, body = call(t, "GET", tn.servers[4].URL+"/v1/peers/"+ih.String(), nil)
	if resp.StatusCode != 200 {
		t.Fatalf("peers: %d %s", resp.StatusCode, body)
	}
	want := fmt.Sprintf("127.0.0.1:%d", 6999)
	if p := decode[peersJSON](t, body); len(p.Peers) != 1 || p.Peers[0] != want {
		t.Errorf("peers = %s, want [%s]", body, want)
	}

	for _, tc := range []struct{ method, path, want string }{
		{"GET", "/v1/peers/xyz", "infohash"},
		{"POST", "/v1/announce/xyz?port=1", "infohash"},
		{"POST", "/v1/announce/" + ih.String(), "port"},
		{"POST", "/v1/announce/" + ih.String() + "?port=70000", "port"},
		{"GET", "/v1/items/nothex", "target"},
	} {
		resp, body := call(t, tc.method, tn.servers[0].URL+tc.path, nil)
		wantError(t, resp, body, http.StatusBadRequest, tc.want)
	}
}

func TestItems(t *testing.T) {
	tn := newTestNet(t, 5)
	base := tn.servers[0].URL

	// Immutable: the target is the SHA-1 of the bencoded value.
	imm := itemJSON{V: []byte("12:Hello World!")}
	b, _ := json.Marshal(imm)
	resp, body := call(t, "POST", base+"/v1/items", bytes.NewReader(b))
	if resp.StatusCode != 200 {
		t.Fatalf("put immutable: %d %s", resp.StatusCode, body)
	}
	put := decode[itemJSON](t, body)
	if want := kademlia.ItemTarget(nil, nil, imm.V).String(); put.Target != want || put.Stored == 0 {
		t.Fatalf("put immutable = %s, want target %s", body, want)
	}
	resp, body = call(t, "GET", tn.servers[3].URL+"/v1/items/"+put.Target, nil)
	if got := decode[itemJSON](t, body); resp.StatusCode != 200 || string(got.V) != "12:Hello World!" || got.Mutable {
		t.Fatalf("get immutable: %d %s", resp.StatusCode, body)
	}

	// Mutable: signed by the client, fetched with its salt.
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32))
	it := kademlia.SignItem(key, []byte("salt"), 3, []byte("i42e"))
	mut := itemJSON{V: it.V, K: it.K, Sig: it.Sig, Salt: it.Salt, Seq: it.Seq}
	b, _ = json.Marshal(mut)
	target := it.Target().String()
	resp, body = call(t, "PUT", base+"/v1/items/"+target, bytes.NewReader(b))
	if resp.StatusCode != 200 {
		t.Fatalf("put mutable: %d %s", resp.StatusCode, body)
	}
	resp, body = call(t, "GET", tn.servers[2].URL+"/v1/items/"+target+"?salt=salt", nil)
	if got := decode[itemJSON](t, body); resp.StatusCode != 200 || string(got.V) != "i42e" || got.Seq != 3 || !got.Mutable {
		t.Fatalf("get mutable: %d %s", resp.StatusCode, body)
	}

	bad := mut
	bad.Sig = bytes.Repeat([]byte{1}, 64)
	b, _ = json.Marshal(bad)
	resp, body = call(t, "PUT", base+"/v1/items/"+target, bytes.NewReader(b))
	wantError(t, resp, body, http.StatusBadRequest, "signature")

	b, _ = json.Marshal(mut)
	resp, body = call(t, "PUT", base+"/v1/items/"+id.FromString("x").String(), bytes.NewReader(b))
	wantError(t, resp, body, http.StatusBadRequest, "target")

	big := itemJSON{V: []byte("1001:" + strings.Repeat("x", 1001))}
	b, _ = json.Marshal(big)
	resp, body = call(t, "POST", base+"/v1/items", bytes.NewReader(b))
	wantError(t, resp, body, http.StatusRequestEntityTooLarge, "1000")

	resp, body = call(t, "POST", base+"/v1/items", strings.NewReader(`{"v": "not base64!"}`))
	wantError(t, resp, body, http.StatusBadRequest, "item")

	resp, body = call(t, "GET", base+"/v1/items/"+id.FromString("absent").String(), nil)
	wantError(t, resp, body, http.StatusNotFound, "not found")
}

func TestUnknownEndpoint(t *testing.T) {
	tn := newTestNet(t, 1)
	resp, body := call(t, "GET", tn.servers[0].URL+"/v1/nope", nil)
	wantError(t, resp, body, http.StatusNotFound, "no such endpoint")
	resp, body = call(t, "DELETE", tn.servers[0].URL+"/v1/status", nil)
	wantError(t, resp, body, http.StatusMethodNotAllowed, "method not allowed")
	if a := resp.Header.Get("Allow"); !strings.Contains(a, "GET") {
		t.Errorf("405 without Allow: %q", a)
	}
}

func TestLookupFailsWithoutContacts(t *testing.T) {
	tn := newTestNet(t, 1)
	resp, body := call(t, "POST", tn.servers[0].URL+"/v1/lookup/hello", nil)
	wantError(t, resp, body, http.StatusServiceUnavailable, "bootstrap")
}

func TestMetrics(t *testing.T) {
	tn := newTestNet(t, 3)
	call(t, "POST", tn.servers[0].URL+"/v1/lookup/hello", nil)
	resp, body := call(t, "GET", tn.servers[0].URL+"/metrics", nil)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("/metrics: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	text := string(body)
	for _, want := range []string{
		`dhtkit_queries_in_total{method="find_node"}`,
		`dhtkit_queries_out_total{method="find_node"}`,
		`dhtkit_responses_in_total `,
		`dhtkit_errors_total{kind="timeout"}`,
		`dhtkit_dropped_total{reason="byte_budget"} 0`,
		`dhtkit_dropped_total{reason="node_diversity"}`,
		`dhtkit_put_reissues_total 0`,
		`dhtkit_routing_contacts{state="good"} 2`,
		`dhtkit_store_keys `,
		`dhtkit_store_bytes `,
		`dhtkit_lookup_duration_seconds_count{op="find_node"} 1`,
		`dhtkit_http_requests_total{code="200",method="post"} 1`,
		`go_goroutines `,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// A node with a data directory reports its group commits: each put is
// one commit of one record here (a network of one, one put at a time),
// and every commit lands in the histogram's buckets and count. A node in
// memory reports none.
func TestMetricsCommits(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	kc := kademlia.DefaultConfig()
	kc.Alone = true
	n, err := dhtkit.Listen(ctx, dhtkit.Config{Listen: "127.0.0.1:0", Network: "dhtkit-test", DataDir: t.TempDir(), Kademlia: kc, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(New(n, Options{Logger: quiet, Timeout: 10 * time.Second}))
	defer func() {
		srv.Close()
		n.Close()
	}()
	const puts = 3
	for i := range puts {
		resp, body := call(t, "PUT", fmt.Sprintf("%s/v1/keys/k%d", srv.URL, i), strings.NewReader("v"))
		if resp.StatusCode != 200 {
			t.Fatalf("PUT: %d %s", resp.StatusCode, body)
		}
	}
	_, body := call(t, "GET", srv.URL+"/metrics", nil)
	text := string(body)
	for _, want := range []string{
		fmt.Sprintf("dhtkit_store_commit_duration_seconds_count %d\n", puts),
		fmt.Sprintf("dhtkit_store_commit_records_total %d\n", puts),
		fmt.Sprintf(`dhtkit_store_commit_duration_seconds_bucket{le="+Inf"} %d`+"\n", puts),
		`dhtkit_store_commit_duration_seconds_bucket{le="0.00025"} `,
		`dhtkit_store_commit_duration_seconds_bucket{le="1"} `,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	mem := newTestNet(t, 1)
	_, body = call(t, "GET", mem.servers[0].URL+"/metrics", nil)
	if want := "dhtkit_store_commit_duration_seconds_count 0\n"; !strings.Contains(string(body), want) {
		t.Errorf("a node in memory: /metrics lacks %q", want)
	}
}

func TestEventsStream(t *testing.T) {
	tn := newTestNet(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", tn.servers[0].URL+"/v1/events?interval=100ms", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	// Traffic for the stream to report.
	if _, err := tn.nodes[0].Ping(ctx, tn.nodes[1].Addr()); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(resp.Body)
	var event string
	got := map[string]bool{}
	for sc.Scan() && !(got["stats"] && got["message"]) {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data := []byte(strings.TrimPrefix(line, "data: "))
			switch event {
			case "stats":
				if c := decode[countersJSON](t, data); c.Contacts != 1 {
					t.Errorf("stats event %s: want 1 contact", data)
				}
			case "message":
				m := decode[messageJSON](t, data)
				if m.Dir != "in" && m.Dir != "out" || m.Peer == "" || m.Kind == "" {
					t.Errorf("message event %s", data)
				}
			}
			got[event] = true
		}
	}
	if !got["stats"] || !got["message"] {
		t.Errorf("events seen %v, want stats and message (scan: %v)", got, sc.Err())
	}
}

func TestPage(t *testing.T) {
	tn := newTestNet(t, 4)
	resp, body := call(t, "GET", tn.servers[0].URL+"/", nil)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("/: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("page CSP %q", csp)
	}
	page := string(body)
	for i := 1; i < 4; i++ {
		if !strings.Contains(page, `href="`+tn.servers[i].URL+`/"`) {
			t.Errorf("the page does not link to node %d's page %s", i, tn.servers[i].URL)
		}
	}
	for _, want := range []string{tn.nodes[0].ID().String(), tn.nodes[0].Addr().String(), "dhtkit-test", "<svg", `class="self"`, "Routing table"} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	for _, asset := range []string{"/static/style.css", "/static/app.js"} {
		if resp, _ := call(t, "GET", tn.servers[0].URL+asset, nil); resp.StatusCode != 200 {
			t.Errorf("%s: %d", asset, resp.StatusCode)
		}
	}
}

func TestLookupPageEscapes(t *testing.T) {
	tn := newTestNet(t, 3)
	hostile := `<script>alert(1)</script>"'&`
	resp, body := call(t, "GET", tn.servers[0].URL+"/ui/lookup?target="+strings.ReplaceAll(hostile, "&", "%26"), nil)
	if resp.StatusCode != 200 {
		t.Fatalf("lookup page: %d", resp.StatusCode)
	}
	if strings.Contains(string(body), "<script>alert") {
		t.Errorf("the lookup page echoes markup unescaped")
	}
	if !strings.Contains(string(body), "&lt;script&gt;alert(1)&lt;/script&gt;") {
		t.Errorf("the lookup page does not show the escaped query")
	}
	if !strings.Contains(string(body), id.FromString(hostile).String()) {
		t.Errorf("the lookup page does not show the hashed target")
	}
}
