package rules

import (
	"fmt"
	"testing"

	"github.com/errnowatch/errnowatch/pkg/enrich"
	"github.com/errnowatch/errnowatch/pkg/sensor"
)

// BenchmarkRecordsRules is the rate at which the engine takes in sampled
// records with arguments and evaluates argument-aware rules over them: each
// interval brings 1000 records from 100 pods (10 paths each), and two
// records rules read every pod's window.
//
//	go test ./pkg/rules -run '^$' -bench RecordsRules
func BenchmarkRecordsRules(b *testing.B) {
	e := newEngine(b, `rules:
  - id: shadow
    severity: high
    match: {syscalls: [openat], errnos: [EACCES]}
    condition: records.exists(r, glob(r.path, "/etc/*shadow"))
  - id: tokens
    severity: high
    window: 5s
    match: {syscalls: [openat], errnos: [EACCES]}
    condition: records.filter(r, glob(r.path, "/var/run/secrets/**")).size() >= 3
`)
	const pods, perPod = 100, 10
	srcs := make([]src, pods)
	for i := range srcs {
		srcs[i] = src{pod("ns", fmt.Sprintf("p%d", i), "app", uint64(100+i), nil), uint64(100 + i)}
	}
	batch := func(n int) *enrich.Batch {
		bb := newBatch(b, n)
		for _, s := range srcs {
			for j := 0; j < perPod; j++ {
				p := fmt.Sprintf("/var/lib/app/data-%d.db", j)
				bb.recordWith(s, "app", "openat", "EACCES", func(r *sensor.Record) { r.Path = p })
			}
		}
		return bb.get()
	}
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		n++
		e.Process(batch(n))
	}
	b.ReportMetric(float64(n*pods*perPod)/b.Elapsed().Seconds(), "records/s")
}
