package collector_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	errnowatchv1 "github.com/errnowatch/errnowatch/api/errnowatch/v1"
	"github.com/errnowatch/errnowatch/pkg/collector"
	"github.com/errnowatch/errnowatch/pkg/collector/client"
	"github.com/errnowatch/errnowatch/pkg/collector/collectortest"
	"github.com/errnowatch/errnowatch/pkg/delivery"
	"github.com/errnowatch/errnowatch/pkg/store/sqlite"
	"github.com/errnowatch/errnowatch/pkg/store/storetest"
)

// BenchmarkIngest measures durable ingest over gRPC with mutual TLS: 4
// agents' streams of 500-alert batches, each acknowledged after its commit,
// each stream keeping the agent's window of batches in flight.
// Target: at least 20000 alerts/s.
func BenchmarkIngest(b *testing.B) {
	pki := collectortest.NewPKI(b, "agent")
	col := collectortest.Start(b, collector.Config{IngestAlertsPerSecond: 1e9}, pki, false, "")
	const agents, size = 4, 500
	clients := make([]*client.Client, agents)
	streams := make([]errnowatchv1.IngestService_PublishAlertsClient, agents)
	for i := range agents {
		clients[i] = dial(b, pki.ClientOptions(col.Addr))
		st, err := clients[i].Ingest.PublishAlerts(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		streams[i] = st
	}
	// Pre-build the batches so the benchmark measures the collector.
	batches := make([][]*errnowatchv1.Alert, b.N)
	for i := range b.N {
		batches[i] = toProto(storetest.Alerts(storetest.DefaultShape, time.Now(), i*size, size))
	}
	b.ResetTimer()
	cpu0 := cpuTime()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, 2*agents)
	for a := range agents {
		// Like the agent's sender (pkg/delivery), each stream keeps up to
		// delivery.DefaultWindow batches waiting for their answers.
		window := make(chan struct{}, delivery.DefaultWindow)
		failed := make(chan struct{}) // the answers stopped: stop sending
		wg.Go(func() {
			for i := a; i < b.N; i += agents {
				select {
				case window <- struct{}{}:
				case <-failed:
					return
				}
				if err := streams[a].Send(&errnowatchv1.PublishAlertsRequest{BatchSequence: uint64(i), Alerts: batches[i]}); err != nil {
					errs <- err
					return
				}
			}
		})
		wg.Go(func() {
			for i := a; i < b.N; i += agents {
				if r, err := streams[a].Recv(); err != nil || r.Stored != size || r.BatchSequence != uint64(i) {
					errs <- fmt.Errorf("ack %v, %v", r, err)
					close(failed)
					return
				}
				<-window
			}
		})
	}
	wg.Wait()
	el := time.Since(start)
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N*size)/el.Seconds(), "alerts/s")
	// Client and collector share this process: CPU per alert covers both
	// and stays meaningful when other work shares the machine.
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N*size), "cpu-us/alert")
	b.ReportMetric(0, "ns/op")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkListPerPod measures a per-pod ListAlerts page over gRPC with 1M
// stored alerts (5 namespaces x 2000 pods, so about 100 alerts per pod) and
// reports the p99 latency.
func BenchmarkListPerPod(b *testing.B) {
	st := millionAlerts(b)
	col := collectortest.Start(b, collector.Config{Store: st, QueriesPerSecond: 1e9}, nil, true, "")
	c := dial(b, client.Options{Address: col.Socket})
	lat := startQueries(b)
	for i := range b.N {
		ns, pod := i%millionShape.Namespaces, (i*7919)%millionShape.PodsPerNamespace
		t := time.Now()
		resp, err := c.Query.ListAlerts(context.Background(), &errnowatchv1.ListAlertsRequest{PageSize: 50,
			Filter: &errnowatchv1.AlertFilter{Namespace: fmt.Sprintf("ns-%d", ns), Pod: fmt.Sprintf("pod-%d-%d", ns, pod)}})
		lat.add(t)
		if err != nil || len(resp.Alerts) == 0 {
			b.Fatalf("list pod-%d-%d: %d alerts, %v", ns, pod, len(resp.GetAlerts()), err)
		}
	}
	b.StopTimer()
	lat.report(b)
}

// BenchmarkListNamespace pages through a whole namespace (about 188 000 of
// the 1M alerts) 100 at a time, the query a team's CLI makes without a pod.
func BenchmarkListNamespace(b *testing.B) {
	st := millionAlerts(b)
	col := collectortest.Start(b, collector.Config{Store: st, QueriesPerSecond: 1e9}, nil, true, "")
	c := dial(b, client.Options{Address: col.Socket})
	req := &errnowatchv1.ListAlertsRequest{PageSize: 100, Filter: &errnowatchv1.AlertFilter{Namespace: "ns-3"}}
	lat := startQueries(b)
	for range b.N {
		t := time.Now()
		resp, err := c.Query.ListAlerts(context.Background(), req)
		lat.add(t)
		if err != nil || len(resp.Alerts) == 0 || (len(resp.Alerts) < 100 && resp.NextPageToken != "") {
			b.Fatalf("list ns-3: %d alerts, next %q, %v", len(resp.GetAlerts()), resp.GetNextPageToken(), err)
		}
		// After the last page (about 1882: every 17th alert is a host
		// alert without namespace), start over.
		req.PageToken = resp.NextPageToken
	}
	b.StopTimer()
	lat.report(b)
}

