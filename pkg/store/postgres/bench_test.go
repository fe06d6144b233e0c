package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"

	"github.com/errnowatch/errnowatch/internal/pgtest"
	"github.com/errnowatch/errnowatch/pkg/store"
	"github.com/errnowatch/errnowatch/pkg/store/storetest"
)

// durable is a server with fsync on, shared by the benchmarks of one
// process (TestMain stops it): ingest figures without fsync would not hold
// in a cluster.
var (
	durableSrv *pgtest.Server
	durable    = sync.OnceValues(func() (*pgtest.Server, error) {
		s, err := pgtest.Start(pgtest.Options{Durable: true})
		durableSrv = s
		return s, err
	})
)

func durableDB(b *testing.B) string {
	s, err := durable()
	if err != nil {
		b.Fatal(err)
	}
	dsn, err := s.NewDB(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	return dsn
}

// BenchmarkIngest measures durable ingest into one database from 1 and 3
// replicas (separate pools, as separate pods would have), two writers per
// replica, 500-alert batches.
func BenchmarkIngest(b *testing.B) {
	for _, replicas := range []int{1, 3} {
		b.Run("replicas="+strconv.Itoa(replicas), func(b *testing.B) {
			dsn := durableDB(b)
			var reps []*Store
			for range replicas {
				s := open(b, dsn)
				defer s.Close()
				reps = append(reps, s)
			}
			const size = 500
			base := time.Now()
			var next atomic.Int64
			b.ResetTimer()
			start := time.Now()
			var g errgroup.Group
			for w := range replicas * 2 {
				g.Go(func() error {
					for {
						i := next.Add(1) - 1
						if i >= int64(b.N) {
							return nil
						}
						// The batch is made in the loop: NewBatch validates
						// and encodes, which Insert did before it took a
						// store.Batch, so figures compare across that change.
						batch, err := store.NewBatch(storetest.Alerts(storetest.DefaultShape, base, int(i)*size, size))
						if err != nil {
							return err
						}
						if _, err := reps[w%replicas].Insert(context.Background(), batch); err != nil {
							return err
						}
					}
				})
			}
			if err := g.Wait(); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N*size)/time.Since(start).Seconds(), "alerts/s")
		})
	}
}

// benchShape is a large cluster: 10 000 pods.
var benchShape = storetest.Shape{Namespaces: 50, PodsPerNamespace: 200, Nodes: 100, Rules: 6}

// BenchmarkPodQuery measures the CLI's per-pod queries (List of one pod's
// newest 50, Summarize of one pod) over ERRNOWATCH_BENCH_ROWS alerts
// (default 1 000 000), loaded once with COPY, and reports p50 and p99.
func BenchmarkPodQuery(b *testing.B) {
	rows := 1_000_000
	if v := os.Getenv("ERRNOWATCH_BENCH_ROWS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			b.Fatalf("ERRNOWATCH_BENCH_ROWS: %v", err)
		}
		rows = n
	}
	dsn := durableDB(b)
	s := open(b, dsn)
	defer s.Close()
	ctx := context.Background()
	load(b, s, rows)
	for _, q := range []struct {
		name string
		run  func(f store.Filter) error
	}{
		{"list", func(f store.Filter) error {
			_, _, err := s.List(ctx, f, store.ListOptions{Limit: 50})
			return err
		}},
		{"summarize", func(f store.Filter) error {
			_, err := s.Summarize(ctx, f)
			return err
		}},
	} {
		b.Run(fmt.Sprintf("%s/rows=%d", q.name, rows), func(b *testing.B) {
			lat := make([]time.Duration, 0, b.N)
			for i := range b.N {
				ns := i % benchShape.Namespaces
				f := store.Filter{Namespace: fmt.Sprintf("ns-%d", ns), Pod: fmt.Sprintf("pod-%d-%d", ns, (i*7919)%benchShape.PodsPerNamespace)}
				t0 := time.Now()
				if err := q.run(f); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t0))
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
		})
	}
}

// load fills the store with n alerts by COPY, far faster than batches of
// Insert, then sets the sequence and analyzes the table.
func load(b *testing.B, s *Store, n int) {
	ctx := context.Background()
	base := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	const chunk = 50_000
	cols := []string{"seq", "id", "revision", "rule_id", "severity", "namespace", "pod", "container", "node",
		"workload_kind", "workload_name", "first_seen", "last_seen", "total", "stored_at", "body"}
	now := time.Now().UnixNano()
	for start := 0; start < n; start += chunk {
		as := storetest.Alerts(benchShape, base, start, min(chunk, n-start))
		rows := make([][]any, len(as))
		for i := range as {
			a := &as[i]
			body, err := json.Marshal(a)
			if err != nil {
				b.Fatal(err)
			}
			rows[i] = []any{int64(start + i + 1), a.ID, int64(a.Revision), a.RuleID, int32(a.Severity), a.Namespace, a.Pod,
				a.Container, a.Node, a.Workload.Kind, a.Workload.Name, a.FirstSeen.UnixNano(), a.LastSeen.UnixNano(),
				int64(a.Total), now, body}
		}
		if _, err := s.pool.CopyFrom(ctx, pgx.Identifier{"alerts"}, cols, pgx.CopyFromRows(rows)); err != nil {
			b.Fatalf("copy alerts: %v", err)
		}
	}
	if _, err := s.pool.Exec(ctx, `UPDATE store_meta SET value = $1 WHERE key = 'last_seq'`, int64(n)); err != nil {
		b.Fatal(err)
	}
	if _, err := s.pool.Exec(ctx, `VACUUM ANALYZE alerts`); err != nil {
		b.Fatal(err)
	}
}
