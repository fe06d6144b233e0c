package agent

import (
	"math"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/errnowatch/errnowatch/pkg/alert"
	"github.com/errnowatch/errnowatch/pkg/enrich"
	"github.com/errnowatch/errnowatch/pkg/kube"
	"github.com/errnowatch/errnowatch/pkg/sensor"
	"github.com/errnowatch/errnowatch/pkg/syscalls"
)

// The label sets of the per-namespace failure counter and the per-pod
// latency histograms are bounded twice, as the kernel bounds its counts map:
// each namespace may make maxNamespaceSeries of them, and the node
// maxSeries. A namespace past its share folds its new series into its own
// syscall/errno (or pod/syscall) "_other": one pod making thousands of
// distinct failures cannot push another namespace's series out. Past the
// node's bound a namespace that has none yet folds into namespace "_other".
// Folded series are not counted against either bound: each namespace has at
// most two, so the whole stays below 3*maxSeries.
const (
	maxSeries          = 5000
	maxNamespaceSeries = 300
)

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
	perNS     map[string]int // series each namespace made, folded ones aside
	folded    prometheus.Counter
	latency   map[seriesKey]*latencySeries
	latencyDs *prometheus.Desc
	arch      syscalls.Arch
	alerts    *prometheus.CounterVec
	alertKeys map[alertKey]bool
	pods      *podFailures // nil unless Config.PodMetrics.Enabled
}

type alertKey struct{ rule, severity string }

type latencySeries struct {
	buckets [sensor.HistBuckets]uint64
	count   uint64
	sumNS   float64
}

// newSeriesMetrics is the part of the agent's metrics that observe and
// alerted feed, not registered yet.
func newSeriesMetrics() *metrics {
	return &metrics{
		exits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "errnowatch_sensor_exits_total",
			Help: "Syscall exits counted exactly by the kernel program (failures, and successes when all exits are on).",
		}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "errnowatch_failures_total",
			Help: "Failed syscalls by namespace, syscall and errno (host processes: namespace \"_host\"; a namespace past its share of series: syscall and errno \"_other\"; past the node's bound: namespace \"_other\").",
		}, []string{"namespace", "syscall", "errno"}),
		series: map[seriesKey]bool{},
		perNS:  map[string]int{},
		folded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "errnowatch_metric_series_folded_total",
			Help: "New label sets of errnowatch_failures_total and errnowatch_syscall_duration_seconds folded into \"_other\": their namespace was over its share of series, or the node over its bound.",
		}),
		latency: map[seriesKey]*latencySeries{},
		latencyDs: prometheus.NewDesc("errnowatch_syscall_duration_seconds",
			"Syscall latency per pod and syscall (duration mode), from the kernel's log2 histograms.",
			[]string{"namespace", "pod", "syscall"}, nil),
		arch: syscalls.Native(),
		alerts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "errnowatch_alerts_total",
			Help: "Alerts the rules raised (kind raised) and revised (kind updated), by rule and severity (past the series bound: rule \"_other\").",
		}, []string{"rule", "severity", "kind"}),
		alertKeys: map[alertKey]bool{},
	}
}

