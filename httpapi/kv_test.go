package httpapi

import (
	"bufio"
	"bytes"
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/krpc"
	"github.com/dhtkit/dhtkit/store"
)

// hostileKeys are keys a client may legitimately use: every one must
// round-trip through the path escaping.
var hostileKeys = []string{
	"plain",
	"with space",
	"a/b/c",
	"../../etc/passwd",
	"<script>alert('k')</script>",
	"ünïcødé ✓",
	"100%",
	"q?x=1#frag",
}

func TestKeysRoundTrip(t *testing.T) {
	tn := newTestNet(t, 5)
	for i, key := range hostileKeys {
		t.Run(key, func(t *testing.T) {
			u := tn.servers[i%5].URL + "/v1/keys/" + url.PathEscape(key)
			value := "value of " + key + " <b>bold</b>"
			resp, body := call(t, "PUT", u+"?ttl=1h", strings.NewReader(value))
			if resp.StatusCode != 200 {
				t.Fatalf("PUT: %d %s", resp.StatusCode, body)
			}
			put := decode[putJSON](t, body)
			if put.Key != key || put.Version.IsZero() || put.Expires == nil {
				t.Fatalf("PUT reply %s", body)
			}
			resp, body = call(t, "GET", u, nil)
			if resp.StatusCode != 200 || string(body) != value {
				t.Fatalf("GET: %d %q, want %q", resp.StatusCode, body, value)
			}
			if et := resp.Header.Get("ETag"); et != `"`+put.Version.String()+`"` {
				t.Errorf("ETag %q, want the version %v", et, put.Version)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/octet-stream" {
				t.Errorf("value Content-Type %q", ct)
			}
			req, _ := http.NewRequest("GET", u, nil)
			req.Header.Set("If-None-Match", `"`+put.Version.String()+`"`)
			if r, err := http.DefaultClient.Do(req); err != nil || r.StatusCode != http.StatusNotModified {
				t.Errorf("conditional GET: %v %v", r.StatusCode, err)
			}
			resp, body = call(t, "HEAD", u, nil)
			if resp.StatusCode != 200 || len(body) != 0 || resp.Header.Get("X-Dhtkit-Version") != put.Version.String() {
				t.Errorf("HEAD: %d, version %q, body %q", resp.StatusCode, resp.Header.Get("X-Dhtkit-Version"), body)
			}
			resp, body = call(t, "GET", u+"/where", nil)
			w := decode[whereJSON](t, body)
			if resp.StatusCode != 200 || w.Key != key || w.Target != id.FromString(key).String() || len(w.Nodes) == 0 {
				t.Fatalf("where: %d %s", resp.StatusCode, body)
			}
			if h := w.Nodes[0]; !h.Has || h.Version != put.Version || h.Addr == "" || h.ID == "" {
				t.Errorf("where: holder %+v, want version %v", h, put.Version)
			}
			resp, body = call(t, "DELETE", u, nil)
			if d := decode[deleteJSON](t, body); resp.StatusCode != 200 || !d.Deleted || d.Key != key {
				t.Fatalf("DELETE: %d %s", resp.StatusCode, body)
			}
			resp, body = call(t, "GET", u, nil)
			wantError(t, resp, body, http.StatusNotFound, "not found")
			resp, body = call(t, "HEAD", u, nil)
			wantError(t, resp, body, http.StatusNotFound, "")
		})
	}
}

func TestKeysErrors(t *testing.T) {
	tn := newTestNet(t, 3)
	base := tn.servers[0].URL
	for _, tc := range []struct {
		method, path, body string
		code               int
		want               string
	}{
		{"GET", "/v1/keys/absent", "", http.StatusNotFound, "not found"},
		{"PUT", "/v1/keys/k?ttl=soon", "v", http.StatusBadRequest, "ttl"},
		{"PUT", "/v1/keys/k?ttl=-1h", "v", http.StatusBadRequest, "ttl"},
	} {
		resp, body := call(t, tc.method, base+tc.path, strings.NewReader(tc.body))
		wantError(t, resp, body, tc.code, tc.want)
	}
	// A body larger than MaxValueSize is refused by its Content-Length, or
	// cut off while it is read when it has none.
	h := New(tn.nodes[0], Options{Logger: quiet, MaxValueSize: 1024})
	for _, length := range []int64{4096, -1} {
		req, _ := http.NewRequest("PUT", "/v1/keys/big", strings.NewReader(strings.Repeat("x", 4096)))
		req.ContentLength = length
		rec := newRecorder()
		h.ServeHTTP(rec, req)
		if rec.code != http.StatusRequestEntityTooLarge || !strings.Contains(rec.body.String(), `"error"`) {
			t.Errorf("oversized PUT (Content-Length %d): %d %s", length, rec.code, rec.body.String())
		}
		if _, err := tn.nodes[0].Get(context.Background(), "big"); err == nil {
			t.Errorf("an oversized PUT stored something")
		}
	}
}

