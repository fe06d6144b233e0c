package ui_test

import (
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	errnowatchv1 "github.com/errnowatch/errnowatch/api/errnowatch/v1"
	"github.com/errnowatch/errnowatch/pkg/collector"
	"github.com/errnowatch/errnowatch/pkg/collector/collectortest"
	"github.com/errnowatch/errnowatch/pkg/ui"
)

// The layout tests open each page in a laptop-sized window (1440×900) and
// check its regions in a screenshot (checkLayout); `make screenshots`
// runs them with UI_SCREENSHOTS=docs/ui to refresh the docs' images.

func TestLayoutSignIn(t *testing.T) {
	f := newFixture(t, nil, ui.Config{})
	ctx := newBrowser(t)
	run(t, ctx, "sign-in page", chromedp.Navigate(f.url+"/login"), chromedp.WaitVisible(chromedp.CSS("#login")))
	checkLayout(t, ctx, "signin", "header.top", "section.login")
}

func TestLayoutOverview(t *testing.T) {
	f, _, ctx := signedInBrowser(t)
	f.heartbeat(t, &errnowatchv1.AgentStatus{Node: "node-0", SensorAttached: true, SpoolRecords: 12, SpoolOldestSeconds: 40, RingDrops: 3})
	f.heartbeat(t, &errnowatchv1.AgentStatus{Node: "node-1", SensorAttached: true})
	run(t, ctx, "overview", chromedp.Navigate(f.url+"/"), chromedp.WaitVisible(chromedp.CSS("#alerts")))
	checkLayout(t, ctx, "overview", "header.top", "form.filters", "#chart-by-severity", "#chart-by-rule",
		"#top-namespaces", "#top-pods", "#nodes", "#alerts")
}

func TestLayoutTimeline(t *testing.T) {
	f, _, ctx := signedInBrowser(t)
	run(t, ctx, "timeline", chromedp.Navigate(f.url+"/timeline?namespace=team-a"), chromedp.WaitVisible(chromedp.CSS("#alerts")))
	checkLayout(t, ctx, "timeline", "header.top", "form.filters", "#chart-alerts", "#chart-failures", "#pods", "#rules", "#alerts")
}

func TestLayoutAlert(t *testing.T) {
	f, as, ctx := signedInBrowser(t)
	run(t, ctx, "alert", chromedp.Navigate(f.url+"/alerts/"+as[4].ID), chromedp.WaitVisible(chromedp.CSS("#ocsf")))
	checkLayout(t, ctx, "alert", "header.top", "#alert-head", "#counts", "#processes", "#targets", "#revisions", "#ocsf")
}

func TestLayoutRules(t *testing.T) {
	f, _, ctx := signedInBrowser(t)
	run(t, ctx, "rules", chromedp.Navigate(f.url+"/rules"), chromedp.WaitVisible(chromedp.CSS("#rule-list")))
	checkLayout(t, ctx, "rules", "header.top", "form.filters", "#rule-list")
}

// TestLocalStandaloneUI is `make run`'s UI: the embedded collector serves
// it in clear text on a loopback address only, signed in with the per-run
// access key; chromium keeps the Secure session cookie on
// http://localhost, as on https.
func TestLocalStandaloneUI(t *testing.T) {
	col := collectortest.Start(t, collector.Config{}, nil, true, "")
	for _, bad := range []collector.UIListen{
		{Address: "0.0.0.0:0", LocalKey: testLocalKey},
		{Address: "127.0.0.1:0"},
		{Address: "127.0.0.1:0", LocalKey: "short"},
	} {
		if u, err := col.ServeUI(bad); err == nil {
			u.Close()
			t.Fatalf("served a UI with %+v", bad)
		}
	}
	u, err := col.ServeUI(collector.UIListen{Address: "127.0.0.1:0", LocalKey: testLocalKey})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { u.Close() })
	if !strings.HasPrefix(u.URL(), "http://localhost:") {
		t.Fatalf("local UI URL %s", u.URL())
	}
	f := &fixture{url: strings.TrimSuffix(u.URL(), "/")}
	ctx := newBrowser(t)
	browserSignIn(t, ctx, f, testLocalKey)
	run(t, ctx, "overview", chromedp.Navigate(f.url+"/"), chromedp.WaitVisible(chromedp.CSS("#alerts")))
	if txt := pageText(t, ctx); !strings.Contains(txt, "local:access-key") {
		t.Fatalf("signed-in overview:\n%s", txt)
	}
}