func newMetrics(a *Agent) (*metrics, error) {
	m := newSeriesMetrics()
	m.a = a
	reg := a.registry
	cs := []prometheus.Collector{
		m.exits, m.failures, m.alerts, m.folded, m, a.engine, a.watcher, a.enricher.Collector(), a.spool,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	}
	// Zeros for the rules loaded at start, so that a dashboard and an alert
	// on increase() see each rule's series before its first alert.
	if rs := a.engine.Rules(); rs != nil {
		for _, r := range rs.Rules {
			m.alertKeys[alertKey{rule: r.ID, severity: r.Severity.String()}] = true
			m.alerts.WithLabelValues(r.ID, r.Severity.String(), "raised")
		}
	}
	if a.cfg.PodMetrics.Enabled {
		var gone func(uid string) bool
		if a.pods != nil {
			gone = podGone(a.pods)
		}
		m.pods = newPodFailures(a.cfg.PodMetrics, gone)
		cs = append(cs, m.pods)
	}
	for _, c := range cs {
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
	if m.pods != nil {
		m.pods.observe(b, time.Now())
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

// alerted counts alerts by rule and severity. Rule ids come from the rule
// files, not from pods, but a rule set reloaded often could still grow them:
// past maxSeries pairs, new ones fold into rule "_other".
func (m *metrics) alerted(as []alert.Alert) {
	if len(as) == 0 {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := range as {
		k := alertKey{rule: as[i].RuleID, severity: as[i].Severity.String()}
		if !m.alertKeys[k] {
			if len(m.alertKeys) >= maxSeries {
				k.rule = "_other"
			}
			m.alertKeys[k] = true
		}
		kind := "updated"
		if as[i].Revision <= 1 {
			kind = "raised"
		}
		m.alerts.WithLabelValues(k.rule, k.severity, kind).Inc()
	}
}

// guard folds a new series into "_other" once its namespace has made
// maxNamespaceSeries, or the node maxSeries (see maxSeries).
func (m *metrics) guard(k seriesKey) seriesKey {
	if m.series[k] {
		return k
	}
	n := m.perNS[k.namespace]
	if n < maxNamespaceSeries && len(m.series) < maxSeries {
		m.series[k] = true
		m.perNS[k.namespace] = n + 1
		return k
	}
	m.folded.Inc()
	if n == 0 {
		k.namespace = "_other"
	}
	if k.errno == "-" { // a latency series: its pod and syscall fold
		k.pod, k.syscall = "_other", "_other"
	} else {
		k.syscall, k.errno = "_other", "_other"
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

// PodMetrics configures the optional per-pod failure counter,
// errnowatch_pod_failures_total{namespace, pod}.
type PodMetrics struct {
	// Enabled exports it (off by default: a series per failing pod).
	Enabled bool
	// MaxSeries bounds the pod series one agent exports (default 500).
	// Failures of pods past it are counted in the series
	// {namespace="_other", pod="_other"}.
	MaxSeries int
	// SweepEvery is how often series of pods the API server no longer knows
	// are removed (default 30 s).
	SweepEvery time.Duration
}

// Label values of the per-pod counter for failures outside named pods, so
// that its series add up to errnowatch_failures_total.
const (
	otherLabel      = "_other"
	hostLabel       = "_host"
	unresolvedLabel = "_unresolved"
)

type podKey struct{ namespace, pod string }

type podSeries struct {
	uid      string // "" for host and unresolved processes: never swept
	failures float64
}

// podFailures is errnowatch_pod_failures_total: failures per pod, with a
// bounded number of series. A pod gets a series while fewer than MaxSeries
// exist; later pods are counted in the "_other" series (whose growth is the
// overflow). The series of a pod the pod informer no longer knows (deleted,
// and past its grace for late failures) is removed, freeing its slot.
type podFailures struct {
	max        int
	sweepEvery time.Duration
	gone       func(uid string) bool // nil: pods are never known to go (no Kubernetes)
	desc       *prometheus.Desc
	seriesDesc *prometheus.Desc

	mu        sync.Mutex
	series    map[podKey]*podSeries
	other     float64
	lastSweep time.Time
}

func newPodFailures(cfg PodMetrics, gone func(uid string) bool) *podFailures {
	if cfg.MaxSeries <= 0 {
		cfg.MaxSeries = 500
	}
	if cfg.SweepEvery <= 0 {
		cfg.SweepEvery = 30 * time.Second
	}
	return &podFailures{
		max: cfg.MaxSeries, sweepEvery: cfg.SweepEvery, gone: gone,
		desc: prometheus.NewDesc("errnowatch_pod_failures_total",
			"Failed syscalls by pod (--pod-metrics). Host processes: namespace and pod \"_host\"; pods the API did not name: \"_unresolved\"; pods past the series bound: \"_other\".",
			[]string{"namespace", "pod"}, nil),
		seriesDesc: prometheus.NewDesc("errnowatch_pod_failure_series",
			"Pod series errnowatch_pod_failures_total exports, and how many it may (bound).",
			[]string{"kind"}, nil),
		series: map[podKey]*podSeries{},
	}
}

// observe adds one interval's failures and, every sweepEvery, removes the
// series of pods that went away.
func (p *podFailures) observe(b *enrich.Batch, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := range b.Counts {
		c := &b.Counts[i]
		if c.Errno == 0 {
			continue
		}
		k, uid := podSeriesKey(c.Meta)
		s := p.series[k]
		if s == nil {
			if len(p.series) >= p.max {
				p.other += float64(c.Count.Count)
				continue
			}
			s = &podSeries{uid: uid}
			p.series[k] = s
		}
		s.failures += float64(c.Count.Count)
	}
	if p.gone != nil && now.Sub(p.lastSweep) >= p.sweepEvery {
		p.lastSweep = now
		for k, s := range p.series {
			if s.uid != "" && p.gone(s.uid) {
				delete(p.series, k)
			}
		}
	}
}

// podGone tells whether the pod informer no longer knows a pod: deleted,
// and past the grace (kube.Options.DeletedTTL) it keeps deleted pods for
// their late failures, so a swept series is not re-created at once.
func podGone(p *kube.Pods) func(uid string) bool {
	return func(uid string) bool {
		_, ok := p.ByUID(uid)
		return !ok
	}
}

// podSeriesKey names the series of a failure's cgroup, and the pod UID that
// tells when it goes away.
func podSeriesKey(m *enrich.Meta) (podKey, string) {
	switch {
	case m == nil || (m.Unresolved && m.Pod == ""):
		return podKey{unresolvedLabel, unresolvedLabel}, ""
	case m.Host:
		return podKey{hostLabel, hostLabel}, ""
	case m.Pod == "":
		return podKey{namespaceOf(m), unresolvedLabel}, ""
	}
	return podKey{m.Namespace, m.Pod}, m.PodUID
}

func (p *podFailures) Describe(ch chan<- *prometheus.Desc) {
	ch <- p.desc
	ch <- p.seriesDesc
}

func (p *podFailures) Collect(ch chan<- prometheus.Metric) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, s := range p.series {
		ch <- prometheus.MustNewConstMetric(p.desc, prometheus.CounterValue, s.failures, k.namespace, k.pod)
	}
	// Exported from the start, so that an alert on its growth has a series
	// to compare with.
	ch <- prometheus.MustNewConstMetric(p.desc, prometheus.CounterValue, p.other, otherLabel, otherLabel)
	ch <- prometheus.MustNewConstMetric(p.seriesDesc, prometheus.GaugeValue, float64(len(p.series)), "exported")
	ch <- prometheus.MustNewConstMetric(p.seriesDesc, prometheus.GaugeValue, float64(p.max), "bound")
}