func TestLocal(t *testing.T) {
	tn := newTestNet(t, 3)
	base := tn.servers[1].URL
	call(t, "PUT", base+"/v1/keys/a", strings.NewReader("12345"))
	call(t, "PUT", base+"/v1/keys/b", strings.NewReader("x"))
	call(t, "DELETE", base+"/v1/keys/b", nil)
	resp, body := call(t, "GET", base+"/v1/local", nil)
	l := decode[localJSON](t, body)
	if resp.StatusCode != 200 {
		t.Fatalf("local: %d %s", resp.StatusCode, body)
	}
	recs := map[string]recordJSON{}
	for _, r := range l.Records {
		recs[r.Key] = r
	}
	if a := recs["a"]; a.Size != 5 || a.Deleted || a.Target != id.FromString("a").String() || a.Version.IsZero() {
		t.Errorf("local record a = %+v", a)
	}
	if b, ok := recs["b"]; ok && !b.Deleted {
		t.Errorf("local record b = %+v, want a tombstone", b)
	}
	// Bytes as the store counts them against its limit: the key, the
	// record's value, its layout byte included, and the record's overhead.
	const want = 7 + store.RecordOverhead
	if l.Keys != 1 || l.Bytes != want {
		t.Errorf("local keys %d bytes %d, want 1 and %d", l.Keys, l.Bytes, want)
	}
	_, body = call(t, "GET", base+"/v1/status", nil)
	if st := decode[statusJSON](t, body); st.Store.Keys != 1 || st.Store.Bytes != want {
		t.Errorf("status store %+v, want 1 key, %d bytes", st.Store, want)
	}
}

func TestWatch(t *testing.T) {
	tn := newTestNet(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	key := "watched key/ü"
	req, _ := http.NewRequestWithContext(ctx, "GET", tn.servers[0].URL+"/v1/watch/"+url.PathEscape(key), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("watch Content-Type %q", resp.Header.Get("Content-Type"))
	}
	sc := bufio.NewScanner(resp.Body)
	var events []valueJSON
	next := func() {
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				events = append(events, decode[valueJSON](t, []byte(data)))
				return
			}
		}
	}
	// The node polls the replicas: each change is seen before the next.
	call(t, "PUT", tn.servers[1].URL+"/v1/keys/"+url.PathEscape(key), strings.NewReader("one"))
	next()
	call(t, "DELETE", tn.servers[2].URL+"/v1/keys/"+url.PathEscape(key), nil)
	next()
	if len(events) != 2 {
		t.Fatalf("got %d events, want 2 (%v)", len(events), sc.Err())
	}
	if e := events[0]; e.Key != key || string(e.Value) != "one" || e.Text == nil || *e.Text != "one" || e.Deleted {
		t.Errorf("first event %+v", e)
	}
	if e := events[0]; e.Reason != "added" || e.ID != "0000000000000000" {
		t.Errorf("first event: reason %q id %q, want added of the default value", e.Reason, e.ID)
	}
	// A delete carries the delete's version, newer than the value's.
	if e := events[1]; !e.Deleted || e.Reason != "deleted" || !e.Version.Newer(events[0].Version) {
		t.Errorf("second event %+v, want a newer delete", e)
	}
}

func TestPageEscapesStoredData(t *testing.T) {
	tn := newTestNet(t, 3)
	base := tn.servers[0].URL
	key := `<img src=x onerror=alert(1)>`
	value := `</pre><script>alert(2)</script>`
	call(t, "PUT", base+"/v1/keys/"+url.PathEscape(key), strings.NewReader(value))
	_, page := call(t, "GET", base+"/", nil)
	_, get := call(t, "GET", base+"/ui/get?key="+url.QueryEscape(key), nil)
	for name, body := range map[string]string{"index": string(page), "get": string(get)} {
		if strings.Contains(body, "<img src=x") || strings.Contains(body, "<script>alert") {
			t.Errorf("the %s page shows stored data unescaped", name)
		}
	}
	if !strings.Contains(string(page), "&lt;img src=x onerror=alert(1)&gt;") {
		t.Errorf("the index page does not list the key, escaped")
	}
	if !strings.Contains(string(get), "&lt;/pre&gt;&lt;script&gt;alert(2)&lt;/script&gt;") {
		t.Errorf("the get page does not show the value, escaped")
	}
	resp, _ := call(t, "GET", base+"/v1/keys/"+url.PathEscape(key)+"?download=1", nil)
	if cd := resp.Header.Get("Content-Disposition"); !strings.HasPrefix(cd, "attachment;") {
		t.Errorf("download Content-Disposition %q", cd)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "sandbox") {
		t.Errorf("value CSP %q, want sandbox", csp)
	}
}

