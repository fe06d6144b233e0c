package rules

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// RuleSetter takes a new rule set into use; *Engine is one.
type RuleSetter interface {
	SetRules(*RuleSet)
}

// WatchStats are a watcher's reload counters.
type WatchStats struct {
	Successes   uint64
	Failures    uint64
	LastSuccess time.Time
	LastFailure time.Time
	// LastError is the last failed reload's errors, one per line.
	LastError string
	// Rules is the number of rules in the set in use.
	Rules int
}

// Watcher reloads rules when their files change, including the symlink
// swap by which the kubelet updates a mounted ConfigMap. A rule set that
// fails to load is rejected with a log line and a counted failure; the last
// good rules keep running.
type Watcher struct {
	paths    []string
	target   RuleSetter
	log      *zap.Logger
	debounce time.Duration

	mu     sync.Mutex
	stats  WatchStats
	digest [32]byte
	// reloaded is closed and replaced after every reload attempt, so tests
	// and callers can wait for one without sleeping.
	reloaded chan struct{}
	// watching is closed once Run has its watches in place.
	watching chan struct{}
}

// WatchOptions are the Watcher's options.
type WatchOptions struct {
	// Logger gets the watcher's log; nil discards it.
	Logger *zap.Logger
}

// NewWatcher watches paths (as given to Load) and hands every good reload
// to target. current is the rule set target runs now (from the initial
// Load), so an event that changes nothing is not a reload.
func NewWatcher(paths []string, current *RuleSet, target RuleSetter, opts WatchOptions) *Watcher {
	log := opts.Logger
	if log == nil {
		log = zap.NewNop()
	}
	w := &Watcher{paths: paths, target: target, log: log, debounce: 200 * time.Millisecond,
		reloaded: make(chan struct{}), watching: make(chan struct{})}
	if current != nil {
		w.digest = current.Digest
		w.stats.Rules = len(current.Rules)
	}
	return w
}

// Watching returns a channel closed once Run watches the paths: changes
// after that are seen.
func (w *Watcher) Watching() <-chan struct{} { return w.watching }

// Stats returns the reload counters.
func (w *Watcher) Stats() WatchStats {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stats
}

// Reloaded returns a channel that is closed after the next reload attempt.
func (w *Watcher) Reloaded() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.reloaded
}

// Reload loads the rules now (e.g. on SIGHUP) and applies them if they are
// good and differ from the set in use.
func (w *Watcher) Reload() error {
	rs, err := Load(w.paths...)
	w.mu.Lock()
	defer func() {
		close(w.reloaded)
		w.reloaded = make(chan struct{})
		w.mu.Unlock()
	}()
	if err != nil {
		w.stats.Failures++
		w.stats.LastFailure = time.Now()
		w.stats.LastError = err.Error()
		w.log.Error("rule reload rejected; keeping the previous rules",
			zap.Strings("paths", w.paths), zap.Int("previous_rules", w.stats.Rules), zap.Error(err))
		return err
	}
	w.stats.Successes++
	w.stats.LastSuccess = time.Now()
	w.stats.LastError = ""
	if rs.Digest == w.digest {
		return nil
	}
	w.digest = rs.Digest
	w.stats.Rules = len(rs.Rules)
	w.target.SetRules(rs)
	w.log.Info("rules reloaded", zap.Strings("paths", w.paths), zap.Int("rules", len(rs.Rules)))
	return nil
}

// Run watches until ctx is done. It watches directories rather than files:
// editors and the kubelet replace files (rename, symlink swap) and a watch
// on the old inode would go quiet.
func (w *Watcher) Run(ctx context.Context) error {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("create rule watcher: %w", err)
	}
	defer fw.Close()
	dirs := map[string]bool{}
	// files are the paths given as files, by their directory.
	files := map[string][]string{}
	for _, p := range w.paths {
		abs, err := filepath.Abs(p)
		if err != nil {
			return fmt.Errorf("rule path %s: %w", p, err)
		}
		st, err := os.Stat(abs)
		if err != nil {
			return fmt.Errorf("rule path: %w", err)
		}
		dir := abs
		if !st.IsDir() {
			dir = filepath.Dir(abs)
			files[dir] = append(files[dir], abs)
		} else {
			files[dir] = nil
			dirs[dir] = true
		}
		if err := fw.Add(dir); err != nil {
			return fmt.Errorf("watch rule directory %s: %w", dir, err)
		}
	}
	relevant := func(name string) bool {
		dir, base := filepath.Dir(name), filepath.Base(name)
		// The kubelet's ConfigMap update is a swap of the "..data" symlink
		// to a new "..<timestamp>" directory.
		if strings.HasPrefix(base, "..") {
			return true
		}
		if dirs[dir] {
			return isRuleFile(base) && !strings.HasPrefix(base, ".")
		}
		for _, f := range files[dir] {
			if f == name {
				return true
			}
		}
		return false
	}
	close(w.watching)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-fw.Events:
			if !ok {
				return nil
			}
			if relevant(ev.Name) {
				// Several events make up one update; reload once it settles.
				timer.Reset(w.debounce)
			}
		case err, ok := <-fw.Errors:
			if !ok {
				return nil
			}
			w.log.Warn("rule watcher error", zap.Error(err))
		case <-timer.C:
			_ = w.Reload() // logged and counted by Reload
		}
	}
}

