package sink

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap/zaptest"

	"github.com/errnowatch/errnowatch/pkg/alert"
	"github.com/errnowatch/errnowatch/pkg/store"
	"github.com/errnowatch/errnowatch/pkg/store/sqlite"
	"github.com/errnowatch/errnowatch/pkg/store/storetest"
)

var base = time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC)

// openStore opens a real SQLite store in a temporary directory.
func openStore(t testing.TB) *sqlite.Store {
	t.Helper()
	return openStoreAt(t, filepath.Join(t.TempDir(), "alerts.db"))
}

func openStoreAt(t testing.TB, path string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), path, sqlite.Options{SkipIntegrityCheck: true})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func insert(t testing.TB, s store.Store, alerts []alert.Alert) {
	t.Helper()
	if _, err := s.Insert(context.Background(), storetest.MustBatch(t, alerts)); err != nil {
		t.Fatalf("insert %d alerts: %v", len(alerts), err)
	}
}

func gen(start, n int) []alert.Alert { return storetest.Alerts(storetest.DefaultShape, base, start, n) }

// running is a Service started by start; stop ends it and waits.
type running struct {
	svc    *Service
	m      *Metrics
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

func (r *running) stop() {
	r.once.Do(func() {
		r.cancel()
		<-r.done
	})
}

func parse(t testing.TB, yaml string) *Config {
	t.Helper()
	cfg, err := ParseConfig(strings.NewReader(yaml))
	if err != nil {
		t.Fatalf("parse config: %v\n%s", err, yaml)
	}
	return cfg
}

// start runs the sinks of yaml on st until the test ends (or stop).
func start(t testing.TB, st Store, yaml string, opts Options) *running {
	t.Helper()
	reg := prometheus.NewRegistry()
	if opts.Logger == nil {
		opts.Logger = zaptest.NewLogger(t)
	}
	opts.Metrics = NewMetrics(reg)
	if opts.PollInterval == 0 {
		opts.PollInterval = 20 * time.Millisecond
	}
	svc, err := New(parse(t, yaml), st, opts)
	if err != nil {
		t.Fatalf("new sinks: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{svc: svc, m: opts.Metrics, reg: reg, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		_ = svc.Run(ctx)
	}()
	t.Cleanup(r.stop)
	return r
}

func (r *running) counter(c *prometheus.CounterVec, labels ...string) float64 {
	return testutil.ToFloat64(c.WithLabelValues(labels...))
}

// eventually polls cond every 20ms until it holds or d passes.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func testutilGauge(g *prometheus.GaugeVec, labels ...string) float64 {
	return testutil.ToFloat64(g.WithLabelValues(labels...))
}

func protojsonRecord(s string, r *Record) error { return json.Unmarshal([]byte(s), r) }
