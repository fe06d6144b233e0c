package ui_test

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// newBrowser starts Debian's chromium headless (as root it needs
// --no-sandbox), trusting the test PKI's self-signed server certificate by
// ignoring certificate errors, in a laptop-sized window.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("no chromium: install it with `hack/deps.sh chromium` (make deps does): %v", err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox,
		chromedp.Flag("ignore-certificate-errors", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1440, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// run runs actions with a deadline, failing the test with what it was
// doing.
func run(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(tctx, steps...); err != nil {
		failPage(t, ctx, what, err)
	}
}

// value runs one action that returns a value.
func value[T any](t *testing.T, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(tctx, a)
	if err != nil {
		failPage(t, ctx, what, err)
	}
	return v
}

func failPage(t *testing.T, ctx context.Context, what string, err error) {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	body, _ := chromedp.Run(tctx, chromedp.Text(chromedp.CSS("body")))
	u, _ := chromedp.Run(tctx, chromedp.Location())
	t.Fatalf("%s: %v\nat %s, page text:\n%.1500s", what, err, u, body)
}

// browserSignIn signs in through the sign-in page.
func browserSignIn(t *testing.T, ctx context.Context, f *fixture, token string) {
	t.Helper()
	run(t, ctx, "sign in",
		chromedp.Navigate(f.url+"/login"),
		chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SetValue(chromedp.CSS("#token"), token),
		chromedp.Click(chromedp.CSS("#login button")),
		chromedp.WaitVisible(chromedp.CSS("header nav")),
	)
}

func pageText(t *testing.T, ctx context.Context) string {
	t.Helper()
	return value(t, ctx, "read the page", chromedp.Text(chromedp.CSS("body")))
}

// column is the text of one column of the alert table.
func column(t *testing.T, ctx context.Context, n int) []string {
	t.Helper()
	return value(t, ctx, "read the alert table", chromedp.Evaluate[[]string](fmt.Sprintf(
		`[...document.querySelectorAll("#alerts tbody tr:not(.empty)")].map(r => r.cells[%d].textContent.trim())`, n)))
}

// box is an element's place on the page, in CSS pixels.
type box struct {
	Sel        string
	X, Y, W, H float64
}

type layout struct {
	Boxes       []box
	ScrollWidth float64
	InnerWidth  float64
	DPR         float64
}

// checkLayout is the screenshot test of one page: each region named by
// sels is on the page, not empty, within the window's width, and not
// overlapping the others; the page does not scroll sideways; and the
// screenshot shows something drawn in every region. With UI_SCREENSHOTS
// set, the screenshot is written there as name.png (make screenshots).
func checkLayout(t *testing.T, ctx context.Context, name string, sels ...string) {
	t.Helper()
	l := value(t, ctx, "measure "+name, chromedp.Evaluate[layout](layoutJS(sels)))
	shot := value(t, ctx, "screenshot "+name, chromedp.FullScreenshot(100))
	checkShot(t, name, l, shot)
}

// layoutJS measures the regions sels and the window, as a layout.
func layoutJS(sels []string) string {
	quoted := make([]string, len(sels))
	for i, s := range sels {
		quoted[i] = fmt.Sprintf("%q", s)
	}
	return `(() => {
		const boxes = [` + strings.Join(quoted, ",") + `].map(sel => {
			const e = document.querySelector(sel);
			if (!e) return {Sel: sel, X: 0, Y: 0, W: 0, H: 0};
			const r = e.getBoundingClientRect();
			return {Sel: sel, X: r.left + scrollX, Y: r.top + scrollY, W: r.width, H: r.height};
		});
		return {Boxes: boxes, ScrollWidth: document.documentElement.scrollWidth, InnerWidth: innerWidth, DPR: devicePixelRatio};
	})()`
}

// checkShot checks a page's measured layout against its full-page
// screenshot, whichever browser took them (see checkLayout).
func checkShot(t *testing.T, name string, l layout, shot []byte) {
	t.Helper()
	if l.ScrollWidth > l.InnerWidth+1 {
		t.Errorf("%s scrolls sideways: %v wide in a %v window", name, l.ScrollWidth, l.InnerWidth)
	}
	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil {
		t.Fatalf("%s screenshot: %v", name, err)
	}
	for i, b := range l.Boxes {
		switch {
		case b.W < 20 || b.H < 10:
			t.Errorf("%s: %s is missing or empty: %+v", name, b.Sel, b)
			continue
		case b.X < 0 || b.X+b.W > l.InnerWidth+1:
			t.Errorf("%s: %s is outside the window (width %v): %+v", name, b.Sel, l.InnerWidth, b)
		}
		for _, o := range l.Boxes[i+1:] {
			if b.X < o.X+o.W-1 && o.X < b.X+b.W-1 && b.Y < o.Y+o.H-1 && o.Y < b.Y+b.H-1 {
				t.Errorf("%s: %s overlaps %s: %+v %+v", name, b.Sel, o.Sel, b, o)
			}
		}
		if n := colours(img, b, l.DPR); n < 3 {
			t.Errorf("%s: %s shows %d colours in the screenshot: nothing drawn", name, b.Sel, n)
		}
	}
	if dir := os.Getenv("UI_SCREENSHOTS"); dir != "" {
		if err := os.WriteFile(filepath.Join(dir, name+".png"), shot, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// colours counts the distinct colours of the screenshot within b (up to
// 16).
func colours(img image.Image, b box, dpr float64) int {
	r := image.Rect(int(b.X*dpr), int(b.Y*dpr), int((b.X+b.W)*dpr), int((b.Y+b.H)*dpr)).Intersect(img.Bounds())
	seen := map[[4]uint32]bool{}
	for y := r.Min.Y; y < r.Max.Y; y += 2 {
		for x := r.Min.X; x < r.Max.X; x += 2 {
			c0, c1, c2, c3 := img.At(x, y).RGBA()
			seen[[4]uint32{c0, c1, c2, c3}] = true
			if len(seen) >= 16 {
				return len(seen)
			}
		}
	}
	return len(seen)
}
