package ui_test

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	errnowatchv1 "github.com/errnowatch/errnowatch/api/errnowatch/v1"
	"github.com/errnowatch/errnowatch/pkg/alert"
	"github.com/errnowatch/errnowatch/pkg/ui"
)

var teams = []string{"team-a", "team-b", "team-c"}

// signedInBrowser is a fixture with alerts of three namespaces and a
// browser signed in with the local access key.
func signedInBrowser(t *testing.T) (*fixture, []alert.Alert, context.Context) {
	t.Helper()
	f := newFixture(t, nil, ui.Config{RequestsPerSecond: 1000})
	as := testAlerts(teams, 0, 90)
	f.publish(t, as...)
	ctx := newBrowser(t)
	browserSignIn(t, ctx, f, testLocalKey)
	return f, as, ctx
}

func TestNoTokenGetsSignInPage(t *testing.T) {
	f := newFixture(t, nil, ui.Config{})
	f.publish(t, testAlerts(teams, 0, 10)...)
	ctx := newBrowser(t)
	for _, p := range []string{"/", "/timeline?namespace=team-a", "/rules", "/alerts/01ABCDEF"} {
		run(t, ctx, "open "+p, chromedp.Navigate(f.url+p), chromedp.WaitVisible(chromedp.CSS("#login textarea")))
		if txt := pageText(t, ctx); strings.Contains(txt, "team-a") || !strings.Contains(txt, "Sign in") {
			t.Fatalf("%s without signing in shows:\n%s", p, txt)
		}
	}
	// A wrong key stays on the sign-in page with the reason.
	run(t, ctx, "wrong key",
		chromedp.SetValue(chromedp.CSS("#token"), "not-the-key"),
		chromedp.Click(chromedp.CSS("#login button")),
		chromedp.WaitVisible(chromedp.CSS("#login-error")))
}

