package enrich

import (
	"context"
	"errors"
	"io/fs"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
	"go.uber.org/zap"

	"github.com/errnowatch/errnowatch/pkg/cgroup"
)

// podCgroups keeps, for the scope, every cgroup inside a pod on this node,
// by pod UID, current as kubelet and the runtime make and remove them.
//
// The sensor's exclude set matches a task's own cgroup only, so an
// excluded pod must have every cgroup below it in the set. An include set
// also matches a cgroup's parent and grandparent, so a new container of a
// pod in scope counts before its cgroup is added; adding it makes the
// kernel's check one lookup instead of two. The cgroup resolver
// answers ids but does not announce new cgroups, so the scope watches with
// inotify itself, and only where pods appear: the v2 root, kubelet's
// kubepods trees (root, QoS and pod levels and everything inside pods), and
// any directory made after the start (a kubepods tree can be made below
// it). The rest of the host's cgroups (system.slice, user.slice) are walked
// once per resync and not watched. The cost is one inotify watch per
// directory watched, on top of the resolver's.
type podCgroups struct {
	log      *zap.Logger
	mount    string
	w        *fsnotify.Watcher
	resync   time.Duration
	onChange func()

	mu     sync.Mutex
	byPath map[string]podCgroup
	byUID  map[string]map[uint64]bool
}

type podCgroup struct {
	id  uint64
	uid string
}

func newPodCgroups(mount string, log *zap.Logger, resync time.Duration, onChange func()) (*podCgroups, error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, errors.New("scope: watch pod cgroups: " + err.Error() + "; raise fs.inotify.max_user_instances")
	}
	t := &podCgroups{
		log: log, mount: filepath.Clean(mount), w: w, resync: resync, onChange: onChange,
		byPath: map[string]podCgroup{}, byUID: map[string]map[uint64]bool{},
	}
	if err := t.walk(t.mount, false); err != nil {
		w.Close()
		return nil, err
	}
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

// run follows the watches until ctx is done, then closes them.
func (t *podCgroups) run(ctx context.Context) {
	defer t.w.Close()
	tick := time.NewTicker(t.resync)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-t.w.Events:
			if !ok {
				return
			}
			t.handle(ev)
		case err, ok := <-t.w.Errors:
			if !ok {
				return
			}
			t.log.Warn("scope: pod cgroup watch, walking again", zap.Error(err))
			t.rewalk()
		case <-tick.C:
			t.rewalk()
		}
	}
}

func (t *podCgroups) handle(ev fsnotify.Event) {
	switch {
	case ev.Has(fsnotify.Create):
		// Walk it: what was made inside before its watch was set has no
		// event of its own.
		if err := t.walk(ev.Name, true); err != nil {
			return
		}
	case ev.Has(fsnotify.Remove), ev.Has(fsnotify.Rename):
		rel := t.rel(ev.Name)
		t.mu.Lock()
		changed := false
		for p, c := range t.byPath {
			if p == rel || strings.HasPrefix(p, rel+"/") {
				t.dropLocked(p, c)
				changed = true
			}
		}
		t.mu.Unlock()
		if changed {
			t.onChange()
		}
	}
	// Writes are kernfs reporting cgroup.events and the like.
}

// rewalk walks everything again and replaces what is known. Changes made
// during the walk are in the event queue and are handled after it.
func (t *podCgroups) rewalk() {
	found, err := t.scan(t.mount, false)
	if err != nil {
		t.log.Warn("scope: walk cgroups", zap.Error(err))
		return
	}
	t.mu.Lock()
	t.byPath = map[string]podCgroup{}
	t.byUID = map[string]map[uint64]bool{}
	for rel, c := range found {
		t.addLocked(rel, c)
	}
	t.mu.Unlock()
	t.onChange()
}

// walk adds the pod cgroups at and below dir.
func (t *podCgroups) walk(dir string, watchAll bool) error {
	found, err := t.scan(dir, watchAll)
	if err != nil {
		return err
	}
	added := false
	t.mu.Lock()
	for rel, c := range found {
		if old, ok := t.byPath[rel]; !ok || old.id != c.id {
			if ok {
				t.dropLocked(rel, old)
			}
			t.addLocked(rel, c)
			added = true
		}
	}
	t.mu.Unlock()
	if added {
		t.onChange()
	}
	return nil
}

// scan returns the pod cgroups at and below dir. It watches a directory
// before reading it, so that a child made meanwhile is either read or
// reported. watchAll watches every directory (a tree made after the
// start); otherwise only the root and kubepods trees are.
func (t *podCgroups) scan(dir string, watchAll bool) (map[string]podCgroup, error) {
	found := map[string]podCgroup{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == dir {
				return err
			}
			return nil
		}
		if !d.IsDir() {
			return nil
		}
		rel := t.rel(p)
		info := cgroup.Parse(rel)
		if watchAll || p == t.mount || info.Driver != "" {
			if err := t.w.Add(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				t.log.Debug("scope: watch cgroup", zap.String("cgroup", rel), zap.Error(err))
			}
		}
		if !info.InPod {
			return nil
		}
		id, err := cgroup.ID(p)
		if err != nil {
			// Removed meanwhile.
			return fs.SkipDir
		}
		found[rel] = podCgroup{id: id, uid: info.PodUID}
		return nil
	})
	return found, err
}

func (t *podCgroups) addLocked(rel string, c podCgroup) {
	t.byPath[rel] = c
	if t.byUID[c.uid] == nil {
		t.byUID[c.uid] = map[uint64]bool{}
	}
	t.byUID[c.uid][c.id] = true
}

func (t *podCgroups) dropLocked(rel string, c podCgroup) {
	delete(t.byPath, rel)
	if ids := t.byUID[c.uid]; ids != nil {
		delete(ids, c.id)
		if len(ids) == 0 {
			delete(t.byUID, c.uid)
		}
	}
}

func (t *podCgroups) rel(abs string) string {
	if abs == t.mount {
		return "/"
	}
	return "/" + strings.TrimPrefix(strings.TrimPrefix(abs, t.mount), "/")
}

// size returns how many pod cgroups are known.
func (t *podCgroups) size() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.byPath)
}
