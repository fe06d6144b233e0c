package enrich

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/errnowatch/errnowatch/pkg/kube"
)

// ItemCounts counts enriched items by what their Meta says.
type ItemCounts struct {
	// Pod items carried a pod's metadata (or, without the API, what the
	// cgroup path says of the pod).
	Pod uint64
	// Host items came from processes outside any pod.
	Host uint64
	// Unresolved items went out without a pod or container name.
	Unresolved uint64
}

// Total is the sum.
func (c ItemCounts) Total() uint64 { return c.Pod + c.Host + c.Unresolved }

// Stats are the Enricher's counters (cumulative) and sizes (now).
type Stats struct {
	Records    ItemCounts
	Counts     ItemCounts
	Histograms ItemCounts
	// Pending is how many records, count keys and histograms are held;
	// HeldCgroups how many times data of a cgroup started to be held;
	// Overflows how often the pending set was full and data went out
	// early.
	Pending     int
	HeldCgroups uint64
	Overflows   uint64
	// Cached is the size of the Meta cache; Hits and Misses its lookups;
	// Invalidations the entries dropped because their pod changed.
	Cached        int
	Hits          uint64
	Misses        uint64
	Invalidations uint64
	// ScopeInclude and ScopeExclude are the sizes of the cgroup sets the
	// scope gave the sensor; ScopeUpdates how often it changed them,
	// ScopeErrors how often that failed; ScopePodCgroups the pod cgroups
	// the scope watches. ScopeEventDrops are the resolver's cgroup events
	// the scope's subscription dropped because it was behind, and
	// ScopeReloads how often it read all pod cgroups again because of them.
	ScopeInclude    int
	ScopeExclude    int
	ScopeUpdates    uint64
	ScopeErrors     uint64
	ScopePodCgroups int
	ScopeEventDrops uint64
	ScopeReloads    uint64
	// Pods are the pod informer's counters (zero without the API).
	Pods kube.Stats
}

// Stats returns the counters.
func (e *Enricher) Stats() Stats {
	c := &e.stats
	ic := func(k int) ItemCounts {
		return ItemCounts{
			Pod:        c.items[k][resultPod].Load(),
			Host:       c.items[k][resultHost].Load(),
			Unresolved: c.items[k][resultUnresolved].Load(),
		}
	}
	s := Stats{
		Records:       ic(kindRecord),
		Counts:        ic(kindCount),
		Histograms:    ic(kindHistogram),
		Pending:       e.Pending(),
		HeldCgroups:   c.heldCgroups.Load(),
		Overflows:     c.overflow.Load(),
		Hits:          c.hits.Load(),
		Misses:        c.misses.Load(),
		Invalidations: c.invalidations.Load(),
		ScopeUpdates:  c.scopeUpdates.Load(),
		ScopeErrors:   c.scopeErrors.Load(),
	}
	e.mu.Lock()
	s.Cached = e.cache.Len()
	e.mu.Unlock()
	if e.scope != nil {
		in, ex := e.scope.applied()
		s.ScopeInclude, s.ScopeExclude = len(in), len(ex)
		s.ScopePodCgroups = e.scope.tree.size()
		s.ScopeEventDrops = e.scope.tree.sub.Dropped()
		s.ScopeReloads = e.scope.tree.reloads.Load()
	}
	if e.opts.Pods != nil {
		s.Pods = e.opts.Pods.Stats()
	}
	return s
}

