package collector_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/errnowatch/errnowatch/pkg/collector"
	"github.com/errnowatch/errnowatch/pkg/collector/client"
	"github.com/errnowatch/errnowatch/pkg/collector/collectortest"
	"github.com/errnowatch/errnowatch/pkg/store/storetest"
)

// errnowatch_collector_alerts_total counts what a publish stored, and a
// resent batch (an agent that lost the acknowledgement) as duplicates;
// both series exist before the first alert.
func TestIngestCountsStoredAndDuplicates(t *testing.T) {
	reg := prometheus.NewRegistry()
	col := collectortest.Start(t, collector.Config{Registerer: reg}, nil, true, "")
	stored := func() (float64, float64) {
		return counter(t, reg, "errnowatch_collector_alerts_total", map[string]string{"result": "stored"}),
			counter(t, reg, "errnowatch_collector_alerts_total", map[string]string{"result": "duplicate"})
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	series := 0
	for _, mf := range mfs {
		if mf.GetName() == "errnowatch_collector_alerts_total" {
			series = len(mf.GetMetric())
		}
	}
	if s, d := stored(); series != 2 || s != 0 || d != 0 {
		t.Fatalf("before any publish: %d series, stored %v duplicate %v; want both series at 0", series, s, d)
	}
	c := dial(t, client.Options{Address: col.Socket})
	batch := storetest.Alerts(storetest.DefaultShape, base, 0, 7)
	if _, err := publish(t, c, batch); err != nil {
		t.Fatal(err)
	}
	if _, err := publish(t, c, batch[:3], storetest.Alerts(storetest.DefaultShape, base, 7, 2)); err != nil {
		t.Fatal(err)
	}
	if s, d := stored(); s != 9 || d != 3 {
		t.Fatalf("stored %v duplicate %v, want 9 and 3", s, d)
	}
}
