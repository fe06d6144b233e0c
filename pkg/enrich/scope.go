package enrich

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"go.uber.org/zap"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/errnowatch/errnowatch/pkg/kube"
)

// Scope chooses the pods the agent watches. A pod is in scope when it is in
// one of Namespaces (any, when empty), matches Selector (any, when empty),
// is in none of ExcludeNamespaces and does not match ExcludeSelector.
//
// The scope is compiled into the sensor's cgroup sets, so that the kernel
// drops what is out of scope at its earliest check. With Namespaces or
// Selector the sensor counts only the cgroups of pods in scope (host
// processes and pods the API has not named yet are out); with only
// exclusions it counts everything but the cgroups of excluded pods.
//
// The sets hold every cgroup of a pod, its own (the pod-level cgroup) and
// its containers'. In include mode the kernel also takes a cgroup the set
// does not name yet as in scope when its parent or grandparent is: kubelet
// makes the pod cgroup before the sandbox, so by the time a container
// starts its pod's cgroup is in the set, and its first syscalls count
// without waiting for the watch below to see the container's cgroup.
type Scope struct {
	Namespaces        []string
	ExcludeNamespaces []string
	// Selector and ExcludeSelector are label selectors in kubectl's syntax
	// ("app=web,tier!=cache", "team in (a,b)").
	Selector        string
	ExcludeSelector string
}

// Empty tells whether the scope is everything.
func (s Scope) Empty() bool {
	return len(s.Namespaces) == 0 && len(s.ExcludeNamespaces) == 0 && s.Selector == "" && s.ExcludeSelector == ""
}

// LabelKeys returns the label keys the selectors read. The pod store keeps
// only filtered labels, so these must be added to its filter
// (kube.LabelFilter.With) for the selectors to see them.
func (s Scope) LabelKeys() ([]string, error) {
	m, err := s.compile()
	if err != nil {
		return nil, err
	}
	var keys []string
	for _, sel := range []labels.Selector{m.sel, m.exSel} {
		if sel == nil {
			continue
		}
		reqs, _ := sel.Requirements()
		for _, r := range reqs {
			if !slices.Contains(keys, r.Key()) {
				keys = append(keys, r.Key())
			}
		}
	}
	return keys, nil
}

type matcher struct {
	ns, exNS   map[string]bool
	sel, exSel labels.Selector
}

func (s Scope) compile() (*matcher, error) {
	m := &matcher{}
	set := func(l []string) map[string]bool {
		if len(l) == 0 {
			return nil
		}
		out := map[string]bool{}
		for _, n := range l {
			out[n] = true
		}
		return out
	}
	m.ns, m.exNS = set(s.Namespaces), set(s.ExcludeNamespaces)
	var err error
	if s.Selector != "" {
		if m.sel, err = labels.Parse(s.Selector); err != nil {
			return nil, fmt.Errorf("scope: label selector %q: %w", s.Selector, err)
		}
	}
	if s.ExcludeSelector != "" {
		if m.exSel, err = labels.Parse(s.ExcludeSelector); err != nil {
			return nil, fmt.Errorf("scope: exclude label selector %q: %w", s.ExcludeSelector, err)
		}
	}
	return m, nil
}

// includes tells whether the scope lists what is in (rather than only what
// is out).
func (m *matcher) includes() bool { return m.ns != nil || m.sel != nil }

func (m *matcher) match(p *kube.Pod) bool {
	if m.ns != nil && !m.ns[p.Namespace] {
		return false
	}
	if m.exNS[p.Namespace] {
		return false
	}
	set := labels.Set(p.Labels)
	if m.sel != nil && !m.sel.Matches(set) {
		return false
	}
	if m.exSel != nil && m.exSel.Matches(set) {
		return false
	}
	return true
}

// noCgroup is a cgroup id that never exists (the root cgroup's id is 1): an
// include set of only this keeps the sensor in include mode while no pod is
// in scope, where an empty set would mean "everything".
const noCgroup = 0

// scopeKeeper keeps the sensor's cgroup sets equal to the cgroups of the
// pods in scope, as pods (from the informer) and cgroups (from the pod
// cgroup watch) come and go.
type scopeKeeper struct {
	log    *zap.Logger
	m      *matcher
	pods   *kube.Pods
	filter CgroupFilter
	tree   *podCgroups
	dirty  chan struct{}
	st     *counters

	mu               sync.Mutex
	include, exclude []uint64
	done             bool // the sets above are in the sensor
}

func newScopeKeeper(opts Options, log *zap.Logger, st *counters) (*scopeKeeper, error) {
	m, err := opts.Scope.compile()
	if err != nil {
		return nil, err
	}
	s := &scopeKeeper{log: log, m: m, pods: opts.Pods, filter: opts.Filter, dirty: make(chan struct{}, 1), st: st}
	s.tree, err = newPodCgroups(opts.Cgroups, log, s.changed)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// changed asks for the sets to be compiled again; many changes coalesce
// into one compile.
func (s *scopeKeeper) changed() {
	select {
	case s.dirty <- struct{}{}:
	default:
	}
}

func (s *scopeKeeper) run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.tree.run(ctx)
	}()
	defer wg.Wait()
	s.apply()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.dirty:
			s.apply()
		}
	}
}

// apply compiles the scope against the pod cgroups now on the node and
// hands the sets to the sensor, which writes only what changed.
func (s *scopeKeeper) apply() {
	var include, exclude []uint64
	incl := s.m.includes()
	for uid, ids := range s.tree.snapshot() {
		pod, known := s.pods.ByUID(uid)
		in := known && s.m.match(pod)
		switch {
		case incl && in:
			include = append(include, ids...)
		case !incl && known && !in:
			// In exclude mode a pod the API has not named yet is counted:
			// nothing says it is excluded.
			exclude = append(exclude, ids...)
		}
	}
	if incl && len(include) == 0 {
		include = []uint64{noCgroup}
	}
	slices.Sort(include)
	slices.Sort(exclude)
	s.mu.Lock()
	same := s.done && slices.Equal(include, s.include) && slices.Equal(exclude, s.exclude)
	s.mu.Unlock()
	if same {
		return
	}
	if err := s.filter.SetCgroups(include, exclude); err != nil {
		s.st.scopeErrors.Add(1)
		s.log.Error("apply scope to the sensor's cgroup filter", zap.Error(err))
		return
	}
	s.st.scopeUpdates.Add(1)
	s.mu.Lock()
	s.include, s.exclude, s.done = include, exclude, true
	s.mu.Unlock()
}

func (s *scopeKeeper) applied() (include, exclude []uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.include), slices.Clone(s.exclude)
}
