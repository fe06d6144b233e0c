package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/errnowatch/errnowatch/pkg/store/sqlite"
)

func TestSinksConfigFlag(t *testing.T) {
	dir := t.TempDir()
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "alerts.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	write := func(doc string) string {
		p := filepath.Join(dir, "sinks.yaml")
		if err := os.WriteFile(p, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	_, err = startSinks(context.Background(), write("sinks: [{name: a, type: syslog, syslog: {address: nope}}]"),
		st, prometheus.NewRegistry(), zap.NewNop())
	if err == nil || !strings.Contains(err.Error(), "--sinks-config") || !strings.Contains(err.Error(), `sinks[0] "a".syslog.address`) {
		t.Fatalf("err = %v, want one naming the flag and the field", err)
	}
	reg := prometheus.NewRegistry()
	stop, err := startSinks(context.Background(), write("sinks: [{name: a, type: otlp, otlp: {endpoint: \"127.0.0.1:1\", insecure: true}}]"),
		st, reg, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	stop()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, mf := range mfs {
		names = append(names, mf.GetName())
	}
	if !strings.Contains(strings.Join(names, " "), "errnowatch_sink_lag_sequences") {
		t.Errorf("metrics %v lack the sinks'", names)
	}
}
