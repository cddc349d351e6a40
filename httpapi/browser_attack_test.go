package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// seen records what reached a node's handler and how it was answered.
type seen struct {
	mu   sync.Mutex
	reqs []seenReq
}

type seenReq struct {
	method, host, path string
	code               int
}

func (s *seen) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		h.ServeHTTP(rec, r)
		s.mu.Lock()
		s.reqs = append(s.reqs, seenReq{r.Method, r.Host, r.URL.Path, rec.code})
		s.mu.Unlock()
	})
}

func (s *seen) list() []seenReq {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]seenReq(nil), s.reqs...)
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) { w.code = code; w.ResponseWriter.WriteHeader(code) }
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// TestBrowserAttacks opens, in headless Chromium, a page of another site
// that attacks the node through the visitor's browser (forms posting
// text/plain JSON and form data, no-cors fetches of every writing
// method), and a page whose host name was rebound to 127.0.0.1 (DNS
// rebinding: the browser takes the node for that name's origin). Every
// such request reaches the node and is refused; nothing is stored,
// changed or deleted, and the rebound page cannot even read. The same
// script run from the node's own page does write: the harness can see an
// attack that works.
func TestBrowserAttacks(t *testing.T) {
	ctx := browserContext(t, 1024, 768, chromedp.Flag("host-resolver-rules", "MAP attacker.test 127.0.0.1, MAP rebound.test 127.0.0.1"))
	tn := newTestNet(t, 3)
	var log seen
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("requests that reached the node: %+v", log.list())
		}
	})
	node := httptest.NewServer(log.wrap(New(tn.nodes[0], Options{Logger: quiet, Timeout: 10 * time.Second})))
	t.Cleanup(func() { node.CloseClientConnections(); node.Close() }) // the page's event stream stays open
	nodeURL, _ := url.Parse(node.URL)
	port := nodeURL.Port()
	if resp, _ := call(t, "PUT", node.URL+"/v1/keys/victim", strings.NewReader("precious")); resp.StatusCode != 200 {
		t.Fatal("storing the victim value failed")
	}
	before := tn.nodes[0].LocalStats()
	log.mu.Lock()
	log.reqs = nil // count the attack's requests only
	log.mu.Unlock()

	// The attacker's site: forms that post to the node, and a script that
	// tries every writing method without a preflight.
	const ih = "0123456789abcdef0123456789abcdef01234567"
	script := `async (base) => {
		const out = [];
		const tries = [
			["PUT", "/v1/keys/csrf-put", "evil", "text/plain"],
			["DELETE", "/v1/keys/victim", null, null],
			["POST", "/v1/items", '{"v":"evil"}', "text/plain"],
			["POST", "/v1/items", "v=evil", "application/x-www-form-urlencoded"],
			["POST", "/v1/announce/` + ih + `?port=4242", null, null],
			["POST", "/ui/put", "key=csrf-ui&value=evil", "application/x-www-form-urlencoded"],
			["POST", "/ui/delete", "key=victim", "application/x-www-form-urlencoded"],
		];
		for (const [method, path, body, type] of tries) {
			const init = {method, mode: "no-cors", credentials: "include"};
			if (body !== null) { init.body = body; init.headers = {"Content-Type": type}; }
			try { await fetch(base + path, init); out.push(method + " " + path + ": sent"); }
			catch (e) { out.push(method + " " + path + ": " + e); }
		}
		return out.join("\n");
	}`
	page := fmt.Sprintf(`<!doctype html><title>evil</title>
<form id="items" method="post" action="%[1]s/v1/items" enctype="text/plain"><input name='{"v":"evil","x":"' value='"}'></form>
<form id="uiput" method="post" action="%[1]s/ui/put"><input name="key" value="csrf-form"><input name="value" value="evil"></form>
<form id="uidel" method="post" action="%[1]s/ui/delete"><input name="key" value="victim"></form>`, node.URL)
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, page)
	}))
	t.Cleanup(evil.Close)
	evilURL, _ := url.Parse(evil.URL)
	attacker := "http://attacker.test:" + evilURL.Port() + "/"

	countRefused := func(host string) (refused, total int) {
		for _, r := range log.list() {
			if r.method == "GET" || r.method == "HEAD" || r.method == "OPTIONS" || !strings.HasPrefix(r.host, host) {
				continue
			}
			total++
			if r.code >= 400 {
				refused++
			}
		}
		return
	}

	if err := chromedp.Do(ctx, chromedp.Navigate(attacker), chromedp.WaitReady(chromedp.CSS("#items"))); err != nil {
		t.Fatalf("opening the attacker's page: %v", err)
	}
	out, err := chromedp.Run(ctx, chromedp.Evaluate[string]("("+script+")("+jsString(node.URL)+")", chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("the attacker's script: %v", err)
	}
	t.Logf("cross-site fetches:\n%s", out)
	// A form's submission is a navigation, and the next Navigate would
	// abort it if it had not yet reached the node: wait for each one.
	waitFor(t, func() bool { _, n := countRefused("127.0.0.1"); return n >= 5 }, "the attacker's fetches")
	for _, form := range []string{"items", "uiput", "uidel"} {
		_, sent := countRefused("127.0.0.1")
		if err := chromedp.Do(ctx, chromedp.Navigate(attacker), chromedp.WaitReady(chromedp.CSS("#"+form)), chromedp.Submit(chromedp.CSS("#"+form))); err != nil {
			t.Fatalf("submitting the form %s: %v", form, err)
		}
		waitFor(t, func() bool { _, n := countRefused("127.0.0.1"); return n > sent }, "the form "+form)
	}
	// A no-cors PUT or DELETE is stopped by the browser itself; the
	// requests that reach the node are the POSTs: 5 fetches, 3 forms.
	waitFor(t, func() bool { _, n := countRefused("127.0.0.1"); return n >= 8 }, "the attacker's requests")

	// DNS rebinding: the browser opens the node under the attacker's name
	// and runs the script from that origin, with same-origin requests.
	rebound := "http://rebound.test:" + port
	if err := chromedp.Do(ctx, chromedp.Navigate(rebound+"/")); err != nil {
		t.Fatalf("opening the node under a rebound name: %v", err)
	}
	readScript := `fetch("/v1/keys/victim").then(r => r.status)`
	status, err := chromedp.Run(ctx, chromedp.Evaluate[int](readScript, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	if status != http.StatusMisdirectedRequest {
		t.Errorf("a rebound page read the node's value: status %d", status)
	}
	if out, err = chromedp.Run(ctx, chromedp.Evaluate[string]("("+strings.ReplaceAll(script, `mode: "no-cors", `, "")+`)("")`, chromedp.EvalAwaitPromise)); err != nil {
		t.Fatal(err)
	}
	t.Logf("same-origin fetches from the rebound page:\n%s", out)
	waitFor(t, func() bool { _, n := countRefused("rebound.test"); return n >= 7 }, "the rebound page's requests")

	for _, host := range []string{"127.0.0.1", "rebound.test"} {
		if refused, total := countRefused(host); refused != total {
			t.Errorf("%d of %d writing requests for Host %s were served: %+v", total-refused, total, host, log.list())
		}
	}
	ctxGet, cancel := context.WithTimeout(context.Background(), time.Minute) // generous: a busy machine
	defer cancel()
	if v, err := tn.nodes[1].Get(ctxGet, "victim"); err != nil || string(v.Data) != "precious" {
		t.Fatalf("the victim value after the attacks: %q, %v", v.Data, err)
	}
	for _, k := range []string{"csrf-put", "csrf-form", "csrf-ui"} {
		if _, err := tn.nodes[1].Get(ctxGet, k); err == nil {
			t.Errorf("the attack stored %q", k)
		}
	}
	if after := tn.nodes[0].LocalStats(); after != before {
		t.Errorf("the node's store changed under attack: %+v, before %+v", after, before)
	}

	// Control: the same script from the node's own page writes.
	if err := chromedp.Do(ctx, chromedp.Navigate(node.URL+"/")); err != nil {
		t.Fatal(err)
	}
	ctrl := `fetch("/v1/keys/control", {method: "PUT", body: "mine"}).then(r => r.status)`
	if status, err = chromedp.Run(ctx, chromedp.Evaluate[int](ctrl, chromedp.EvalAwaitPromise)); err != nil || status != 200 {
		t.Fatalf("the node's own page could not write: %d, %v", status, err)
	}
	if v, err := tn.nodes[1].Get(ctxGet, "control"); err != nil || string(v.Data) != "mine" {
		t.Fatalf("control value: %q, %v", v.Data, err)
	}
}

func jsString(s string) string { return "'" + strings.ReplaceAll(s, "'", "\\'") + "'" }

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
