package ui_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	errnowatchv1 "github.com/errnowatch/errnowatch/api/errnowatch/v1"
	"github.com/errnowatch/errnowatch/pkg/ui"
)

// TestNamespaceTokenSeesNothingElse: a token whose RBAC allows reading
// alerts in one namespace sees that namespace's alerts, counts, nodes and
// rules, and nothing of another namespace or of host alerts, on every page
// and in the live stream; asking for the other namespace is refused.
func TestNamespaceTokenSeesNothingElse(t *testing.T) {
	k := startKube(t)
	tokA := reader(t, k, "iso-a", "viewer")
	reader(t, k, "iso-b", "viewer")
	f := newFixture(t, k, ui.Config{RequestsPerSecond: 1000})
	as := testAlerts([]string{"iso-a", "iso-b"}, 0, 60)
	var bID string
	for i := range as {
		if as[i].Namespace == "iso-b" {
			as[i].Node = "node-of-b" // a node only iso-b's alerts name
			as[i].RuleID = "rule-only-in-b"
			bID = as[i].ID
		}
		if as[i].Namespace == "" {
			as[i].Node = "host-node"
		}
	}
	f.publish(t, as...)
	// Agents' statuses of iso-b's node and of a node no alert names: a
	// reader of iso-a learns neither.
	f.heartbeat(t, &errnowatchv1.AgentStatus{Node: "node-of-b", SpoolRecords: 5})
	f.heartbeat(t, &errnowatchv1.AgentStatus{Node: "node-without-alerts"})

	t.Run("session cookie expires with the token", func(t *testing.T) {
		c := f.httpClient(t)
		resp := f.signIn(t, c, tokA)
		var ck *http.Cookie
		for _, c := range resp.Cookies() {
			if c.Name == "__Host-errnowatch-session" {
				ck = c
			}
		}
		if ck == nil || !ck.HttpOnly || !ck.Secure || ck.SameSite != http.SameSiteStrictMode || ck.Path != "/" {
			t.Fatalf("session cookie: %+v", ck)
		}
		if d := time.Until(ck.Expires); d < 50*time.Minute || d > time.Hour+time.Minute {
			t.Fatalf("session cookie expires in %s, want with the token (1h)", d)
		}
	})

	t.Run("a token without RBAC sees no namespace", func(t *testing.T) {
		tokNone := token(t, k, "default", "nobody")
		c := f.httpClient(t)
		f.signIn(t, c, tokNone)
		for _, p := range []string{"/", "/?range=30d", "/timeline", "/rules"} {
			body := f.get(t, c, p, http.StatusOK)
			for _, leak := range []string{"iso-a", "iso-b", "node-of-b", "host-node", "rule-only-in-b", "rule-1", "node-without-alerts"} {
				if strings.Contains(body, leak) {
					t.Fatalf("%s shows %q to a token without RBAC", p, leak)
				}
			}
		}
		f.get(t, c, "/?namespace=iso-a", http.StatusForbidden)
	})

	ctx := newBrowser(t)
	browserSignIn(t, ctx, f, tokA)
	for _, p := range []string{"/", "/?range=30d", "/timeline", "/timeline?namespace=iso-a", "/rules"} {
		run(t, ctx, "open "+p, chromedp.Navigate(f.url+p), chromedp.WaitVisible(chromedp.CSS("main")))
		txt := pageText(t, ctx)
		html := value(t, ctx, "html", chromedp.OuterHTML(chromedp.CSS("html")))
		if !strings.Contains(txt, "iso-a") {
			t.Fatalf("%s does not show iso-a:\n%s", p, txt)
		}
		for _, leak := range []string{"iso-b", "node-of-b", "rule-only-in-b", "host-node", "node-without-alerts"} {
			if strings.Contains(html, leak) {
				t.Fatalf("%s shows %q to a reader of iso-a:\n%s", p, leak, txt)
			}
		}
	}
	run(t, ctx, "ask for iso-b", chromedp.Navigate(f.url+"/?namespace=iso-b"), chromedp.WaitVisible(chromedp.CSS("#error")))
	if txt := pageText(t, ctx); !strings.Contains(txt, "may not list alerts in namespace iso-b") || strings.Contains(txt, "node-of-b") {
		t.Fatalf("iso-b for a reader of iso-a:\n%s", txt)
	}
	run(t, ctx, "open an iso-b alert", chromedp.Navigate(f.url+"/alerts/"+bID), chromedp.WaitVisible(chromedp.CSS("#error")))
	if txt := pageText(t, ctx); !strings.Contains(txt, "No alert") || strings.Contains(txt, "node-of-b") {
		t.Fatalf("an iso-b alert for a reader of iso-a:\n%s", txt)
	}

	// Live: new alerts of both namespaces; only iso-a's appears.
	run(t, ctx, "overview", chromedp.Navigate(f.url+"/"), chromedp.WaitVisible(chromedp.CSS("#live-state")))
	fresh := testAlerts([]string{"iso-a", "iso-b"}, 1001, 2) // iso-b, iso-a
	f.publish(t, fresh...)
	run(t, ctx, "iso-a's new alert appears", chromedp.WaitVisible(chromedp.CSS(`#alerts tr[data-id="`+fresh[1].ID+`"]`)))
	if n := value(t, ctx, "rows", chromedp.Evaluate[int](`document.querySelectorAll('#alerts tr[data-id="`+fresh[0].ID+`"]').length`)); n != 0 {
		t.Fatal("iso-b's new alert appeared live for a reader of iso-a")
	}
}
