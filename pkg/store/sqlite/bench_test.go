package sqlite

import (
	"context"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/errnowatch/errnowatch/pkg/store/storetest"
)

// BenchmarkInsert measures the store alone: sequential durable 500-alert
// batches (one commit and fsync each).
func BenchmarkInsert(b *testing.B) {
	s := open(b, filepath.Join(b.TempDir(), "alerts.db"))
	defer s.Close()
	const size = 500
	base := time.Now()
	b.ResetTimer()
	cpu0 := cpuTime()
	start := time.Now()
	for i := range b.N {
		// The batch is made in the loop: NewBatch validates and encodes,
		// which Insert did before it took a store.Batch, so figures compare
		// across that change.
		if _, err := s.Insert(context.Background(), storetest.MustBatch(b, storetest.Alerts(storetest.DefaultShape, base, i*size, size))); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*size)/time.Since(start).Seconds(), "alerts/s")
	// CPU per alert stays meaningful on a shared, busy machine where
	// wall-clock rates do not.
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N*size), "cpu-us/alert")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
