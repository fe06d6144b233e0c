package agent

import (
	"math"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/errnowatch/errnowatch/pkg/enrich"
	"github.com/errnowatch/errnowatch/pkg/sensor"
	"github.com/errnowatch/errnowatch/pkg/syscalls"
)

// maxSeries bounds the label sets of the per-namespace failure counter and
// the per-pod latency histograms: past it, new series fold into
// namespace/pod "_other", so a noisy node cannot blow up Prometheus.
const maxSeries = 2000

type seriesKey struct {
	namespace, pod, syscall, errno string
}

// metrics is the agent's Prometheus view. Counters that the stages keep
// themselves are read when scraped; the per-interval ones are fed by
// observe.
type metrics struct {
	a         *Agent
	exits     prometheus.Counter
	failures  *prometheus.CounterVec
	mu        sync.Mutex
	series    map[seriesKey]bool
	latency   map[seriesKey]*latencySeries
	latencyDs *prometheus.Desc
	arch      syscalls.Arch
}

type latencySeries struct {
	buckets [sensor.HistBuckets]uint64
	count   uint64
	sumNS   float64
}

func newMetrics(a *Agent) (*metrics, error) {
	m := &metrics{
		a: a,
		exits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "errnowatch_sensor_exits_total",
			Help: "Syscall exits counted exactly by the kernel program (failures, and successes when all exits are on).",
		}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "errnowatch_failures_total",
			Help: "Failed syscalls by namespace, syscall and errno (host processes: namespace \"_host\"; past the series bound: \"_other\").",
		}, []string{"namespace", "syscall", "errno"}),
		series:  map[seriesKey]bool{},
		latency: map[seriesKey]*latencySeries{},
		latencyDs: prometheus.NewDesc("errnowatch_syscall_duration_seconds",
			"Syscall latency per pod and syscall (duration mode), from the kernel's log2 histograms.",
			[]string{"namespace", "pod", "syscall"}, nil),
		arch: syscalls.Native(),
	}
	reg := a.registry
	for _, c := range []prometheus.Collector{
		m.exits, m.failures, m, a.engine, a.watcher, a.enricher.Collector(), a.spool,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	gauge := func(name, help string, fn func() float64) {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, fn))
	}
	counter := func(name, help string, fn func() float64) {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, fn))
	}
	stats := func() sensor.Stats {
		st, _ := a.sensor.Stats()
		return st
	}
	counter("errnowatch_sensor_records_total", "Failure records decoded from the ring buffer.",
		func() float64 { return float64(stats().Records) })
	counter("errnowatch_sensor_ring_drops_total", "Records the kernel could not put in the ring buffer.",
		func() float64 { return float64(stats().TotalRingDrops()) })
	counter("errnowatch_sensor_queue_drops_total", "Decoded records dropped because the agent did not keep up.",
		func() float64 { return float64(stats().QueueDrops + a.recordDrops.Load()) })
	counter("errnowatch_sensor_map_full_total", "Exits not counted because the kernel's counts map was full.",
		func() float64 { return float64(stats().MapFull) })
	counter("errnowatch_sensor_overflow_total", "Exits counted in a cgroup's overflow key, without syscall and errno: over its share of the counts map, or with the map full.",
		func() float64 { return float64(stats().Overflowed) })
	gauge("errnowatch_sensor_attached", "1 while the kernel program is attached.", func() float64 {
		if a.attached.Load() {
			return 1
		}
		return 0
	})
	spool := func() deliveryView {
		if a.sender != nil {
			st := a.sender.Stats()
			return deliveryView{records: st.SpoolRecords, bytes: st.SpoolBytes, oldest: st.OldestUnackedAge.Seconds(),
				connected: st.Connected}
		}
		st := a.spool.Stats()
		return deliveryView{records: st.Records, bytes: st.Bytes}
	}
	gauge("errnowatch_spool_records", "Alerts spooled and not yet acknowledged by the collector.",
		func() float64 { return float64(spool().records) })
	gauge("errnowatch_spool_bytes", "Bytes of spool segments on disk.", func() float64 { return float64(spool().bytes) })
	gauge("errnowatch_spool_oldest_unacked_seconds", "Age of the oldest alert waiting for the collector.",
		func() float64 { return spool().oldest })
	gauge("errnowatch_collector_connected", "1 while a stream to the collector is up.", func() float64 {
		if spool().connected {
			return 1
		}
		return 0
	})
	return m, nil
}

type deliveryView struct {
	records   int
	bytes     int64
	oldest    float64
	connected bool
}

// observe takes one interval's exact counts and histograms.
func (m *metrics) observe(b *enrich.Batch) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := range b.Counts {
		c := &b.Counts[i]
		m.exits.Add(float64(c.Count.Count))
		if c.Errno == 0 {
			continue
		}
		k := m.guard(seriesKey{namespace: namespaceOf(c.Meta), syscall: syscalls.Name(m.arch, int(c.Syscall), c.Compat),
			errno: syscalls.ErrnoName(c.Errno)})
		m.failures.WithLabelValues(k.namespace, k.syscall, k.errno).Add(float64(c.Count.Count))
	}
	for i := range b.Histograms {
		h := &b.Histograms[i]
		k := m.guard(seriesKey{namespace: namespaceOf(h.Meta), pod: podOf(h.Meta),
			syscall: syscalls.Name(m.arch, int(h.Syscall), h.Compat), errno: "-"})
		s := m.latency[k]
		if s == nil {
			s = &latencySeries{}
			m.latency[k] = s
		}
		for i, n := range h.Buckets {
			s.buckets[i] += n
			s.count += n
			// The middle of the bucket stands for its durations.
			s.sumNS += float64(n) * 1.5 * math.Exp2(float64(i))
		}
	}
}

// guard folds a new series into "_other" once maxSeries exist.
func (m *metrics) guard(k seriesKey) seriesKey {
	if m.series[k] {
		return k
	}
	if len(m.series) >= maxSeries {
		k.namespace, k.pod = "_other", ""
		if k.errno != "-" {
			k.syscall, k.errno = "_other", "_other"
		}
	}
	m.series[k] = true
	return k
}

func namespaceOf(m *enrich.Meta) string {
	switch {
	case m == nil:
		return "_unknown"
	case m.Host:
		return "_host"
	case m.Namespace == "":
		return "_unresolved"
	}
	return m.Namespace
}

func podOf(m *enrich.Meta) string {
	if m == nil || m.Pod == "" {
		return ""
	}
	return m.Pod
}

// Describe and Collect export the latency histograms.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) { ch <- m.latencyDs }

func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, s := range m.latency {
		cum := map[float64]uint64{}
		var run uint64
		for i, n := range s.buckets {
			run += n
			cum[math.Exp2(float64(i+1))/1e9] = run // upper bound of bucket i, in seconds
		}
		ch <- prometheus.MustNewConstHistogram(m.latencyDs, s.count, s.sumNS/1e9, cum, k.namespace, k.pod, k.syscall)
	}
}
