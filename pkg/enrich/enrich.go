package enrich

// How a cgroup id becomes a Meta:
//
//  1. The cgroup resolver (pkg/cgroup) turns the id into its path and what the
//     path says: outside kubepods it is a host process (Meta.Host); inside,
//     the path names the pod UID and, for a container, the container ID.
//  2. The pod comes from its UID, which the cgroup path carries from the
//     moment kubelet makes the pod's cgroup, long before any container status
//     is reported. The container's name comes from its ID once the pod's
//     status reports it.
//  3. What is not known yet (a pod the informer has not seen, a container
//     whose status is not reported yet) is held for Options.Hold in a bounded
//     pending set and retried at every interval; when the hold is over it is
//     emitted with what is known (pod UID, container ID) and Meta.Unresolved.
//     While the pod informer is behind the API after a failed list or watch
//     (kube.Pods.Lagging), the hold of an unknown pod lasts up to
//     Options.LaggingHold instead: an alert that comes late but names its pod
//     is worth more than one on time that names only a UID.
//
// Metas are cached per cgroup id in a bounded LRU and dropped from it when
// their pod changes in the API.

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"k8s.io/utils/lru"

	"github.com/errnowatch/errnowatch/pkg/cgroup"
	"github.com/errnowatch/errnowatch/pkg/kube"
	"github.com/errnowatch/errnowatch/pkg/sensor"
)

// CgroupSource turns a cgroup id into its path; *cgroup.Resolver is one.
type CgroupSource interface {
	LookupInfo(id uint64) (cgroup.Info, bool)
}

// CgroupFilter is the part of the sensor that the scope drives;
// *sensor.Sensor is one.
type CgroupFilter interface {
	SetCgroups(include, exclude []uint64) error
}

// Options configures an Enricher.
type Options struct {
	// Node is the node name put in every Meta.
	Node string
	// Cgroups resolves cgroup ids (required). With a Scope it must also
	// announce cgroups (CgroupWatch, as *cgroup.Resolver does): the scope
	// follows pod cgroups through it rather than watching the hierarchy a
	// second time.
	Cgroups CgroupSource
	// Pods is the node's pods. Without it, Metas carry only what cgroup
	// paths say (pod UID, container ID) and nothing is held.
	Pods *kube.Pods
	// Hold is how long data of a pod or container that the API has not
	// named yet is held before it is emitted unresolved. Default 10 s: a
	// kubelet busy starting many pods reports container statuses several
	// seconds late (seen on the e2e node under 200-pod churn), and an alert
	// without its container name is worth less than one a few seconds later.
	// Only a container's first seconds are held; running ones are known.
	// Negative: never held.
	Hold time.Duration
	// LaggingHold is how long data of a pod the informer does not know is
	// held while the informer is behind the API (kube.Pods.Lagging). Client-go
	// retries a failed watch after up to a minute, and when the API server
	// comes back behind a Service, kube-proxy's own informer must first see
	// its endpoint again: on the e2e node the agent's informer caught up 2 to
	// 5 minutes after a 30 s outage. Default 5 min; never shorter than Hold.
	LaggingHold time.Duration
	// MaxPending bounds the held records, count keys and histograms; past
	// it, new data is emitted at once with what is known. Default 8192.
	MaxPending int
	// MaxCached bounds the Meta cache (an LRU). Default 16384.
	MaxCached int
	// Scope limits what the kernel counts to some pods; it needs Pods and
	// Filter. The zero Scope counts everything.
	Scope Scope
	// Filter is the sensor whose cgroup sets the scope keeps current.
	Filter CgroupFilter
	Logger *zap.Logger
}