func TestPagesRender(t *testing.T) {
	f, as, ctx := signedInBrowser(t)
	t.Run("overview", func(t *testing.T) {
		run(t, ctx, "overview", chromedp.Navigate(f.url+"/"), chromedp.WaitVisible(chromedp.CSS("#alerts")))
		bars := value(t, ctx, "count bars", chromedp.Evaluate[int](`document.querySelectorAll("#chart-by-severity rect[class^=sev-]").length`))
		rules := value(t, ctx, "count rule bars", chromedp.Evaluate[int](`document.querySelectorAll("#chart-by-rule rect[class^=c]").length`))
		if bars < 10 || rules < 10 {
			t.Fatalf("charts have %d severity and %d rule bars, want one per hour with alerts", bars, rules)
		}
		if ns := column(t, ctx, 3); len(ns) != 50 {
			t.Fatalf("the overview lists %d alerts, want a page of 50", len(ns))
		}
		txt := pageText(t, ctx)
		for _, want := range []string{"Top namespaces", "team-a", "team-b", "team-c", "node-0", "errnowatch.sensor.evasion ×", "Older alerts"} {
			if !strings.Contains(txt, want) {
				t.Fatalf("overview lacks %q:\n%s", want, txt)
			}
		}
	})
	t.Run("node health", func(t *testing.T) {
		// Agents' own reports, as heartbeats through the collector's
		// ingest: node-0 with a backlog and losses; node-idle, which
		// delivered no alert, still listed for a reader of every namespace.
		f.heartbeat(t, &errnowatchv1.AgentStatus{Node: "node-0", SensorAttached: true, SpoolRecords: 12,
			SpoolOldestSeconds: 40, RingDrops: 3, MapFull: 1})
		f.heartbeat(t, &errnowatchv1.AgentStatus{Node: "node-idle", SensorAttached: false})
		run(t, ctx, "overview", chromedp.Navigate(f.url+"/"), chromedp.WaitVisible(chromedp.CSS(`#nodes tr[data-node="node-idle"]`)))
		row := func(node string) string {
			return value(t, ctx, "node row", chromedp.Text(chromedp.CSS(`#nodes tr[data-node="`+node+`"]`)))
		}
		if r := row("node-0"); !strings.Contains(r, "12 waiting, oldest 40s") || !strings.Contains(r, "ring 3") ||
			!strings.Contains(r, "map full 1") || strings.Contains(r, "detached") {
			t.Fatalf("node-0's row: %q", r)
		}
		if r := row("node-idle"); !strings.Contains(r, "sensor detached") || !strings.Contains(r, "none") {
			t.Fatalf("node-idle's row: %q", r)
		}
		if r := row("node-1"); !strings.Contains(r, "no status from its agent") {
			t.Fatalf("node-1's row: %q", r)
		}
	})
	t.Run("timeline", func(t *testing.T) {
		run(t, ctx, "timeline", chromedp.Navigate(f.url+"/timeline?namespace=team-b"), chromedp.WaitVisible(chromedp.CSS("#chart-failures")))
		pods := value(t, ctx, "pods", chromedp.Evaluate[[]string](`[...document.querySelectorAll("#pods tbody tr td:first-child")].map(e => e.textContent)`))
		if len(pods) != 4 || !strings.HasPrefix(pods[0], "team-b-pod-") {
			t.Fatalf("team-b's pods: %q", pods)
		}
		if ns := column(t, ctx, 3); len(ns) != inNamespace(as, "team-b") || slices.ContainsFunc(ns, func(s string) bool { return s != "team-b" }) {
			t.Fatalf("team-b's timeline lists %q", ns)
		}
		// Zoom: a bar links to its hour; the list narrows to it.
		run(t, ctx, "zoom into an hour", chromedp.Click(chromedp.CSS("#chart-alerts a:has(rect.sev-info), #chart-alerts a:has(rect.sev-low)")), chromedp.WaitVisible(chromedp.CSS("#zoom-out")))
		loc := value(t, ctx, "location", chromedp.Location())
		u, _ := url.Parse(loc)
		from, err1 := time.Parse(time.RFC3339, u.Query().Get("from"))
		to, err2 := time.Parse(time.RFC3339, u.Query().Get("to"))
		if err1 != nil || err2 != nil || to.Sub(from) != time.Hour || u.Query().Get("namespace") != "team-b" {
			t.Fatalf("zoomed to %s", loc)
		}
		if n := len(column(t, ctx, 3)); n == 0 || n >= inNamespace(as, "team-b") {
			t.Fatalf("an hour of team-b lists %d alerts", n)
		}
	})
	t.Run("alert", func(t *testing.T) {
		a := as[4]
		run(t, ctx, "alert", chromedp.Navigate(f.url+"/alerts/"+a.ID), chromedp.WaitVisible(chromedp.CSS("#ocsf pre")))
		ocsf := value(t, ctx, "ocsf", chromedp.Text(chromedp.CSS("#ocsf pre")))
		txt := pageText(t, ctx)
		for _, want := range []string{a.RuleID, a.Message, a.Namespace, a.Pod, a.Node, "openat", "EACCES", "/etc/shadow-", "[fd00::5]:2379", "Deployment/", "Revision"} {
			if !strings.Contains(txt, want) {
				t.Fatalf("alert page lacks %q:\n%s", want, txt)
			}
		}
		if !strings.Contains(ocsf, `"class_uid": 2004`) || !strings.Contains(ocsf, a.ID) {
			t.Fatalf("OCSF of the alert:\n%s", ocsf)
		}
	})
	t.Run("alert revisions", func(t *testing.T) {
		// Three more revisions of one alert through the collector's ingest:
		// the page lists all four, newest first, each with its failures.
		a := as[7]
		for n := uint32(2); n <= 4; n++ {
			r := a
			r.Revision, r.Total, r.Message = n, uint64(n)*100, fmt.Sprintf("revision %d of the alert", n)
			r.LastSeen = a.LastSeen.Add(time.Duration(n) * time.Minute)
			f.publish(t, r)
		}
		run(t, ctx, "alert", chromedp.Navigate(f.url+"/alerts/"+a.ID), chromedp.WaitVisible(chromedp.CSS("#revisions tbody tr")))
		rows := value(t, ctx, "revisions", chromedp.Evaluate[[]string](
			`[...document.querySelectorAll("#revisions tbody tr")].map(r => r.cells[0].textContent + " " + r.cells[4].textContent + " " + r.cells[5].textContent)`))
		want := []string{"4 400 revision 4 of the alert", "3 300 revision 3 of the alert", "2 200 revision 2 of the alert",
			fmt.Sprintf("1 %d %s", a.Total, a.Message)}
		if !slices.Equal(rows, want) {
			t.Fatalf("revisions on the alert page:\n%q\nwant\n%q", rows, want)
		}
	})
	t.Run("rules", func(t *testing.T) {
		run(t, ctx, "rules", chromedp.Navigate(f.url+"/rules"), chromedp.WaitVisible(chromedp.CSS("#rule-list")))
		txt := pageText(t, ctx)
		for _, want := range []string{"rule-1", "Catches rule-1 in tests.", "errnowatch.sensor.evasion", "test"} {
			if !strings.Contains(txt, want) {
				t.Fatalf("rules page lacks %q:\n%s", want, txt)
			}
		}
	})
}