// BenchmarkSummarizeNamespace summarizes one namespace of the 1M-alert
// store (2000 pods, 200 000 alerts) over gRPC and reports the p99 latency.
// Target: p99 under 50 ms.
func BenchmarkSummarizeNamespace(b *testing.B) {
	st := millionAlerts(b)
	col := collectortest.Start(b, collector.Config{Store: st, QueriesPerSecond: 1e9}, nil, true, "")
	c := dial(b, client.Options{Address: col.Socket})
	lat := startQueries(b)
	for i := range b.N {
		t := time.Now()
		resp, err := c.Query.SummarizeAlerts(context.Background(), &errnowatchv1.SummarizeAlertsRequest{
			Filter: &errnowatchv1.AlertFilter{Namespace: fmt.Sprintf("ns-%d", i%millionShape.Namespaces)}})
		lat.add(t)
		if err != nil || len(resp.Pods) != millionShape.PodsPerNamespace {
			b.Fatalf("summarize: %d pods, %v", len(resp.GetPods()), err)
		}
	}
	b.StopTimer()
	lat.report(b)
}

// queryTimes collects one benchmark's query latencies and the process's
// CPU time from its start.
type queryTimes struct {
	lat  []time.Duration
	cpu0 time.Duration
}

// startQueries resets b's timer and starts counting.
func startQueries(b *testing.B) *queryTimes {
	b.ResetTimer()
	return &queryTimes{lat: make([]time.Duration, 0, b.N), cpu0: cpuTime()}
}

func (q *queryTimes) add(since time.Time) { q.lat = append(q.lat, time.Since(since)) }

// report gives the p50 and p99 latencies, and the CPU one query costs
// (client and collector, one process): unlike the latencies it does not
// grow with the machine's load.
func (q *queryTimes) report(b *testing.B) {
	b.ReportMetric(float64((cpuTime()-q.cpu0).Microseconds())/1000/float64(len(q.lat)), "cpu-ms/query")
	slices.Sort(q.lat)
	b.ReportMetric(float64(q.lat[len(q.lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(q.lat[len(q.lat)/2].Microseconds())/1000, "p50-ms")
}

var (
	millionShape = storetest.Shape{Namespaces: 5, PodsPerNamespace: 2000, Nodes: 50, Rules: 8}
	million      struct {
		once sync.Once
		dir  string
		st   *sqlite.Store
		err  error
	}
)

// millionAlerts builds the 1M-alert store once per process: the benchmark
// framework runs a benchmark more than once and the build takes minutes.
// TestMain removes it.
func millionAlerts(b *testing.B) *sqlite.Store {
	million.once.Do(func() {
		million.dir, million.err = os.MkdirTemp("", "ew-bench-")
		if million.err != nil {
			return
		}
		st, err := sqlite.Open(context.Background(), filepath.Join(million.dir, "alerts.db"), sqlite.Options{})
		if err != nil {
			million.err = err
			return
		}
		const total, chunk = 1_000_000, 20000
		t0 := time.Now()
		for i := 0; i < total; i += chunk {
			if _, err := st.Insert(context.Background(), storetest.MustBatch(b, storetest.Alerts(millionShape, time.Now().Add(-time.Hour), i, chunk))); err != nil {
				million.err = err
				st.Close()
				return
			}
		}
		b.Logf("stored %d alerts in %s", total, time.Since(t0).Round(time.Millisecond))
		million.st = st
	})
	if million.err != nil {
		b.Fatalf("build the 1M-alert store: %v", million.err)
	}
	return million.st
}

func removeMillion() {
	if million.st != nil {
		million.st.Close()
	}
	if million.dir != "" {
		os.RemoveAll(million.dir)
	}
}

// BenchmarkStreamFanOut measures delivering every stored alert to 10 live
// StreamAlerts subscribers (alerts/s is per subscriber).
func BenchmarkStreamFanOut(b *testing.B) {
	col := collectortest.Start(b, collector.Config{IngestAlertsPerSecond: 1e9, QueriesPerSecond: 1e9}, nil, true, "")
	pub := dial(b, client.Options{Address: col.Socket})
	const subscribers, size = 10, 500
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var ready, done sync.WaitGroup
	want := uint64(0)
	errs := make(chan error, subscribers)
	streams := make([]errnowatchv1.QueryService_StreamAlertsClient, subscribers)
	for i := range subscribers {
		c := dial(b, client.Options{Address: col.Socket})
		s, err := c.Query.StreamAlerts(ctx, &errnowatchv1.StreamAlertsRequest{FromEnd: true})
		if err != nil {
			b.Fatal(err)
		}
		streams[i] = s
	}
	batches := make([][]*errnowatchv1.Alert, b.N)
	for i := range b.N {
		batches[i] = toProto(storetest.Alerts(storetest.DefaultShape, time.Now(), i*size, size))
	}
	want = uint64(b.N * size)
	ready.Add(subscribers)
	b.ResetTimer()
	start := time.Now()
	for _, s := range streams {
		done.Go(func() {
			ready.Done()
			var n uint64
			for n < want {
				m, err := s.Recv()
				if err != nil {
					errs <- err
					return
				}
				if m.GetAlert() != nil {
					n++
				}
			}
		})
	}
	ready.Wait()
	st, err := pub.Ingest.PublishAlerts(ctx)
	if err != nil {
		b.Fatal(err)
	}
	for i := range b.N {
		if err := st.Send(&errnowatchv1.PublishAlertsRequest{BatchSequence: uint64(i), Alerts: batches[i]}); err != nil {
			b.Fatal(err)
		}
		if _, err := st.Recv(); err != nil {
			b.Fatal(err)
		}
	}
	done.Wait()
	el := time.Since(start)
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	b.ReportMetric(float64(want)/el.Seconds(), "alerts/s/subscriber")
	b.ReportMetric(0, "ns/op")
}
