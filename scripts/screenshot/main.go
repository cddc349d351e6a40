// Command screenshot saves a full-page screenshot of a running node's web
// page in headless Chromium, once the page's live chart has drawn (the
// chart needs two of the page's once-a-second updates, so a screenshot
// taken on load shows it empty):
//
//	go run ./scripts/screenshot -url http://127.0.0.1:6880/ -out docs/screenshot-node.png
//
// The documentation's screenshots are made with it (README, "Web page").
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/chromedp/chromedp"
)

func main() {
	url := flag.String("url", "http://127.0.0.1:6880/", "the page")
	out := flag.String("out", "screenshot.png", "the PNG file to write")
	width := flag.Int("width", 1280, "window width in pixels")
	wait := flag.String("wait", `[data-live="spark-in"]:not([points=""])`, "CSS selector to wait for before the screenshot (\"\": none)")
	after := flag.Duration("after", 15*time.Second, "how long to let the page's live view run once it is ready")
	flag.Parse()
	if err := shoot(*url, *out, *width, *wait, *after); err != nil {
		fmt.Fprintln(os.Stderr, "screenshot:", err)
		os.Exit(1)
	}
}

func shoot(url, out string, width int, wait string, after time.Duration) error {
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.NoSandbox, // containers run as root
		chromedp.WindowSize(width, 1000),
		chromedp.Flag("disable-dev-shm-usage", true),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(ctx, 2*time.Minute+after)
	defer cancelTimeout()
	steps := []chromedp.Action[chromedp.Void]{chromedp.Navigate(url)}
	if wait != "" {
		steps = append(steps, chromedp.WaitReady(chromedp.CSS(wait)))
	}
	steps = append(steps, chromedp.Sleep(after))
	if err := chromedp.Do(ctx, steps...); err != nil {
		return fmt.Errorf("%s: %w", url, err)
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		return fmt.Errorf("%s: %w", url, err)
	}
	return os.WriteFile(out, png, 0o644)
}
