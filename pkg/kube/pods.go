package kube

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/tools/cache"
)

// Options tunes Pods. Node is required; the rest have defaults.
type Options struct {
	// Logger gets the informer's log; nil discards it.
	Logger *zap.Logger
	// Node is the node whose pods are watched (spec.nodeName).
	Node string
	// Labels chooses the pod labels kept; the zero value (nil Keys and
	// Prefixes) means DefaultLabelFilter. LabelFilter{Keys: []string{}}
	// keeps none.
	Labels LabelFilter
	// Annotations are extra annotation keys kept in the store (the
	// static-pod mirror annotation always is).
	Annotations []string
	// DeletedTTL is how long a deleted pod stays resolvable. Default 60 s.
	DeletedTTL time.Duration
	// MaxDeleted bounds the deleted pods kept; the oldest go first.
	// Default 4096.
	MaxDeleted int
	// OwnerTTL is how long a resolved owner is cached. Default 10 min.
	OwnerTTL time.Duration
	// MaxOwners bounds the owner cache (an LRU). Default 2048.
	MaxOwners int
	// OwnerTimeout bounds one get of an owner. Default 5 s.
	OwnerTimeout time.Duration
	// Resync is the informer's resync period; 0 turns it off (the watch
	// keeps the store current).
	Resync time.Duration
}

func (o *Options) setDefaults() {
	if o.Labels.Keys == nil && o.Labels.Prefixes == nil {
		o.Labels = DefaultLabelFilter()
	}
	if o.DeletedTTL <= 0 {
		o.DeletedTTL = 60 * time.Second
	}
	if o.MaxDeleted <= 0 {
		o.MaxDeleted = 4096
	}
	if o.OwnerTTL <= 0 {
		o.OwnerTTL = 10 * time.Minute
	}
	if o.MaxOwners <= 0 {
		o.MaxOwners = 2048
	}
	if o.OwnerTimeout <= 0 {
		o.OwnerTimeout = 5 * time.Second
	}
}

// EventType says what happened to a pod.
type EventType int

// Event types.
const (
	PodAdded EventType = iota + 1
	PodUpdated
	PodDeleted
	// PodExpired: a deleted pod's grace is over and it is forgotten.
	PodExpired
)

// Event is a change of a pod, after the indexes have it.
type Event struct {
	Type EventType
	Pod  *Pod
}

// Stats are Pods' counters, for metrics.
type Stats struct {
	// Pods is how many live pods are known; Deleted how many deleted ones
	// are kept for late events.
	Pods    int
	Deleted int
	// ContainerIDs is the size of the container id index.
	ContainerIDs int
	// Owners is the size of the owner cache; OwnerGets the gets made of
	// ReplicaSets and Jobs, OwnerFallbacks those that failed and were
	// answered by the name fallback.
	Owners         int
	OwnerGets      uint64
	OwnerFallbacks uint64
	// Events are informer events handled.
	Events uint64
}

// Pods is the node's pods, indexed by UID and container ID. Lookups are safe
// from any goroutine.
type Pods struct {
	opts     Options
	log      *zap.Logger
	informer cache.SharedIndexInformer
	reg      cache.ResourceEventHandlerRegistration
	owners   *owners
	now      func() time.Time
	ctx      atomic.Pointer[context.Context]

	mu       sync.RWMutex
	byUID    map[string]*Pod // live and deleted
	byMirror map[string]*Pod
	byCID    map[string]*Pod
	deleted  []deletion // oldest first; may hold stale items
	nDeleted int
	subs     []func(Event)

	events atomic.Uint64
	// Unix nanoseconds of the last failed list or watch, and of the last
	// event handled: together they say whether the informer is behind the
	// API (Lagging).
	apiErrAt  atomic.Int64
	lastEvent atomic.Int64
}

type deletion struct {
	uid string
	at  time.Time
	pod *Pod
}