// Metric descriptions; every metric is read from Stats at scrape time, so
// the metrics and Stats never disagree.
var (
	descEvents = prometheus.NewDesc("errnowatch_enrich_events_total",
		"Sensor records, count keys and histograms enriched, by kind and by what their metadata says (pod, host, unresolved).",
		[]string{"kind", "result"}, nil)
	descPending = prometheus.NewDesc("errnowatch_enrich_pending",
		"Records, count keys and histograms held until the API names their pod or container.", nil, nil)
	descHeld = prometheus.NewDesc("errnowatch_enrich_held_cgroups_total",
		"Times data of a cgroup started to be held for its pod or container.", nil, nil)
	descOverflow = prometheus.NewDesc("errnowatch_enrich_pending_overflows_total",
		"Times the pending set was full and data went out with what was known.", nil, nil)
	descCache = prometheus.NewDesc("errnowatch_enrich_cache_entries",
		"Entries in the enrichment caches.", []string{"cache"}, nil)
	descLookups = prometheus.NewDesc("errnowatch_enrich_cache_lookups_total",
		"Lookups of the per-cgroup metadata cache.", []string{"result"}, nil)
	descInvalid = prometheus.NewDesc("errnowatch_enrich_cache_invalidations_total",
		"Cached metadata dropped because its pod changed.", nil, nil)
	descOwnerGets = prometheus.NewDesc("errnowatch_enrich_owner_gets_total",
		"Gets of ReplicaSets and Jobs to resolve pod owners, by result (ok, fallback).", []string{"result"}, nil)
	descPodEvents = prometheus.NewDesc("errnowatch_enrich_pod_events_total",
		"Pod informer events handled.", nil, nil)
	descScope = prometheus.NewDesc("errnowatch_enrich_scope_cgroups",
		"Cgroup ids the scope put in the sensor's include or exclude set.", []string{"set"}, nil)
	descScopeUpdates = prometheus.NewDesc("errnowatch_enrich_scope_updates_total",
		"Changes of the sensor's cgroup sets by the scope, by result (ok, error).", []string{"result"}, nil)
	descScopeDrops = prometheus.NewDesc("errnowatch_enrich_scope_cgroup_events_dropped_total",
		"Cgroup create and remove events the scope's subscription to the cgroup resolver dropped because it was behind; each burst is repaired by reading all pod cgroups again.", nil, nil)
	descScopeReloads = prometheus.NewDesc("errnowatch_enrich_scope_cgroup_reloads_total",
		"Times the scope read all pod cgroups again after dropped events.", nil, nil)
)

// collector exports Stats.
type collector struct{ e *Enricher }

// Collector returns a prometheus collector of the Enricher's metrics
// (errnowatch_enrich_*).
func (e *Enricher) Collector() prometheus.Collector { return collector{e} }

// Register registers the Enricher's metrics with reg.
func (e *Enricher) Register(reg prometheus.Registerer) error { return reg.Register(e.Collector()) }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descEvents, descPending, descHeld, descOverflow, descCache, descLookups,
		descInvalid, descOwnerGets, descPodEvents, descScope, descScopeUpdates, descScopeDrops, descScopeReloads} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	s := c.e.Stats()
	counter := func(d *prometheus.Desc, v uint64, lv ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), lv...)
	}
	gauge := func(d *prometheus.Desc, v int, lv ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), lv...)
	}
	for kind, ic := range map[string]ItemCounts{"record": s.Records, "count": s.Counts, "histogram": s.Histograms} {
		counter(descEvents, ic.Pod, kind, "pod")
		counter(descEvents, ic.Host, kind, "host")
		counter(descEvents, ic.Unresolved, kind, "unresolved")
	}
	gauge(descPending, s.Pending)
	counter(descHeld, s.HeldCgroups)
	counter(descOverflow, s.Overflows)
	gauge(descCache, s.Cached, "meta")
	gauge(descCache, s.Pods.Pods, "pods")
	gauge(descCache, s.Pods.Deleted, "deleted_pods")
	gauge(descCache, s.Pods.ContainerIDs, "container_ids")
	gauge(descCache, s.Pods.Owners, "owners")
	counter(descLookups, s.Hits, "hit")
	counter(descLookups, s.Misses, "miss")
	counter(descInvalid, s.Invalidations)
	counter(descOwnerGets, s.Pods.OwnerGets-s.Pods.OwnerFallbacks, "ok")
	counter(descOwnerGets, s.Pods.OwnerFallbacks, "fallback")
	counter(descPodEvents, s.Pods.Events)
	gauge(descScope, s.ScopeInclude, "include")
	gauge(descScope, s.ScopeExclude, "exclude")
	counter(descScopeUpdates, s.ScopeUpdates, "ok")
	counter(descScopeUpdates, s.ScopeErrors, "error")
	counter(descScopeDrops, s.ScopeEventDrops)
	counter(descScopeReloads, s.ScopeReloads)
}
