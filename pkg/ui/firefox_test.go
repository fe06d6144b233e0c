package ui_test

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/errnowatch/errnowatch/pkg/ui"
)

// TestFirefox opens every page in Debian's Firefox ESR, headless, as in
// Chromium: sign in, each page's layout in a screenshot (checkShot, the
// same check as the Chromium layout tests), and a new alert appearing live
// through the page's event stream. Firefox speaks WebDriver BiDi, the W3C
// protocol, on its own (--remote-debugging-port), so no geckodriver is
// needed; the Go WebDriver clients served here (go-rod, chromedp,
// playwright-go) speak CDP, which Firefox no longer has, or need
// Playwright's own browser builds, so bidiSession below is a minimal
// client of the few BiDi commands the test uses.
func TestFirefox(t *testing.T) {
	f := newFixture(t, nil, ui.Config{RequestsPerSecond: 1000})
	as := testAlerts(teams, 0, 90)
	f.publish(t, as...)
	b := newFirefox(t)

	b.navigate(t, f.url+"/login")
	b.waitFor(t, "#token")
	b.eval(t, fmt.Sprintf(`document.querySelector("#token").value = %q; document.querySelector("#login button").click(); true`, testLocalKey))
	b.waitFor(t, "header nav")

	for _, p := range []struct {
		name, path, ready string
		regions           []string
	}{
		{"overview", "/", "#alerts", []string{"header.top", "form.filters", "#chart-by-severity", "#chart-by-rule",
			"#top-namespaces", "#top-pods", "#nodes", "#alerts"}},
		{"timeline", "/timeline?namespace=team-a", "#alerts", []string{"header.top", "form.filters", "#chart-alerts",
			"#chart-failures", "#pods", "#rules", "#alerts"}},
		{"alert", "/alerts/" + as[4].ID, "#ocsf", []string{"header.top", "#alert-head", "#counts", "#processes", "#targets", "#revisions", "#ocsf"}},
		{"rules", "/rules", "#rule-list", []string{"header.top", "form.filters", "#rule-list"}},
	} {
		b.navigate(t, f.url+p.path)
		b.waitFor(t, p.ready)
		var l layout
		if err := json.Unmarshal([]byte(b.eval(t, "JSON.stringify("+layoutJS(p.regions)+")")), &l); err != nil {
			t.Fatalf("firefox %s: measure: %v", p.name, err)
		}
		checkShot(t, "firefox-"+p.name, l, b.screenshot(t))
	}

	// Live: the overview of team-a gets a new team-a alert from its stream.
	b.navigate(t, f.url+"/?namespace=team-a")
	b.waitFor(t, "#live-state")
	fresh := testAlerts(teams, 1000, 3) // team-b, team-c, team-a
	for i := range fresh {
		fresh[i].Message = "fresh alert " + fresh[i].Namespace
	}
	f.publish(t, fresh...)
	row := `#alerts tr[data-id="` + fresh[2].ID + `"]`
	b.waitFor(t, row)
	if txt := b.eval(t, `document.querySelector('`+row+`').textContent`); !strings.Contains(txt, "fresh alert team-a") {
		t.Fatalf("firefox live row: %q", txt)
	}
}

// bidiSession is one WebDriver BiDi session with a headless Firefox and
// its top-level browsing context.
type bidiSession struct {
	conn    *websocket.Conn
	mu      sync.Mutex
	next    int
	context string
}

var bidiListening = regexp.MustCompile(`WebDriver BiDi listening on (ws://\S+)`)

