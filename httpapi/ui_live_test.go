package httpapi

import (
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestLiveChartDraws: the page's live chart draws a line from its first
// rate sample on (issue 14: it stayed empty in every screenshot, since a
// polyline of one point draws nothing).
func TestLiveChartDraws(t *testing.T) {
	ctx := browserContext(t, 1280, 900)
	tn := newTestNet(t, 2)
	// Once the page shows its first rate (its second update, a second or
	// two after it opened), the chart holds a line of two points or more.
	// The poll returns the points at that moment (0, falsy, until then).
	// Generous for a busy machine; the browser context allows 60 s in all.
	const pointsOnceRated = `(function () {
		if (document.querySelector('[data-live="rate-in"]').textContent.trim() === '–') return 0;
		return (document.querySelector('[data-live="spark-in"]').getAttribute('points') || '').trim().split(/\s+/).filter(Boolean).length || -1;
	})()`
	if err := chromedp.Do(ctx, chromedp.Navigate(tn.servers[0].URL+"/")); err != nil {
		t.Fatal(err)
	}
	n, err := chromedp.Run(ctx, chromedp.Poll[int](pointsOnceRated, chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(50*time.Second)))
	if err != nil {
		t.Fatalf("the page showed no rate: %v", err)
	}
	if n < 2 {
		t.Fatalf("with the first rate shown, the live chart has %d points; want a line (2 or more)", n)
	}
}