// New makes the pod informer for opts.Node. Run starts it.
func New(client *Client, opts Options) (*Pods, error) {
	log := opts.Logger
	if opts.Node == "" {
		return nil, errors.New("pods: node name is empty: pass --node-name or set " + NodeNameEnv)
	}
	if log == nil {
		log = zap.NewNop()
	}
	opts.setDefaults()
	p := &Pods{
		opts:     opts,
		log:      log,
		owners:   newOwners(client, log, opts.MaxOwners, opts.OwnerTTL, opts.OwnerTimeout),
		now:      time.Now,
		byUID:    map[string]*Pod{},
		byMirror: map[string]*Pod{},
		byCID:    map[string]*Pod{},
	}
	selector := fields.OneTermEqualSelector("spec.nodeName", opts.Node).String()
	p.informer = cache.NewSharedIndexInformer(client.PodListWatch(selector), &corev1.Pod{}, opts.Resync, cache.Indexers{})
	if err := p.informer.SetTransform(strip(opts.Labels, opts.Annotations)); err != nil {
		return nil, fmt.Errorf("pods: set transform: %w", err)
	}
	// A failed list or watch leaves the informer behind the API until the
	// reflector lists again, after a backoff of up to a minute: pods made
	// meanwhile are unknown, and Lagging says so.
	if err := p.informer.SetWatchErrorHandlerWithContext(func(ctx context.Context, r *cache.Reflector, err error) {
		p.apiErrAt.Store(p.now().UnixNano())
		p.log.Warn("pods: list or watch of the API failed; pod names may lag until it recovers", zap.Error(err))
		cache.DefaultWatchErrorHandler(ctx, r, err)
	}); err != nil {
		return nil, fmt.Errorf("pods: set watch error handler: %w", err)
	}
	reg, err := p.informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { p.upsert(obj, PodAdded) },
		UpdateFunc: func(_, obj any) { p.upsert(obj, PodUpdated) },
		DeleteFunc: p.remove,
	})
	if err != nil {
		return nil, fmt.Errorf("pods: add event handler: %w", err)
	}
	p.reg = reg
	return p, nil
}

// Subscribe calls fn after every change of the indexes, on the informer's
// goroutine: fn must be quick and must not call back into a blocking wait.
// Subscribe before Run.
func (p *Pods) Subscribe(fn func(Event)) {
	p.mu.Lock()
	p.subs = append(p.subs, fn)
	p.mu.Unlock()
}

// Run lists and watches the node's pods until ctx is done.
func (p *Pods) Run(ctx context.Context) error {
	p.ctx.Store(&ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		p.sweepLoop(ctx)
	}()
	p.informer.RunWithContext(ctx)
	wg.Wait()
	return nil
}

// Lagging tells whether a list or watch of the API failed and no pod event
// has been handled since: until the reflector lists again (which replays
// every pod of the node, the agent's own included) pods made meanwhile are
// unknown here.
func (p *Pods) Lagging() bool {
	errAt := p.apiErrAt.Load()
	return errAt != 0 && p.lastEvent.Load() <= errAt
}

// LastAPIError is when a list or watch of the API last failed (zero: never).
func (p *Pods) LastAPIError() time.Time {
	if n := p.apiErrAt.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

// Synced tells whether the initial list has been indexed.
func (p *Pods) Synced() bool { return p.reg.HasSynced() }

// WaitForSync waits until the initial list has been indexed, or ctx is done.
func (p *Pods) WaitForSync(ctx context.Context) error {
	if !cache.WaitForCacheSync(ctx.Done(), p.Synced) {
		return fmt.Errorf("pods of node %s: initial list not synced: %w", p.opts.Node, context.Cause(ctx))
	}
	return nil
}

// ByUID returns the pod with this UID, or the static pod whose hash (the
// UID kubelet puts in its cgroup path) this is. Deleted pods are found for
// Options.DeletedTTL.
func (p *Pods) ByUID(uid string) (*Pod, bool) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if pod, ok := p.byUID[uid]; ok {
		return pod, true
	}
	pod, ok := p.byMirror[uid]
	return pod, ok
}

// ByContainerID returns the pod whose status names the bare container id
// (current or previous).
func (p *Pods) ByContainerID(id string) (*Pod, bool) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	pod, ok := p.byCID[id]
	return pod, ok
}

// List returns the live pods.
func (p *Pods) List() []*Pod {
	p.mu.RLock()
	defer p.mu.RUnlock()
	out := make([]*Pod, 0, len(p.byUID)-p.nDeleted)
	for _, pod := range p.byUID {
		if !pod.Deleted {
			out = append(out, pod)
		}
	}
	return out
}

// Stats returns the counters.
func (p *Pods) Stats() Stats {
	p.mu.RLock()
	s := Stats{Pods: len(p.byUID) - p.nDeleted, Deleted: p.nDeleted, ContainerIDs: len(p.byCID)}
	p.mu.RUnlock()
	s.Owners = len(p.owners.cache.Keys())
	// Fallbacks first: every fallback's get is counted before it, so gets
	// read later are never fewer.
	s.OwnerFallbacks = p.owners.fallbacks.Load()
	s.OwnerGets = p.owners.gets.Load()
	s.Events = p.events.Load()
	return s
}

