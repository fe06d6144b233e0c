package enrich

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"go.uber.org/zap"

	"github.com/errnowatch/errnowatch/pkg/cgroup"
)

// CgroupWatch is a CgroupSource that also announces cgroups as they come and
// go; *cgroup.Resolver is one. The scope needs it.
type CgroupWatch interface {
	CgroupSource
	Subscribe(buffer int) *cgroup.Subscription
	Cgroups() map[uint64]cgroup.Info
}

// podCgroupEvents bounds the events the scope's subscription holds. A pod
// brings a handful of cgroups; this covers a burst of several hundred pods
// (or a resolver resync after an inotify overflow) before a reload is
// needed.
const podCgroupEvents = 4096

// podCgroups keeps, for the scope, every cgroup inside a pod on this node,
// by pod UID, current as kubelet and the runtime make and remove them.
//
// The sensor's exclude set matches a task's own cgroup only, so an
// excluded pod must have every cgroup below it in the set. An include set
// also matches a cgroup's parent and grandparent, so a new container of a
// pod in scope counts before its cgroup is added; adding it makes the
// kernel's check one lookup instead of two. The cgroups come from the
// resolver, which already watches the whole hierarchy with inotify: one
// subscription to its create and remove events, so the node pays for one
// set of watches. When the subscription falls behind and drops events, the
// whole set is read again from the resolver's map (a copy, no walk).
type podCgroups struct {
	log      *zap.Logger
	src      CgroupWatch
	sub      *cgroup.Subscription
	onChange func()

	// reloads counts how often the set was read again after lost events.
	reloads atomic.Uint64

	mu    sync.Mutex
	byID  map[uint64]string // cgroup id -> pod UID
	byUID map[string]map[uint64]bool
}

// newPodCgroups subscribes to src and reads the pod cgroups it knows; run
// keeps them current. It fails when src cannot announce cgroups.
func newPodCgroups(src CgroupSource, log *zap.Logger, onChange func()) (*podCgroups, error) {
	return newPodCgroupsBuffered(src, podCgroupEvents, log, onChange)
}

func newPodCgroupsBuffered(src CgroupSource, buffer int, log *zap.Logger, onChange func()) (*podCgroups, error) {
	w, ok := src.(CgroupWatch)
	if !ok {
		return nil, errors.New("enrich: a scope needs a cgroup source that announces new cgroups, such as *cgroup.Resolver")
	}
	t := &podCgroups{log: log, src: w, onChange: onChange}
	// Subscribe before reading the map, so that nothing made in between
	// is missed; an event for what the map already shows changes nothing.
	t.sub = w.Subscribe(buffer)
	t.load()
	return t, nil
}

// snapshot returns the pod cgroups by pod UID.
func (t *podCgroups) snapshot() map[string][]uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string][]uint64, len(t.byUID))
	for uid, ids := range t.byUID {
		out[uid] = make([]uint64, 0, len(ids))
		for id := range ids {
			out[uid] = append(out[uid], id)
		}
	}
	return out
}

// run follows the resolver's events until ctx is done, then ends the
// subscription.
func (t *podCgroups) run(ctx context.Context) {
	defer t.sub.Close()
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-t.sub.Events():
			if t.apply(ev) {
				t.onChange()
			}
		case <-t.sub.Lost():
			t.reloads.Add(1)
			t.log.Warn("scope: cgroup events were dropped, reading all pod cgroups again",
				zap.Uint64("dropped", t.sub.Dropped()))
			t.drain()
			t.load()
			t.onChange()
		}
	}
}

// drain discards the events queued now. The map read after it is newer
// than all of them; events queued later are newer than the drain and
// replaying them on that map is harmless.
func (t *podCgroups) drain() {
	for {
		select {
		case <-t.sub.Events():
		default:
			return
		}
	}
}

// load replaces the set with the pod cgroups in the resolver's map.
func (t *podCgroups) load() {
	all := t.src.Cgroups()
	byID := map[uint64]string{}
	byUID := map[string]map[uint64]bool{}
	for id, info := range all {
		if !info.InPod {
			continue
		}
		byID[id] = info.PodUID
		if byUID[info.PodUID] == nil {
			byUID[info.PodUID] = map[uint64]bool{}
		}
		byUID[info.PodUID][id] = true
	}
	t.mu.Lock()
	t.byID, t.byUID = byID, byUID
	t.mu.Unlock()
}

// apply adds or drops the cgroup of ev and tells whether the set changed.
func (t *podCgroups) apply(ev cgroup.Event) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	old, had := t.byID[ev.ID]
	switch ev.Op {
	case cgroup.Created:
		if !ev.Info.InPod {
			if had {
				t.dropLocked(ev.ID, old)
			}
			return had
		}
		if had && old == ev.Info.PodUID {
			return false
		}
		if had {
			t.dropLocked(ev.ID, old)
		}
		t.byID[ev.ID] = ev.Info.PodUID
		if t.byUID[ev.Info.PodUID] == nil {
			t.byUID[ev.Info.PodUID] = map[uint64]bool{}
		}
		t.byUID[ev.Info.PodUID][ev.ID] = true
		return true
	case cgroup.Removed:
		if had {
			t.dropLocked(ev.ID, old)
		}
		return had
	}
	return false
}

func (t *podCgroups) dropLocked(id uint64, uid string) {
	delete(t.byID, id)
	if ids := t.byUID[uid]; ids != nil {
		delete(ids, id)
		if len(ids) == 0 {
			delete(t.byUID, uid)
		}
	}
}

// size returns how many pod cgroups are known.
func (t *podCgroups) size() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.byID)
}