func TestFiltersNarrowTheResults(t *testing.T) {
	f, as, ctx := signedInBrowser(t)
	run(t, ctx, "overview", chromedp.Navigate(f.url+"/"), chromedp.WaitVisible(chromedp.CSS("#alerts")))
	// Clicking a namespace in the list adds it as a filter.
	run(t, ctx, "click team-c", chromedp.Click(chromedp.CSS(`#alerts tbody td a[href*="namespace=team-c"]`)), chromedp.WaitVisible(chromedp.CSS(".chips")))
	if ns := column(t, ctx, 3); len(ns) != inNamespace(as, "team-c") || slices.ContainsFunc(ns, func(s string) bool { return s != "team-c" }) {
		t.Fatalf("filtered by team-c: %q", ns)
	}
	top := value(t, ctx, "top namespaces", chromedp.Evaluate[[]string](`[...document.querySelectorAll("#top-namespaces tbody td:first-child")].map(e => e.textContent.trim())`))
	if len(top) != 1 || !strings.HasPrefix(top[0], "team-c") {
		t.Fatalf("top namespaces filtered by team-c: %q", top)
	}
	// Then a rule, from the same list.
	rule := column(t, ctx, 2)[0]
	run(t, ctx, "click a rule", chromedp.Click(chromedp.CSS(`#alerts tbody tr:first-child td:nth-child(3) a`)), chromedp.WaitVisible(chromedp.CSS(".chips a:nth-child(2)")))
	rules, nss := column(t, ctx, 2), column(t, ctx, 3)
	if len(rules) == 0 || len(rules) >= inNamespace(as, "team-c") || slices.ContainsFunc(rules, func(s string) bool { return s != rule }) || slices.ContainsFunc(nss, func(s string) bool { return s != "team-c" }) {
		t.Fatalf("filtered by team-c and %s: %q %q", rule, nss, rules)
	}
	loc := value(t, ctx, "location", chromedp.Location())
	if u, _ := url.Parse(loc); u.Query().Get("namespace") != "team-c" || u.Query().Get("rule") != rule {
		t.Fatalf("the filters are not in the URL: %s", loc)
	}
	// The severity select applies on change.
	// (chromedp's SetValue fires the change event, as a person's choice does.)
	run(t, ctx, "severity", chromedp.SetValue(chromedp.CSS(`select[name=severity]`), "high"),
		chromedp.WaitVisible(chromedp.CSS(`.chips a[href]:nth-child(3)`)))
	for _, s := range column(t, ctx, 1) {
		if s != "high" && s != "critical" {
			t.Fatalf("severity >= high lists %q", s)
		}
	}
	// Removing the namespace chip widens again.
	run(t, ctx, "remove namespace", chromedp.Click(chromedp.CSS(`.chips a[href]:first-child`)), chromedp.WaitVisible(chromedp.CSS("#alerts")))
	if nss := column(t, ctx, 3); !slices.ContainsFunc(nss, func(s string) bool { return s != "team-c" }) {
		t.Fatalf("without the namespace filter still only team-c: %q", nss)
	}
}

func TestNewAlertAppearsLive(t *testing.T) {
	f, _, ctx := signedInBrowser(t)
	run(t, ctx, "overview", chromedp.Navigate(f.url+"/?namespace=team-a"), chromedp.WaitVisible(chromedp.CSS("#live-state")))
	fresh := testAlerts(teams, 1000, 3) // team-b, team-c, team-a
	for i := range fresh {
		fresh[i].Message = "fresh alert " + fresh[i].Namespace
	}
	f.publish(t, fresh...)
	run(t, ctx, "the new alert appears", chromedp.WaitVisible(chromedp.CSS(`#alerts tr[data-id="`+fresh[2].ID+`"]`)))
	txt := value(t, ctx, "row", chromedp.Text(chromedp.CSS(`#alerts tr[data-id="`+fresh[2].ID+`"]`)))
	if !strings.Contains(txt, "fresh alert team-a") {
		t.Fatalf("live row: %q", txt)
	}
	// Only what the page's filter matches: the other namespaces' alerts,
	// stored before it, never appear.
	if n := value(t, ctx, "rows", chromedp.Evaluate[int](`document.querySelectorAll('#alerts tr[data-id="`+fresh[0].ID+`"], #alerts tr[data-id="`+fresh[1].ID+`"]').length`)); n != 0 {
		t.Fatalf("alerts of other namespaces appeared live on team-a's page")
	}
	// A new revision replaces the row.
	next := fresh[2]
	next.Revision++
	next.LastSeen = next.LastSeen.Add(time.Second)
	next.Message = "fresh alert, revised"
	f.publish(t, next)
	run(t, ctx, "the revision replaces the row", chromedp.WaitVisible(chromedp.Search(`//tr[@data-id="`+next.ID+`"]//a[contains(., "revised")]`)))
	if n := value(t, ctx, "rows", chromedp.Evaluate[int](`document.querySelectorAll('#alerts tr[data-id="`+next.ID+`"]').length`)); n != 1 {
		t.Fatalf("%d rows for one alert after its revision", n)
	}
}

func inNamespace(as []alert.Alert, ns string) int {
	n := 0
	for _, a := range as {
		if a.Namespace == ns {
			n++
		}
	}
	return n
}
