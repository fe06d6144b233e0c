package cgroup

import (
	"time"

	"github.com/prometheus/procfs"
)

// Hooks for the external tests, which need cgrouptest (an importer of this
// package) and so cannot live inside it.

func PickV2Mount(mounts []*procfs.MountInfo) (string, error) { return pickV2Mount(mounts) }

// Known looks id up in the map only, without the miss path, so tests can see
// what the watches did.
func (r *Resolver) Known(id uint64) (path string, removed, ok bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	e, ok := r.byID[id]
	if !ok {
		return "", false, false
	}
	return e.info.Path, !e.removedAt.IsZero(), true
}

// Forget drops id from the map, as if it had never been seen.
func (r *Resolver) Forget(id uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e, ok := r.byID[id]; ok {
		if !e.removedAt.IsZero() {
			r.nRemoved--
		} else if r.byPath[e.info.Path] == id {
			delete(r.byPath, e.info.Path)
		}
		delete(r.byID, id)
	}
	delete(r.negative, id)
}

func (r *Resolver) SetClock(now func() time.Time) { r.now = now }
func (r *Resolver) Sweep()                        { r.sweep(r.now()) }
func (r *Resolver) Resync() error                 { return r.resync() }
func (r *Resolver) DisableByHandle()              { r.byHandle.Store(false) }

// Walk walks the whole hierarchy without watches and returns how many
// cgroups it found.
func (r *Resolver) Walk() (int, error) {
	got, err := r.walk(r.mount, false)
	return len(got), err
}