func (p *Pods) context() context.Context {
	if c := p.ctx.Load(); c != nil {
		return *c
	}
	return context.Background()
}

func (p *Pods) upsert(obj any, t EventType) {
	in, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	p.events.Add(1)
	p.lastEvent.Store(p.now().UnixNano())
	// The owner get happens outside the lock: lookups never wait for it.
	pod := newPod(in, p.opts.Labels, p.owners.workload(p.context(), in))
	p.mu.Lock()
	if old, ok := p.byUID[pod.UID]; ok {
		if old.Deleted {
			// Deleted and seen again (a relist after a missed watch
			// event): alive after all.
			p.nDeleted--
		}
		p.unindexLocked(old)
	}
	p.indexLocked(pod)
	subs := p.subs
	p.mu.Unlock()
	notify(subs, Event{Type: t, Pod: pod})
}

func (p *Pods) remove(obj any) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	in, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	p.events.Add(1)
	p.lastEvent.Store(p.now().UnixNano())
	p.mu.Lock()
	old, ok := p.byUID[string(in.UID)]
	if !ok || old.Deleted {
		p.mu.Unlock()
		return
	}
	gone := *old
	gone.Deleted = true
	p.unindexLocked(old)
	p.indexLocked(&gone)
	p.nDeleted++
	p.deleted = append(p.deleted, deletion{uid: gone.UID, at: p.now(), pod: &gone})
	var expired []*Pod
	for p.nDeleted > p.opts.MaxDeleted && len(p.deleted) > 0 {
		if e := p.popDeletedLocked(); e != nil {
			expired = append(expired, e)
		}
	}
	subs := p.subs
	p.mu.Unlock()
	notify(subs, Event{Type: PodDeleted, Pod: &gone})
	for _, e := range expired {
		notify(subs, Event{Type: PodExpired, Pod: e})
	}
}

func notify(subs []func(Event), ev Event) {
	for _, fn := range subs {
		fn(ev)
	}
}

func (p *Pods) indexLocked(pod *Pod) {
	p.byUID[pod.UID] = pod
	if pod.MirrorOf != "" {
		p.byMirror[pod.MirrorOf] = pod
	}
	for _, id := range pod.containerIDs() {
		p.byCID[id] = pod
	}
}

func (p *Pods) unindexLocked(pod *Pod) {
	if p.byUID[pod.UID] == pod {
		delete(p.byUID, pod.UID)
	}
	if pod.MirrorOf != "" && p.byMirror[pod.MirrorOf] == pod {
		delete(p.byMirror, pod.MirrorOf)
	}
	for _, id := range pod.containerIDs() {
		if p.byCID[id] == pod {
			delete(p.byCID, id)
		}
	}
}

// popDeletedLocked forgets the oldest deleted pod, unless it came back, and
// returns it when it was forgotten.
func (p *Pods) popDeletedLocked() *Pod {
	d := p.deleted[0]
	p.deleted[0] = deletion{}
	p.deleted = p.deleted[1:]
	if p.byUID[d.uid] != d.pod {
		return nil
	}
	p.unindexLocked(d.pod)
	p.nDeleted--
	return d.pod
}

// sweep forgets deleted pods past their grace.
func (p *Pods) sweep(now time.Time) {
	p.mu.Lock()
	var expired []*Pod
	for len(p.deleted) > 0 && !now.Before(p.deleted[0].at.Add(p.opts.DeletedTTL)) {
		if e := p.popDeletedLocked(); e != nil {
			expired = append(expired, e)
		}
	}
	// Re-slicing from the front never frees the array.
	if cap(p.deleted) > 64 && len(p.deleted) < cap(p.deleted)/4 {
		p.deleted = append([]deletion(nil), p.deleted...)
	}
	subs := p.subs
	p.mu.Unlock()
	for _, e := range expired {
		notify(subs, Event{Type: PodExpired, Pod: e})
	}
}

func (p *Pods) sweepLoop(ctx context.Context) {
	t := time.NewTicker(min(max(p.opts.DeletedTTL/8, 50*time.Millisecond), 5*time.Second))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			p.sweep(p.now())
		}
	}
}
