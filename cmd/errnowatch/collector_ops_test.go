package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/errnowatch/errnowatch/pkg/store/sqlite"
)

// TestReadyzReportsAStoreThatIsDown serves /readyz over a real SQLite store:
// ready while it answers, 503 once it is closed, without the store's error
// text in the answer.
func TestReadyzReportsAStoreThatIsDown(t *testing.T) {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "alerts.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	h := readyHandler(st, zap.NewNop())
	probe := func() (int, string) {
		rec := httptest.NewRecorder()
		h(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		return rec.Code, rec.Body.String()
	}
	if code, body := probe(); code != http.StatusOK || body != "ok\n" {
		t.Fatalf("/readyz with the store up = %d %q, want 200 \"ok\\n\"", code, body)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	code, body := probe()
	if code != http.StatusServiceUnavailable || !strings.HasPrefix(body, "store is down") || strings.Contains(body, "closed") {
		t.Fatalf("/readyz with the store closed = %d %q, want 503 \"store is down...\" without the store's error", code, body)
	}
}

// TestStoreMetricsOfSQLite: a SQLite store's health counters are on
// /metrics, each at zero on a fresh store.
func TestStoreMetricsOfSQLite(t *testing.T) {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "alerts.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	reg := prometheus.NewRegistry()
	if h := registerStoreMetrics(reg, st); h == nil {
		t.Fatal("registerStoreMetrics returned no Health for SQLite; /readyz would not check the store")
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			got[mf.GetName()] = m.GetCounter().GetValue()
		}
	}
	for _, name := range []string{"errnowatch_store_undecodable_rows_total", "errnowatch_store_checkpoint_errors_total"} {
		v, ok := got[name]
		if !ok {
			t.Errorf("%s is not registered; got %v", name, got)
		} else if v != 0 {
			t.Errorf("%s = %v on a fresh store, want 0", name, v)
		}
	}
}
