package rules

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// runWatcher starts w and stops it when the test ends.
func runWatcher(t *testing.T, w *Watcher) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("watcher: %v", err)
		}
	})
	select {
	case <-w.Watching():
	case err := <-done:
		t.Fatalf("watcher stopped: %v", err)
	}
}

// change makes a change and waits until the watcher has reloaded after it.
// The deadline only keeps a broken watcher from hanging the test.
func change(t *testing.T, w *Watcher, fn func()) {
	t.Helper()
	next := w.Reloaded()
	fn()
	select {
	case <-next:
	case <-time.After(30 * time.Second):
		t.Fatal("no reload after the change")
	}
}

// fires reports the rules that fire on one openat failure.
func fires(t *testing.T, e *Engine, n int) []string {
	t.Helper()
	web := src{pod("default", "web", "app", 1, nil), 1}
	ids := ruleIDs(e.Process(newBatch(t, n).count(web, "openat", "EACCES", 1).get()))
	slices.Sort(ids)
	return ids
}

func TestReloadConfigMapGoodBadGood(t *testing.T) {
	dir := t.TempDir()
	swap := configMap(t, dir, map[string]string{"rules.yaml": "rules:\n" + rule("v1", "count >= 1")})
	rs, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	e := NewEngine(rs, Config{})
	core, logs := observer.New(zap.InfoLevel)
	w := NewWatcher([]string{dir}, rs, e, WatchOptions{Logger: zap.New(core)})
	w.debounce = 50 * time.Millisecond
	runWatcher(t, w)

	// A bad update is rejected; v1 keeps running.
	change(t, w, func() {
		swap(map[string]string{"rules.yaml": "rules:\n  - id: v2\n    severity: bogus\n"})
	})
	s := w.Stats()
	if s.Failures == 0 || s.Successes != 0 || !strings.Contains(s.LastError, `rules.yaml:3:15: rule v2: unknown severity "bogus"`) {
		t.Errorf("after bad update: %+v", s)
	}
	if got := fires(t, e, 1); !slices.Equal(got, []string{"v1"}) {
		t.Errorf("after bad update fired %v, want v1", got)
	}
	if n := logs.FilterMessage("rule reload rejected; keeping the previous rules").Len(); n == 0 {
		t.Error("no log line for the rejected reload")
	}

	// A good one replaces v1, between intervals.
	change(t, w, func() {
		swap(map[string]string{"rules.yaml": "rules:\n" + rule("v2", "count >= 1") + rule("v3", "count >= 1")})
	})
	s = w.Stats()
	if s.Successes == 0 || s.LastSuccess.IsZero() || s.LastError != "" || s.Rules != 2 {
		t.Errorf("after good update: %+v", s)
	}
	if got := fires(t, e, 2); !slices.Equal(got, []string{"v2", "v3"}) {
		t.Errorf("after good update fired %v, want v2 and v3", got)
	}

	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(w, e)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	metrics := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			name := mf.GetName()
			for _, l := range m.GetLabel() {
				name += "/" + l.GetValue()
			}
			metrics[name] = m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
	}
	if metrics["errnowatch_rules_loaded"] != 2 || metrics["errnowatch_rules_reloads_total/failure"] == 0 ||
		metrics["errnowatch_rules_reloads_total/success"] == 0 || metrics["errnowatch_rules_alerts_total/raised"] != 3 {
		t.Errorf("metrics %v", metrics)
	}
}

func TestReloadFileReplacedByRename(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "rules.yaml")
	writeFile(t, path, "rules:\n"+rule("v1", "count >= 1"))
	writeFile(t, filepath.Join(dir, "other.yaml"), "not: [rules")
	rs, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	e := NewEngine(rs, Config{})
	w := NewWatcher([]string{path}, rs, e, WatchOptions{})
	w.debounce = 50 * time.Millisecond
	runWatcher(t, w)

	// Editors save by writing a temporary file and renaming it over.
	change(t, w, func() {
		tmp := filepath.Join(dir, ".rules.yaml.swp")
		writeFile(t, tmp, "rules:\n"+rule("v2", "count >= 1"))
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	})
	if got := fires(t, e, 1); !slices.Equal(got, []string{"v2"}) {
		t.Errorf("fired %v, want v2", got)
	}
	if s := w.Stats(); s.Failures != 0 {
		t.Errorf("the unrelated bad file was loaded: %+v", s)
	}
}