func (o *Options) setDefaults() {
	if o.Hold == 0 {
		o.Hold = 10 * time.Second
	}
	if o.LaggingHold == 0 {
		o.LaggingHold = 5 * time.Minute
	}
	if o.LaggingHold < o.Hold {
		o.LaggingHold = o.Hold
	}
	if o.MaxPending <= 0 {
		o.MaxPending = 8192
	}
	if o.MaxCached <= 0 {
		o.MaxCached = 16384
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
}

// Enricher turns sensor data into enriched batches. EnrichInterval is meant
// for one consumer (the agent's drain loop); Lookup and Stats are safe from
// any goroutine.
type Enricher struct {
	opts  Options
	log   *zap.Logger
	now   func() time.Time
	scope *scopeKeeper

	// mu guards the Meta cache and its index by pod UID.
	mu    sync.Mutex
	cache *lru.Cache          // cgroup id -> *entry
	byPod map[string][]uint64 // pod UID (as in the cgroup path) -> ids, may hold stale ids
	gen   uint64              // bumped by every invalidation

	// pmu guards the pending set.
	pmu      sync.Mutex
	pending  map[uint64]*held
	nPending int

	stats counters
}

type entry struct {
	meta     *Meta
	complete bool
	pod      string
}

// held is what is pending for one cgroup.
type held struct {
	since   time.Time
	records []sensor.Record
	counts  map[sensor.Key]uint64
	hists   map[sensor.HistKey]*sensor.Histogram
}

// New makes an Enricher. It subscribes to opts.Pods, so it must be made
// before the pods' Run starts.
func New(opts Options) (*Enricher, error) {
	if opts.Cgroups == nil {
		return nil, errors.New("enrich: no cgroup resolver")
	}
	opts.setDefaults()
	e := &Enricher{
		opts:    opts,
		log:     opts.Logger,
		now:     time.Now,
		byPod:   map[string][]uint64{},
		pending: map[uint64]*held{},
	}
	e.cache = lru.NewWithEvictionFunc(opts.MaxCached, e.evicted)
	if !opts.Scope.Empty() {
		if opts.Pods == nil {
			return nil, errors.New("enrich: a scope of namespaces or labels needs the Kubernetes API: pass --kubeconfig or run in the cluster")
		}
		if opts.Filter == nil {
			return nil, errors.New("enrich: a scope needs the sensor to filter cgroups in")
		}
		s, err := newScopeKeeper(opts, e.log, &e.stats)
		if err != nil {
			return nil, err
		}
		e.scope = s
	}
	if opts.Pods != nil {
		opts.Pods.Subscribe(e.podChanged)
	}
	return e, nil
}

// Run keeps the scope current until ctx is done. Without a scope it only
// waits for ctx.
func (e *Enricher) Run(ctx context.Context) error {
	if e.scope == nil {
		<-ctx.Done()
		return nil
	}
	return e.scope.run(ctx)
}

// podChanged drops the cached Metas of a changed pod. Expiry of a deleted
// pod changes nothing: its cgroups' Metas stay right while the LRU keeps them.
func (e *Enricher) podChanged(ev kube.Event) {
	if ev.Type != kube.PodExpired {
		e.invalidate(ev.Pod.UID)
		if ev.Pod.MirrorOf != "" {
			e.invalidate(ev.Pod.MirrorOf)
		}
	}
	if e.scope != nil {
		e.scope.changed()
	}
}

func (e *Enricher) invalidate(uid string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.gen++
	ids := e.byPod[uid]
	delete(e.byPod, uid)
	for _, id := range ids {
		e.cache.Remove(id)
	}
	e.stats.invalidations.Add(uint64(len(ids)))
}

// evicted keeps byPod in step with the LRU; it runs under mu.
func (e *Enricher) evicted(key lru.Key, value any) {
	en := value.(*entry)
	if en.pod == "" {
		return
	}
	id := key.(uint64)
	ids := e.byPod[en.pod]
	if i := slices.Index(ids, id); i >= 0 {
		ids = slices.Delete(ids, i, i+1)
	}
	if len(ids) == 0 {
		delete(e.byPod, en.pod)
	} else {
		e.byPod[en.pod] = ids
	}
}

// Lookup returns the best Meta known now for a cgroup, and whether it is
// complete (nothing more is expected from the API). It never holds; the
// live views (trace) use it. The Meta is shared: do not change it.
func (e *Enricher) Lookup(id uint64) (*Meta, bool) {
	return e.resolve(id)
}

func (e *Enricher) resolve(id uint64) (*Meta, bool) {
	e.mu.Lock()
	if v, ok := e.cache.Get(id); ok {
		en := v.(*entry)
		e.mu.Unlock()
		e.stats.hits.Add(1)
		return en.meta, en.complete
	}
	gen := e.gen
	e.mu.Unlock()
	e.stats.misses.Add(1)

	m, complete, cacheable, pod := e.build(id)
	if !cacheable {
		return m, complete
	}
	e.mu.Lock()
	// A pod change while we built may have made m stale: use it once, do
	// not keep it.
	if e.gen == gen {
		e.cache.Add(id, &entry{meta: m, complete: complete, pod: pod})
		if pod != "" {
			e.byPod[pod] = append(e.byPod[pod], id)
		}
	}
	e.mu.Unlock()
	return m, complete
}

// build makes the Meta of cgroup id. cacheable is false for an id the
// resolver does not know: nothing would tell the cache when it changes.
func (e *Enricher) build(id uint64) (m *Meta, complete, cacheable bool, podKey string) {
	info, ok := e.opts.Cgroups.LookupInfo(id)
	if !ok {
		return &Meta{Node: e.opts.Node, Unresolved: true}, false, false, ""
	}
	m = &Meta{Node: e.opts.Node, CgroupPath: info.Path}
	if !info.InPod {
		m.Host = true
		return m, true, true, ""
	}
	m.PodUID, m.ContainerID = info.PodUID, info.ContainerID
	if e.opts.Pods == nil {
		return m, true, true, ""
	}
	pod, ok := e.opts.Pods.ByUID(info.PodUID)
	if !ok && info.ContainerID != "" {
		pod, ok = e.opts.Pods.ByContainerID(info.ContainerID)
	}
	if !ok {
		m.Unresolved = true
		return m, false, true, info.PodUID
	}
	m.Namespace, m.Pod, m.PodUID = pod.Namespace, pod.Name, pod.UID
	m.Workload = pod.Workload
	m.Labels = pod.Labels
	if info.IsContainer {
		c, ok := pod.ContainerByID(info.ContainerID)
		switch {
		case ok:
			m.Container, m.Image = c.Name, c.Image
		case allReported(pod):
			// No status will name it: the pod's sandbox (pause) container,
			// which kubelet never reports, or a container from before the
			// previous restart. The pod is all there is to say.
		default:
			// The runtime has started it; kubelet has not reported it yet.
			m.Unresolved = true
			return m, false, true, info.PodUID
		}
	}
	return m, true, true, info.PodUID
}

// allReported tells whether every container of the pod has an id in its
// status, so that no status update is going to name another one.
func allReported(p *kube.Pod) bool {
	for _, c := range p.Containers {
		if c.ID == "" {
			return false
		}
	}
	return len(p.Containers) > 0
}

// EnrichInterval enriches one drained interval and the records that arrived
// during it. Data whose pod or container the API has not named yet is held
// for up to Options.Hold and comes out in a later batch, merged with that
// batch's counts: no count is lost or counted twice, but a held count is
// reported up to Hold after its interval. Records keep their own times and
// are sorted by them.
func (e *Enricher) EnrichInterval(iv sensor.Interval, records []sensor.Record) Batch {
	now := e.now()
	b := Batch{Interval: iv}
	e.pmu.Lock()
	defer e.pmu.Unlock()

	for _, c := range iv.Counts {
		if h := e.holdFor(c.CgroupID, now); h != nil {
			// A key already held takes no more room.
			if _, dup := h.counts[c.Key]; dup || e.room() {
				if !dup {
					e.nPending++
				}
				h.counts[c.Key] += c.Count
				continue
			}
		}
		m, _ := e.resolve(c.CgroupID)
		b.Counts = append(b.Counts, Count{Count: c, Meta: m})
		e.stats.count(kindCount, m)
	}
	for _, hg := range iv.Histograms {
		if h := e.holdFor(hg.CgroupID, now); h != nil {
			if old := h.hists[hg.HistKey]; old != nil {
				for i := range old.Buckets {
					old.Buckets[i] += hg.Buckets[i]
				}
				continue
			}
			if e.room() {
				c := hg
				h.hists[hg.HistKey] = &c
				e.nPending++
				continue
			}
		}
		m, _ := e.resolve(hg.CgroupID)
		b.Histograms = append(b.Histograms, Histogram{Histogram: hg, Meta: m})
		e.stats.count(kindHistogram, m)
	}
	for _, r := range records {
		if h := e.holdFor(r.CgroupID, now); h != nil && e.room() {
			h.records = append(h.records, r)
			e.nPending++
			continue
		}
		m, _ := e.resolve(r.CgroupID)
		b.Records = append(b.Records, Record{Record: r, Meta: m})
		e.stats.count(kindRecord, m)
	}

	// Release what is now known, or has waited long enough.
	// After an API error the informer may have listed again and still miss
	// new pods for a while (a CI run saw its watch deliver nothing for a
	// minute after the relist): the longer hold lasts LaggingHold past the
	// last error, not only until the next event.
	hold := e.opts.Hold
	if p := e.opts.Pods; p != nil && (p.Lagging() || now.Sub(p.LastAPIError()) < e.opts.LaggingHold) {
		hold = e.opts.LaggingHold
	}
	for id, h := range e.pending {
		m, complete := e.resolve(id)
		if complete || now.Sub(h.since) >= hold {
			e.release(&b, id, h, m)
		}
	}
	slices.SortStableFunc(b.Records, func(x, y Record) int {
		switch {
		case x.MonoNS < y.MonoNS:
			return -1
		case x.MonoNS > y.MonoNS:
			return 1
		}
		return 0
	})
	return b
}

// holdFor returns the pending entry that data of cgroup id must join: the
// existing one, or a new one when the cgroup's pod or container is not named
// yet. It returns nil when the data goes out now.
func (e *Enricher) holdFor(id uint64, now time.Time) *held {
	if h, ok := e.pending[id]; ok {
		return h
	}
	if e.opts.Hold < 0 || e.opts.Pods == nil {
		return nil
	}
	m, complete := e.resolve(id)
	if complete || m.PodUID == "" {
		// Known, or an unknown cgroup: nothing to wait for.
		return nil
	}
	if !e.room() {
		return nil
	}
	h := &held{since: now, counts: map[sensor.Key]uint64{}, hists: map[sensor.HistKey]*sensor.Histogram{}}
	e.pending[id] = h
	e.stats.heldCgroups.Add(1)
	return h
}

// room tells whether one more item may be held, and counts an overflow when
// not: the item then goes out at once, with what is known.
func (e *Enricher) room() bool {
	if e.nPending < e.opts.MaxPending {
		return true
	}
	e.stats.overflow.Add(1)
	return false
}

// release moves a pending entry into the batch with meta m.
func (e *Enricher) release(b *Batch, id uint64, h *held, m *Meta) {
	for k, n := range h.counts {
		b.Counts = append(b.Counts, Count{Count: sensor.Count{Key: k, Count: n}, Meta: m})
		e.stats.count(kindCount, m)
	}
	for _, hg := range h.hists {
		b.Histograms = append(b.Histograms, Histogram{Histogram: *hg, Meta: m})
		e.stats.count(kindHistogram, m)
	}
	for _, r := range h.records {
		b.Records = append(b.Records, Record{Record: r, Meta: m})
		e.stats.count(kindRecord, m)
	}
	e.nPending -= len(h.counts) + len(h.hists) + len(h.records)
	delete(e.pending, id)
}

// Pending returns how many records, count keys and histograms are held.
func (e *Enricher) Pending() int {
	e.pmu.Lock()
	defer e.pmu.Unlock()
	return e.nPending
}

// ScopeCgroups returns the cgroup sets the scope last gave the sensor (nil
// without a scope).
func (e *Enricher) ScopeCgroups() (include, exclude []uint64) {
	if e.scope == nil {
		return nil, nil
	}
	return e.scope.applied()
}

// stats.count kinds.
const (
	kindRecord = iota
	kindCount
	kindHistogram
	nKinds
)

// Results of one enriched item.
const (
	resultPod = iota
	resultHost
	resultUnresolved
	nResults
)

type counters struct {
	items                       [nKinds][nResults]atomic.Uint64
	hits, misses, invalidations atomic.Uint64
	heldCgroups, overflow       atomic.Uint64
	scopeUpdates, scopeErrors   atomic.Uint64
}

func (c *counters) count(kind int, m *Meta) {
	r := resultPod
	switch {
	case m.Host:
		r = resultHost
	case m.Unresolved:
		r = resultUnresolved
	}
	c.items[kind][r].Add(1)
}