func TestForms(t *testing.T) {
	tn := newTestNet(t, 3)
	base := tn.servers[0].URL
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	post := func(path string, form url.Values, origin string) *http.Response {
		req, _ := http.NewRequest("POST", base+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	resp := post("/ui/put", url.Values{"key": {"form key"}, "value": {"form value"}, "ttl": {"2h"}}, base)
	if resp.StatusCode != http.StatusSeeOther || !strings.Contains(resp.Header.Get("Location"), "msg=") {
		t.Fatalf("form put: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	if _, body := call(t, "GET", tn.servers[2].URL+"/v1/keys/form%20key", nil); string(body) != "form value" {
		t.Errorf("after the form put, GET = %q", body)
	}
	if resp := post("/ui/put", url.Values{"key": {"evil"}, "value": {"x"}}, "http://evil.example"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-site form put: %d, want 403", resp.StatusCode)
	}
	if resp := post("/ui/put", url.Values{"key": {"k"}, "ttl": {"never"}}, ""); !strings.Contains(resp.Header.Get("Location"), "err=") {
		t.Errorf("form put with a bad ttl: %s", resp.Header.Get("Location"))
	}
	resp = post("/ui/delete", url.Values{"key": {"form key"}}, "")
	if resp.StatusCode != http.StatusSeeOther {
		t.Errorf("form delete: %d", resp.StatusCode)
	}
	if resp, _ := call(t, "GET", base+"/v1/keys/form%20key", nil); resp.StatusCode != 404 {
		t.Errorf("after the form delete, GET: %d", resp.StatusCode)
	}
}

func TestLargeValueStreams(t *testing.T) {
	tn := newTestNet(t, 5)
	value := make([]byte, streamAfter+100<<10) // past the buffer: streamed
	for i := range value {
		value[i] = byte(i*7 + i>>9)
	}
	u := "/v1/keys/" + url.PathEscape("big file.bin")
	resp, body := call(t, "PUT", tn.servers[0].URL+u, bytes.NewReader(value))
	if resp.StatusCode != 200 {
		t.Fatalf("PUT: %d %s", resp.StatusCode, body)
	}
	put := decode[putJSON](t, body)
	resp, body = call(t, "GET", tn.servers[3].URL+u+"?download=1", nil)
	if resp.StatusCode != 200 || !bytes.Equal(body, value) {
		t.Fatalf("GET: %d, %d bytes, equal %v", resp.StatusCode, len(body), bytes.Equal(body, value))
	}
	if v := resp.Trailer.Get("X-Dhtkit-Version"); v != put.Version.String() {
		t.Errorf("trailer version %q, want %v", v, put.Version)
	}
	if cd := resp.Header.Get("Content-Disposition"); !strings.Contains(cd, "big file.bin") {
		t.Errorf("Content-Disposition %q", cd)
	}
	// HEAD reads the manifest, not the chunks: size and version at once.
	before := tn.nodes[1].Stats().QueriesOut[krpc.MethodFetch]
	resp, body = call(t, "HEAD", tn.servers[1].URL+u, nil)
	if resp.StatusCode != 200 || len(body) != 0 || resp.ContentLength != int64(len(value)) ||
		resp.Header.Get("ETag") != `"`+put.Version.String()+`"` {
		t.Errorf("HEAD: %d, Content-Length %d (want %d), ETag %q", resp.StatusCode, resp.ContentLength, len(value), resp.Header.Get("ETag"))
	}
	if fetches := tn.nodes[1].Stats().QueriesOut[krpc.MethodFetch] - before; fetches > 3 {
		t.Errorf("HEAD sent %d dk_fetch queries: it fetched chunks", fetches)
	}
}

// TestPageShowsValueIDs: a value put under an id is listed on the page by
// its key and id, never by its record key (key, NUL, "v", hex id), and
// downloads by ?id=.
func TestPageShowsValueIDs(t *testing.T) {
	tn := newTestNet(t, 3) // 3 replicas: every node holds every key
	base := tn.servers[0].URL
	if resp, body := call(t, "PUT", base+"/v1/keys/sensors?id=ff", strings.NewReader("reading")); resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT ?id=ff: %d %s", resp.StatusCode, body)
	}
	_, page := call(t, "GET", base+"/", nil)
	for _, want := range []string{">sensors</a>", "id 00000000000000ff", "/v1/keys/sensors?id=00000000000000ff&amp;download=1"} {
		if !strings.Contains(string(page), want) {
			t.Errorf("the page does not show %q", want)
		}
	}
	for _, bad := range []string{"\x00v", "%00v", `\x00v`, "&#0;"} {
		if strings.Contains(string(page), bad) {
			t.Errorf("the page shows a record key (%q)", bad)
		}
	}
}

// A key that ends like a value's record key is refused: it would name a
// value of another key, on another key's replicas.
func TestKeyLikeAValueIDRefused(t *testing.T) {
	tn := newTestNet(t, 3)
	u := tn.servers[0].URL + "/v1/keys/" + url.PathEscape("a\x00v0000000000000001")
	for _, m := range []string{"PUT", "GET", "DELETE"} {
		if resp, body := call(t, m, u, strings.NewReader("x")); resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "?id=") {
			t.Errorf("%s of a key ending like a value id: %d %s, want 400 naming ?id=", m, resp.StatusCode, body)
		}
	}
}
