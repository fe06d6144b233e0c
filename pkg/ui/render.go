package ui

import (
	"bytes"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/errnowatch/errnowatch/pkg/alert"
	"github.com/errnowatch/errnowatch/pkg/store"
)

// page is what every template gets.
type page struct {
	Title string
	// Nav is the active tab: overview, timeline, rules.
	Nav  string
	User string
	CSRF string // the sign-out form's token
	F    filters
	Path string // the page's path, for filter links
	Data any
	// Notes are shown above the content (a namespace list cut short, a
	// filter the charts cannot apply).
	Notes []string
}

var funcs = template.FuncMap{
	"maxHistory":        func() int { return store.MaxHistory },
	"secs":              func(d time.Duration) string { return d.Round(time.Second).String() },
	"maxHistoryMessage": func() int { return store.MaxHistoryMessage },
	"sevClass":          func(s alert.Severity) string { return "sev-" + s.String() },
	"utc":               func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05") + " UTC" },
	"ago": func(t time.Time) string {
		d := time.Since(t).Round(time.Second)
		switch {
		case t.IsZero():
			return "never"
		case d < time.Minute:
			return "just now"
		case d < time.Hour:
			return fmt.Sprintf("%dm ago", int(d.Minutes()))
		case d < 48*time.Hour:
			return fmt.Sprintf("%dh ago", int(d.Hours()))
		}
		return fmt.Sprintf("%dd ago", int(d.Hours()/24))
	},
	"short": compact,
	"ranges": func() []string {
		r := make([]string, len(ranges))
		for i, x := range ranges {
			r[i] = x.Name
		}
		return r
	},
	"sevs": func() []string {
		var out []string
		for s := alert.SeverityInfo; s <= alert.SeverityCritical; s++ {
			out = append(out, s.String())
		}
		return out
	},
	"join":   strings.Join,
	"mul100": func(v float64) float64 { return v * 100 },
	"rowctx": func(p page, r AlertRow) rowCtx { return rowCtx{P: p, R: r} },
	"f1":     func(v float64) string { return fmt.Sprintf("%.1f", v) },
}

// parseTemplates makes one template set per page, each with the layout.
func parseTemplates() (map[string]*template.Template, error) {
	out := map[string]*template.Template{}
	for _, name := range []string{"login", "error", "overview", "timeline", "alert", "rules"} {
		t, err := template.New(name).Funcs(funcs).ParseFS(assets, "assets/templates/layout.html", "assets/templates/chart.html", "assets/templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("ui template %s: %w", name, err)
		}
		out[name] = t
	}
	return out, nil
}

// render writes a page, or a plain error when the template fails (before
// anything was sent: pages render to a buffer first).
func (s *Server) render(w http.ResponseWriter, r *http.Request, code int, name string, p page) {
	if sess := sessionFrom(r.Context()); sess != nil {
		p.User = sess.id.Username
		p.CSRF = s.csrfFor(sess)
	}
	var buf bytes.Buffer
	if err := s.pages[name].ExecuteTemplate(&buf, "layout", p); err != nil {
		s.log.Error("render ui page", zap.String("page", name), zap.Error(err))
		http.Error(w, "the page failed to render; see the collector's log", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

func (s *Server) errorPage(w http.ResponseWriter, r *http.Request, code int, msg string) {
	s.render(w, r, code, "error", page{Title: http.StatusText(code), Data: msg})
}

// rowCtx is what an alert row's template gets: the page (for filter
// links) and the row.
type rowCtx struct {
	P page
	R AlertRow
}
