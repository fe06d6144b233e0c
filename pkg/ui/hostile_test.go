package ui_test

import (
	"bufio"
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/errnowatch/errnowatch/pkg/ui"
)

func refused(t *testing.T, f *fixture, reason string) float64 {
	t.Helper()
	mfs, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "errnowatch_ui_refused_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == reason {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no errnowatch_ui_refused_total{reason=%q}", reason)
	return 0
}

// TestHostileInput: what a hostile page or person can send is refused
// with a clear answer and counted, and nothing is served without the
// headers that keep the page from being framed or injected into.
func TestHostileInput(t *testing.T) {
	f := newFixture(t, nil, ui.Config{MaxStreamsPerIdentity: 2, RequestsPerSecond: 1000})
	f.publish(t, testAlerts([]string{"team-a", "team-b"}, 0, 40)...)
	c := f.httpClient(t)

	t.Run("no session gets the sign-in page", func(t *testing.T) {
		for _, p := range []string{"/", "/timeline?namespace=team-a", "/rules", "/alerts/01ABC"} {
			body := f.get(t, f.httpClient(t), p, http.StatusUnauthorized)
			if !strings.Contains(body, `action="/login"`) || strings.Contains(body, "team-a-pod") {
				t.Fatalf("%s without a session:\n%s", p, body)
			}
		}
	})
	t.Run("forged cookies", func(t *testing.T) {
		before := refused(t, f, "unauthenticated")
		for _, v := range []string{"forged", strings.Repeat("A", 3900), testLocalKey + "x", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9."} {
			req, _ := http.NewRequest("GET", f.url+"/", nil)
			req.AddCookie(&http.Cookie{Name: "__Host-errnowatch-session", Value: v})
			resp, err := f.httpClient(t).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("forged cookie %.20q: %s", v, resp.Status)
			}
		}
		if got := refused(t, f, "unauthenticated") - before; got < 4 {
			t.Fatalf("forged cookies counted %v times, want 4", got)
		}
	})
	t.Run("cross-site sign-in", func(t *testing.T) {
		before := refused(t, f, "csrf")
		post := func(form url.Values, cookie, origin string) int {
			req, _ := http.NewRequest("POST", f.url+"/login", strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if cookie != "" {
				req.AddCookie(&http.Cookie{Name: "__Host-errnowatch-csrf", Value: cookie})
			}
			if origin != "" {
				req.Header.Set("Origin", origin)
			}
			resp, err := f.httpClient(t).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}
		// No token at all, a token without its cookie, a mismatched one,
		// and a matching pair posted from another origin.
		for i, code := range []int{
			post(url.Values{"token": {testLocalKey}}, "", ""),
			post(url.Values{"token": {testLocalKey}, "csrf": {"abc"}}, "", ""),
			post(url.Values{"token": {testLocalKey}, "csrf": {"abc"}}, "abd", ""),
			post(url.Values{"token": {testLocalKey}, "csrf": {"abc"}}, "abc", "https://evil.example"),
		} {
			if code != http.StatusForbidden {
				t.Fatalf("cross-site sign-in %d: %d, want 403", i, code)
			}
		}
		if got := refused(t, f, "csrf") - before; got != 4 {
			t.Fatalf("csrf refusals counted %v, want 4", got)
		}
	})
	f.signIn(t, c, testLocalKey)
	t.Run("session cookie", func(t *testing.T) {
		u, _ := url.Parse(f.url)
		cs := c.Jar.Cookies(u)
		if len(cs) != 1 || cs[0].Name != "__Host-errnowatch-session" {
			t.Fatalf("cookies after sign-in: %v", cs)
		}
	})
	t.Run("sign-out needs the page's token", func(t *testing.T) {
		before := refused(t, f, "csrf")
		req, _ := http.NewRequest("POST", f.url+"/logout", strings.NewReader("csrf=nope"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden || refused(t, f, "csrf") != before+1 {
			t.Fatalf("sign-out without the token: %s", resp.Status)
		}
		f.get(t, c, "/", http.StatusOK)
	})
	t.Run("malformed parameters", func(t *testing.T) {
		before := refused(t, f, "bad_input")
		bad := []string{
			"/?namespace=../etc", "/?namespace=" + strings.Repeat("a", 64), "/?pod=%3Cscript%3E",
			"/?severity=bogus", "/?namespace=a&namespace=b", "/?from=2026-01-01T00:00:00Z",
			"/?from=yesterday&to=today", "/?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z",
			"/?range=1y", "/?limit=100000", "/?limit=-1", "/?before=%27%20OR%201%3D1%20--", "/?rule=%00",
			"/?workload=Deployment", "/timeline?node=-x-", "/alerts/..%2F..%2Fetc",
		}
		for _, p := range bad {
			body := f.get(t, c, p, http.StatusBadRequest)
			if !strings.Contains(body, `id="error"`) {
				t.Fatalf("%s: no error message:\n%s", p, body)
			}
		}
		if got := refused(t, f, "bad_input") - before; got != float64(len(bad)) {
			t.Fatalf("bad input counted %v times, want %d", got, len(bad))
		}
		resp, err := c.Get(f.url + "/?rule=" + strings.Repeat("x", 3000))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestURITooLong {
			t.Fatalf("oversized query: %s", resp.Status)
		}
		req, _ := http.NewRequest("POST", f.url+"/login", strings.NewReader("token="+strings.Repeat("x", 64<<10)))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err = c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("oversized body: %s", resp.Status)
		}
	})
	t.Run("security headers", func(t *testing.T) {
		for _, p := range []string{"/", "/login", "/static/app.js", "/nope"} {
			resp, err := c.Get(f.url + p)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			csp := resp.Header.Get("Content-Security-Policy")
			if !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") || !strings.Contains(csp, "frame-ancestors 'none'") ||
				resp.Header.Get("X-Frame-Options") != "DENY" || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
				t.Fatalf("%s headers: %v", p, resp.Header)
			}
		}
	})
	t.Run("too many live streams", func(t *testing.T) {
		before := refused(t, f, "streams")
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		open := func() *http.Response {
			req, _ := http.NewRequestWithContext(ctx, "GET", f.url+"/events", nil)
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			return resp
		}
		for range 2 {
			resp := open()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("live stream: %s", resp.Status)
			}
			defer resp.Body.Close()
			// The stream is open once its first line arrives.
			if _, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil {
				t.Fatal(err)
			}
		}
		resp := open()
		resp.Body.Close()
		if resp.StatusCode != http.StatusTooManyRequests || refused(t, f, "streams") != before+1 {
			t.Fatalf("third live stream: %s", resp.Status)
		}
		cancel()
		// Closed streams are given back.
		deadline := time.Now().Add(10 * time.Second)
		for {
			mfs, _ := f.reg.Gather()
			var n float64 = -1
			for _, mf := range mfs {
				if mf.GetName() == "errnowatch_ui_live_streams" {
					n = mf.GetMetric()[0].GetGauge().GetValue()
				}
			}
			if n == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("live streams still open after their clients left: %v", n)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	t.Run("sign-out with the page's token ends the session", func(t *testing.T) {
		m := csrfField.FindStringSubmatch(f.get(t, c, "/", http.StatusOK))
		if m == nil {
			t.Fatal("no sign-out token on the page")
		}
		req, _ := http.NewRequest("POST", f.url+"/logout", strings.NewReader(url.Values{"csrf": {m[1]}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", f.url)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login" {
			t.Fatalf("sign-out: %s", resp.Status)
		}
		f.get(t, c, "/", http.StatusUnauthorized)
	})
}