// newFirefox starts firefox-esr headless in a fresh profile, 1440×900, and
// opens a BiDi session that accepts the test PKI's self-signed certificate.
func newFirefox(t *testing.T) *bidiSession {
	t.Helper()
	path, err := exec.LookPath("firefox-esr")
	if err != nil {
		t.Fatalf("no firefox-esr: install it with `hack/deps.sh firefox-esr` (make deps does): %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, path, "--headless", "--no-remote", "--profile", t.TempDir(),
		"--window-size=1440,900", "--remote-debugging-port", "0", "about:blank")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start firefox: %v", err)
	}
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })
	found, said := make(chan string, 1), make(chan string, 1)
	go func() {
		var seen []string
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := bidiListening.FindStringSubmatch(sc.Text()); m != nil {
				found <- m[1]
				break
			}
			seen = append(seen, sc.Text())
		}
		if len(found) == 0 {
			said <- strings.Join(seen, "\n")
		}
		for sc.Scan() { // keep draining, or Firefox blocks on a full pipe
		}
	}()
	var addr string
	select {
	case addr = <-found:
	case out := <-said:
		t.Fatalf("firefox ended without WebDriver BiDi listening:\n%s", out)
	case <-time.After(60 * time.Second):
		t.Fatal("firefox did not say where WebDriver BiDi listens within 60 s")
	}
	conn, _, err := websocket.DefaultDialer.Dial(addr+"/session", nil)
	if err != nil {
		t.Fatalf("connect to firefox's BiDi endpoint %s: %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	s := &bidiSession{conn: conn}
	if _, err := s.call("session.new", map[string]any{
		"capabilities": map[string]any{"alwaysMatch": map[string]any{"acceptInsecureCerts": true}},
	}); err != nil {
		t.Fatalf("firefox session.new: %v", err)
	}
	tree, err := s.call("browsingContext.getTree", map[string]any{})
	if err != nil {
		t.Fatalf("firefox browsingContext.getTree: %v", err)
	}
	var r struct {
		Contexts []struct {
			Context string `json:"context"`
		} `json:"contexts"`
	}
	if err := json.Unmarshal(tree, &r); err != nil || len(r.Contexts) == 0 {
		t.Fatalf("firefox browsing contexts %s: %v", tree, err)
	}
	s.context = r.Contexts[0].Context
	if _, err := s.call("browsingContext.setViewport", map[string]any{
		"context": s.context, "viewport": map[string]any{"width": 1440, "height": 900},
	}); err != nil {
		t.Fatalf("firefox viewport: %v", err)
	}
	return s
}

// call sends one command and returns its result, skipping events.
func (s *bidiSession) call(method string, params any) (json.RawMessage, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.next++
	id := s.next
	if err := s.conn.SetWriteDeadline(time.Now().Add(30 * time.Second)); err != nil {
		return nil, err
	}
	if err := s.conn.WriteJSON(map[string]any{"id": id, "method": method, "params": params}); err != nil {
		return nil, fmt.Errorf("send %s: %w", method, err)
	}
	if err := s.conn.SetReadDeadline(time.Now().Add(60 * time.Second)); err != nil {
		return nil, err
	}
	for {
		var m struct {
			Type    string          `json:"type"`
			ID      int             `json:"id"`
			Result  json.RawMessage `json:"result"`
			Error   string          `json:"error"`
			Message string          `json:"message"`
		}
		if err := s.conn.ReadJSON(&m); err != nil {
			return nil, fmt.Errorf("read the answer to %s: %w", method, err)
		}
		if m.Type == "event" || m.ID != id {
			continue
		}
		if m.Type == "error" {
			return nil, fmt.Errorf("%s: %s: %s", method, m.Error, m.Message)
		}
		return m.Result, nil
	}
}

func (s *bidiSession) navigate(t *testing.T, url string) {
	t.Helper()
	if _, err := s.call("browsingContext.navigate", map[string]any{"context": s.context, "url": url, "wait": "complete"}); err != nil {
		t.Fatalf("firefox: open %s: %v", url, err)
	}
}

// evaluate runs expr in the page and returns its value as a string
// (numbers and booleans in their JSON form).
func (s *bidiSession) evaluate(expr string) (string, error) {
	res, err := s.call("script.evaluate", map[string]any{
		"expression": expr, "target": map[string]any{"context": s.context}, "awaitPromise": true,
	})
	if err != nil {
		return "", err
	}
	var r struct {
		Type   string `json:"type"`
		Result struct {
			Type  string          `json:"type"`
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		ExceptionDetails struct {
			Text string `json:"text"`
		} `json:"exceptionDetails"`
	}
	if err := json.Unmarshal(res, &r); err != nil {
		return "", fmt.Errorf("decode the result of %.80q: %w", expr, err)
	}
	if r.Type == "exception" {
		return "", fmt.Errorf("%.80q threw: %s", expr, r.ExceptionDetails.Text)
	}
	var str string
	if r.Result.Type == "string" && json.Unmarshal(r.Result.Value, &str) == nil {
		return str, nil
	}
	return string(r.Result.Value), nil
}

func (s *bidiSession) eval(t *testing.T, expr string) string {
	t.Helper()
	v, err := s.evaluate(expr)
	if err != nil {
		t.Fatalf("firefox: %v\npage:\n%.1500s", err, s.text())
	}
	return v
}

func (s *bidiSession) text() string {
	v, _ := s.evaluate(`document.body ? document.body.innerText : ""`)
	return v
}

// waitFor waits up to 30 s until sel is on the page with a size, as
// chromedp's WaitVisible does; a page that is still loading is asked again.
func (s *bidiSession) waitFor(t *testing.T, sel string) {
	t.Helper()
	js := fmt.Sprintf(`(() => { const e = document.querySelector(%q); if (!e) return false; const r = e.getBoundingClientRect(); return r.width > 0 && r.height > 0; })()`, sel)
	deadline := time.Now().Add(30 * time.Second)
	for {
		v, err := s.evaluate(js)
		if err == nil && v == "true" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("firefox: %s did not appear (%v)\npage:\n%.1500s", sel, err, s.text())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// screenshot is the whole page as PNG.
func (s *bidiSession) screenshot(t *testing.T) []byte {
	t.Helper()
	res, err := s.call("browsingContext.captureScreenshot", map[string]any{"context": s.context, "origin": "document"})
	if err != nil {
		t.Fatalf("firefox screenshot: %v", err)
	}
	var r struct {
		Data string `json:"data"`
	}
	if err := json.Unmarshal(res, &r); err != nil {
		t.Fatal(err)
	}
	png, err := base64.StdEncoding.DecodeString(r.Data)
	if err != nil {
		t.Fatalf("firefox screenshot: %v", err)
	}
	return png
}