var (
	reloadsDesc = prometheus.NewDesc("errnowatch_rules_reloads_total",
		"Rule reload attempts by result.", []string{"result"}, nil)
	lastReloadDesc = prometheus.NewDesc("errnowatch_rules_last_reload_success_timestamp_seconds",
		"Unix time of the last successful rule reload.", nil, nil)
	rulesLoadedDesc = prometheus.NewDesc("errnowatch_rules_loaded",
		"Rules in the rule set in use.", nil, nil)
)

// Describe implements prometheus.Collector; the caller registers the
// watcher.
func (w *Watcher) Describe(ch chan<- *prometheus.Desc) {
	ch <- reloadsDesc
	ch <- lastReloadDesc
	ch <- rulesLoadedDesc
}

// Collect implements prometheus.Collector.
func (w *Watcher) Collect(ch chan<- prometheus.Metric) {
	s := w.Stats()
	ch <- prometheus.MustNewConstMetric(reloadsDesc, prometheus.CounterValue, float64(s.Successes), "success")
	ch <- prometheus.MustNewConstMetric(reloadsDesc, prometheus.CounterValue, float64(s.Failures), "failure")
	var ts float64
	if !s.LastSuccess.IsZero() {
		ts = float64(s.LastSuccess.UnixNano()) / 1e9
	}
	ch <- prometheus.MustNewConstMetric(lastReloadDesc, prometheus.GaugeValue, ts)
	ch <- prometheus.MustNewConstMetric(rulesLoadedDesc, prometheus.GaugeValue, float64(s.Rules))
}

var (
	evalsDesc = prometheus.NewDesc("errnowatch_rules_evaluations_total",
		"Rule condition evaluations, by outcome (evaluated, skipped by the count floor, error).", []string{"outcome"}, nil)
	alertsDesc = prometheus.NewDesc("errnowatch_rules_alerts_total",
		"Alerts emitted by the rule engine, by kind (raised, updated).", []string{"kind"}, nil)
	keysDesc = prometheus.NewDesc("errnowatch_rules_keys",
		"Keys with a live window over all rules.", nil, nil)
	openDesc = prometheus.NewDesc("errnowatch_rules_open_alerts",
		"Alerts open (pattern seen within its cooldown).", nil, nil)
	droppedDesc = prometheus.NewDesc("errnowatch_rules_keys_dropped_total",
		"Failures not tracked because a rule reached its key limit.", nil, nil)
	dispatchDesc = prometheus.NewDesc("errnowatch_rules_dispatch_keys",
		"Entries in the (syscall, errno) to rules cache.", nil, nil)
	dispatchResetsDesc = prometheus.NewDesc("errnowatch_rules_dispatch_resets_total",
		"Times the (syscall, errno) to rules cache reached its bound and started again.", nil, nil)
)

// Describe implements prometheus.Collector for the engine's Stats.
func (e *Engine) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{evalsDesc, alertsDesc, keysDesc, openDesc, droppedDesc, dispatchDesc, dispatchResetsDesc, evalErrorsDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (e *Engine) Collect(ch chan<- prometheus.Metric) {
	s := e.Stats()
	ch <- prometheus.MustNewConstMetric(evalsDesc, prometheus.CounterValue, float64(s.Evaluations), "evaluated")
	ch <- prometheus.MustNewConstMetric(evalsDesc, prometheus.CounterValue, float64(s.Skipped), "skipped")
	ch <- prometheus.MustNewConstMetric(evalsDesc, prometheus.CounterValue, float64(s.EvalErrors), "error")
	ch <- prometheus.MustNewConstMetric(alertsDesc, prometheus.CounterValue, float64(s.Raised), "raised")
	ch <- prometheus.MustNewConstMetric(alertsDesc, prometheus.CounterValue, float64(s.Updated), "updated")
	ch <- prometheus.MustNewConstMetric(keysDesc, prometheus.GaugeValue, float64(s.Keys))
	ch <- prometheus.MustNewConstMetric(openDesc, prometheus.GaugeValue, float64(s.OpenAlerts))
	ch <- prometheus.MustNewConstMetric(droppedDesc, prometheus.CounterValue, float64(s.KeysDropped))
	ch <- prometheus.MustNewConstMetric(dispatchDesc, prometheus.GaugeValue, float64(s.DispatchKeys))
	ch <- prometheus.MustNewConstMetric(dispatchResetsDesc, prometheus.CounterValue, float64(s.DispatchResets))
	e.collectEvalErrors(ch)
}
