package httpapi

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"
)

// browserContext starts headless Chromium, or skips the test when there is
// none.
func browserContext(t *testing.T, width, height int, extra ...chromedp.ExecAllocatorOption) context.Context {
	t.Helper()
	var path string
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		t.Skip("no chromium binary found: install the Debian package chromium (apt-get install chromium) to run the browser test")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // containers and CI run as root
		chromedp.WindowSize(width, height),
		chromedp.Flag("disable-dev-shm-usage", true),
	)
	opts = append(opts, extra...)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	// Generous: Chromium on a busy machine (load average 10-40) takes
	// many times longer than on an idle one.
	ctx, cancelTimeout := context.WithTimeout(ctx, 5*time.Minute)
	t.Cleanup(func() { cancelTimeout(); cancelCtx(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("starting %s: %v", path, err)
	}
	return ctx
}

// TestBrowser drives a node's page in headless Chromium: it follows a link
// to another node's page, stores a value through the form, downloads it
// and saves a screenshot.
func TestBrowser(t *testing.T) {
	ctx := browserContext(t, 1280, 1000)
	tn := newTestNet(t, 5)
	for i := range 6 {
		call(t, "PUT", fmt.Sprintf("%s/v1/keys/sample-%d", tn.servers[i%5].URL, i), strings.NewReader(strings.Repeat("v", 100*i)))
	}
	start := tn.servers[0].URL + "/"

	// Open node 0's page; follow the first link to another node's page.
	err := chromedp.Do(ctx,
		chromedp.Navigate(start),
		chromedp.WaitVisible(chromedp.CSS("#routing a.peer")),
	)
	if err != nil {
		t.Fatalf("opening %s: %v", start, err)
	}
	link, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS("#routing a.peer"), "href"))
	if err != nil {
		t.Fatal(err)
	}
	peerURL := link.Value
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#routing a.peer")), chromedp.WaitVisible(chromedp.CSS("#put-form"))); err != nil {
		t.Fatalf("following the link to %s: %v", peerURL, err)
	}
	heading, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(".brand .id")))
	if err != nil {
		t.Fatal(err)
	}
	peer := -1
	for i, s := range tn.servers {
		if s.URL+"/" == peerURL {
			peer = i
		}
	}
	if peer <= 0 {
		t.Fatalf("the link %q leads to no other node's page", peerURL)
	}
	if heading != tn.nodes[peer].ID().String() {
		t.Fatalf("followed %s, but the page shows node %q, want %v", peerURL, heading, tn.nodes[peer].ID())
	}

	// Put a value through the form of that page.
	key, value := "browser key ü/<b>", "stored through the form\nline two <i>not markup</i>"
	for i, step := range []chromedp.Action[chromedp.Void]{
		chromedp.SendKeys(chromedp.CSS("#put-key"), key),
		chromedp.SendKeys(chromedp.CSS("#put-value"), value),
		chromedp.Click(chromedp.CSS("#put-submit")),
		chromedp.WaitVisible(chromedp.CSS(".flash.ok")),
	} {
		sctx, cancel := context.WithTimeout(ctx, time.Minute) // generous: a busy machine
		err := chromedp.Do(sctx, step)
		cancel()
		if err != nil {
			loc, _ := chromedp.Run(ctx, chromedp.Location())
			text, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
			t.Fatalf("putting through the form, step %d: %v (at %s: %q)", i, err, loc, text)
		}
	}
	if flash, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(".flash"))); err != nil || !strings.Contains(flash, "stored") {
		t.Fatalf("after the put the page says %q (%v)", flash, err)
	}
	if _, body := call(t, "GET", tn.servers[0].URL+"/v1/keys/"+url.PathEscape(key), nil); string(body) != value {
		t.Fatalf("node 0 reads %q, want %q", body, value)
	}

	// Fetch it with the get form, then download it.
	err = chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS("#get-key"), key),
		chromedp.Submit(chromedp.CSS("#get-key")),
		chromedp.WaitVisible(chromedp.CSS("#value")),
	)
	if err != nil {
		t.Fatalf("the get form: %v", err)
	}
	if shown, err := chromedp.Run(ctx, chromedp.TextContent(chromedp.CSS("#value"))); err != nil || shown != value {
		t.Errorf("the get page shows %q (%v), want %q", shown, err, value)
	}
	dir := t.TempDir()
	progress := chromedp.Events(ctx, browser.DownloadProgress)
	err = chromedp.Do(ctx,
		chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
			yes := true
			_, err := chromedp.Call(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
				Behavior:      browser.SetDownloadBehaviorBehaviorAllowAndName,
				DownloadPath:  dir,
				EventsEnabled: &yes,
			})
			return err
		}),
		chromedp.Click(chromedp.CSS("#download")),
	)
	if err != nil {
		t.Fatalf("downloading: %v", err)
	}
	for ev, err := range progress {
		if err != nil {
			t.Fatalf("waiting for the download: %v", err)
		}
		if ev.State != browser.DownloadProgressStateCompleted {
			continue
		}
		got, err := os.ReadFile(filepath.Join(dir, ev.GUID))
		if err != nil || string(got) != value {
			t.Errorf("downloaded %q (%v), want %q", got, err, value)
		}
		break
	}

	// A screenshot of the first node's page.
	if err := chromedp.Do(ctx, chromedp.Navigate(start), chromedp.WaitVisible(chromedp.CSS("#ring svg"))); err != nil {
		t.Fatal(err)
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	shot := filepath.Join(t.TempDir(), "node.png")
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot of %s: %s (%d bytes)", start, shot, len(png))
}

// TestDocsScreenshot writes the screenshot of a node's page in a 20-node
// network that the documentation shows. It runs only when
// DHTKIT_SCREENSHOT names the file to write.
func TestDocsScreenshot(t *testing.T) {
	out := os.Getenv("DHTKIT_SCREENSHOT")
	if out == "" {
		t.Skip("set DHTKIT_SCREENSHOT=docs/screenshot.png to write the documentation's screenshot")
	}
	ctx := browserContext(t, 1280, 900)
	tn := newTestNet(t, 20)
	names := []string{"photos/2024/beach.jpg", "notes/todo.md", "config/app.yaml", "hello", "backups/db-0412.sql.gz",
		"users/ada", "users/grace", "music/playlist.m3u", "docs/readme.txt", "keys/ssh.pub", "cache/index", "videos/demo.mp4"}
	for i, name := range names {
		call(t, "PUT", fmt.Sprintf("%s/v1/keys/%s?ttl=%dh", tn.servers[i%20].URL, url.PathEscape(name), 24+i), strings.NewReader(strings.Repeat("x", 300+i*2900)))
	}
	// Some traffic for the live view while the page is open.
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(150 * time.Millisecond):
				call(t, "POST", fmt.Sprintf("%s/v1/lookup/target-%d", tn.servers[i%20].URL, i), nil)
			}
		}
	}()
	err := chromedp.Do(ctx,
		chromedp.Navigate(tn.servers[0].URL+"/"),
		chromedp.WaitVisible(chromedp.CSS("#ring svg")),
		chromedp.Sleep(6*time.Second), // the live view fills in
	)
	if err != nil {
		t.Fatal(err)
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(out, png, 0o644); err != nil {
		t.Fatal(err)
	}
}
