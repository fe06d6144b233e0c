package cgroup

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// Options tunes a Resolver. The zero value is usable.
type Options struct {
	// Logger gets the resolver's warnings; nil discards them.
	Logger *zap.Logger
	// Mount is the cgroup v2 mount point; "" finds it with FindV2Mount.
	Mount string
	// Grace is how long a removed cgroup stays resolvable, for records and
	// counts that arrive after it is gone. Default 60 s.
	Grace time.Duration
	// MaxRemoved bounds how many removed cgroups are kept; the oldest go
	// first. Default 4096.
	MaxRemoved int
	// NegativeTTL is how long an id that resolved to nothing is remembered
	// as such. Default 60 s.
	NegativeTTL time.Duration
	// MaxNegative bounds the negative cache. Default 4096.
	MaxNegative int
	// MinRescanInterval is the least time between two full walks made to
	// answer a miss, when ids cannot be opened directly (no
	// CAP_DAC_READ_SEARCH). Default 250 ms.
	MinRescanInterval time.Duration
	// ResyncInterval is how often Run walks the whole hierarchy again, to
	// repair whatever the watches missed (refused watches). Default
	// 5 min; negative turns it off.
	ResyncInterval time.Duration
}

func (o *Options) setDefaults() {
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Grace <= 0 {
		o.Grace = 60 * time.Second
	}
	if o.MaxRemoved <= 0 {
		o.MaxRemoved = 4096
	}
	if o.NegativeTTL <= 0 {
		o.NegativeTTL = 60 * time.Second
	}
	if o.MaxNegative <= 0 {
		o.MaxNegative = 4096
	}
	if o.MinRescanInterval <= 0 {
		o.MinRescanInterval = 250 * time.Millisecond
	}
	if o.ResyncInterval == 0 {
		o.ResyncInterval = 5 * time.Minute
	}
}

// Stats are a Resolver's counters, for metrics.
type Stats struct {
	// Cgroups is how many live cgroups the resolver knows.
	Cgroups int
	// Removed is how many removed cgroups it keeps for the grace period.
	Removed int
	// Negative is how many ids are in the negative cache.
	Negative int
	// Watches is how many inotify watches are set.
	Watches int
	// Hits are lookups answered from the map.
	Hits uint64
	// Resolved are lookups that missed the map and were answered by the
	// miss path.
	Resolved uint64
	// Misses are lookups that found nothing; NegativeHits of them were
	// answered by the negative cache without a syscall.
	Misses       uint64
	NegativeHits uint64
	// Rescans are full walks of the hierarchy (start, resync, overflow,
	// misses without open_by_handle_at).
	Rescans uint64
	// Events are inotify events handled; Overflows are inotify queue
	// overflows, each followed by a full walk.
	Events    uint64
	Overflows uint64
	// WatchErrors are watches the kernel refused (mostly
	// fs.inotify.max_user_watches).
	WatchErrors uint64
	// ByHandle says that misses are answered with open_by_handle_at rather
	// than walks.
	ByHandle bool
	// Subscribers are the open subscriptions; EventDrops the create and
	// remove events that a full subscription did not take.
	Subscribers int
	EventDrops  uint64
}

// Resolver maps cgroup v2 ids to paths (and their Info) for the whole
// hierarchy, and keeps the map current while Run runs. Lookups are safe from
// any goroutine.
type Resolver struct {
	log     *zap.Logger
	opts    Options
	mount   string
	mountFD int
	watcher *fsnotify.Watcher
	now     func() time.Time

	mu       sync.RWMutex
	byID     map[uint64]*entry
	byPath   map[string]uint64 // live cgroups only
	removed  []removal         // oldest first; may hold stale items
	nRemoved int
	negative map[uint64]time.Time // id -> expiry
	// seq orders observations against changes: a walk that started before
	// a cgroup was removed must not bring it back, and a resync must not
	// drop a cgroup that an event added while it walked.
	seq uint64

	// subs are the subscriptions; guarded by mu, so that events go out in
	// the order the map changes.
	subs map[*Subscription]struct{}

	rescanMu   sync.Mutex
	lastRescan time.Time

	// fdMu keeps Close from closing mountFD (whose number the kernel may
	// then hand to another file) under a miss that is opening by id.
	fdMu        sync.RWMutex
	byHandle    atomic.Bool
	closed      atomic.Bool
	watchWarned atomic.Bool
	closeOnce   sync.Once

	hits, resolved, misses, negativeHits  atomic.Uint64
	rescans, events, overflows, watchErrs atomic.Uint64
	eventDrops                            atomic.Uint64
}

type entry struct {
	info      Info
	seq       uint64    // when last seen alive
	removedAt time.Time // zero while alive
	removeSeq uint64
}

type removal struct {
	id  uint64
	at  time.Time
	seq uint64
}

type found struct {
	rel string
	id  uint64
}

// NewResolver walks the v2 hierarchy and sets up its watches, so lookups work
// as soon as it returns; Run keeps the map current. Close releases it.
func NewResolver(opts Options) (*Resolver, error) {
	opts.setDefaults()
	if opts.Mount == "" {
		m, err := FindV2Mount()
		if err != nil {
			return nil, err
		}
		opts.Mount = m
	}
	mount := filepath.Clean(opts.Mount)
	mountFD, err := unix.Open(mount, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open cgroup mount %s: %w", mount, err)
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		unix.Close(mountFD)
		return nil, fmt.Errorf("watch cgroups: %w", err)
	}
	r := &Resolver{
		log:      opts.Logger,
		opts:     opts,
		mount:    mount,
		mountFD:  mountFD,
		watcher:  w,
		now:      time.Now,
		byID:     map[uint64]*entry{},
		byPath:   map[string]uint64{},
		negative: map[uint64]time.Time{},
		subs:     map[*Subscription]struct{}{},
	}
	rootID, err := ID(mount)
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("cgroup mount %s: %w", mount, err)
	}
	// Find out once whether misses can open cgroups by id.
	if _, err := openByID(mountFD, rootID); err != nil {
		r.log.Info("cgroup ids cannot be opened directly, misses fall back to walks; grant CAP_DAC_READ_SEARCH to avoid them",
			zap.Error(err))
	} else {
		r.byHandle.Store(true)
	}
	start := time.Now()
	if err := r.resync(); err != nil {
		r.Close()
		return nil, err
	}
	st := r.Stats()
	r.log.Info("cgroup resolver ready", zap.String("mount", mount), zap.Int("cgroups", st.Cgroups),
		zap.Int("watches", st.Watches), zap.Duration("took", time.Since(start)))
	return r, nil
}

// Mount returns the cgroup v2 mount point the resolver works on.
func (r *Resolver) Mount() string { return r.mount }

// Lookup returns the path of the cgroup with id, relative to the
// hierarchy's root. A removed cgroup is found for the grace period.
func (r *Resolver) Lookup(id uint64) (path string, ok bool) {
	info, ok := r.LookupInfo(id)
	return info.Path, ok
}

// LookupInfo is Lookup with the path already parsed.
func (r *Resolver) LookupInfo(id uint64) (Info, bool) {
	now := r.now()
	r.mu.RLock()
	e, ok := r.byID[id]
	var info Info
	if ok {
		info = e.info
	}
	exp, neg := r.negative[id]
	r.mu.RUnlock()
	if ok {
		r.hits.Add(1)
		return info, true
	}
	if neg && now.Before(exp) {
		r.negativeHits.Add(1)
		r.misses.Add(1)
		return Info{}, false
	}
	if info, ok := r.resolveMiss(id); ok {
		r.resolved.Add(1)
		return info, true
	}
	r.misses.Add(1)
	return Info{}, false
}

// resolveMiss looks for a cgroup that the map does not know yet, usually one
// made so recently that its inotify event is still queued.
func (r *Resolver) resolveMiss(id uint64) (Info, bool) {
	if r.closed.Load() {
		return Info{}, false
	}
	r.mu.RLock()
	seq := r.seq
	r.mu.RUnlock()
	if r.byHandle.Load() {
		p, err := r.openByID(id)
		switch {
		case err == nil:
			if rel, ok := r.rel(p); ok {
				r.mu.Lock()
				r.upsertLocked(rel, id, seq)
				info, ok := r.infoLocked(id)
				r.mu.Unlock()
				return info, ok
			}
			// A cgroup outside the part of the hierarchy this mount shows.
			r.addNegative(id)
			return Info{}, false
		case errors.Is(err, fsnotify.ErrClosed):
			return Info{}, false
		case errors.Is(err, unix.ESTALE) || errors.Is(err, unix.ENOENT):
			r.addNegative(id)
			return Info{}, false
		case errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) || errors.Is(err, unix.EOPNOTSUPP):
			r.byHandle.Store(false)
			r.log.Warn("cgroup ids can no longer be opened directly, misses fall back to walks", zap.Error(err))
		default:
			r.log.Debug("open cgroup by id", zap.Uint64("cgroup_id", id), zap.Error(err))
		}
	}
	// Walk, at most once per MinRescanInterval across all callers; a caller
	// that finds a walk running or too recent gets a miss rather than a wait.
	if !r.rescanMu.TryLock() {
		return Info{}, false
	}
	defer r.rescanMu.Unlock()
	now := time.Now()
	if now.Sub(r.lastRescan) < r.opts.MinRescanInterval {
		return Info{}, false
	}
	r.lastRescan = now
	r.rescans.Add(1)
	got, err := r.walk(r.mount, false)
	if err != nil {
		r.log.Warn("walk cgroups", zap.Error(err))
		return Info{}, false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, f := range got {
		r.upsertLocked(f.rel, f.id, seq)
	}
	if info, ok := r.infoLocked(id); ok {
		return info, true
	}
	// The id was seen before this walk started, so it is gone for good.
	r.addNegativeLocked(id)
	return Info{}, false
}

func (r *Resolver) openByID(id uint64) (string, error) {
	r.fdMu.RLock()
	defer r.fdMu.RUnlock()
	if r.closed.Load() {
		return "", fmt.Errorf("open cgroup %d: %w", id, fsnotify.ErrClosed)
	}
	return openByID(r.mountFD, id)
}

func (r *Resolver) infoLocked(id uint64) (Info, bool) {
	e, ok := r.byID[id]
	if !ok {
		return Info{}, false
	}
	return e.info, true
}

func (r *Resolver) addNegative(id uint64) {
	r.mu.Lock()
	r.addNegativeLocked(id)
	r.mu.Unlock()
}

func (r *Resolver) addNegativeLocked(id uint64) {
	now := r.now()
	if len(r.negative) >= r.opts.MaxNegative {
		for k, exp := range r.negative {
			if !now.Before(exp) {
				delete(r.negative, k)
			}
		}
		// Still full of live entries: drop arbitrary ones. Ids are never
		// reused, so forgetting one costs one syscall, not a wrong answer.
		for k := range r.negative {
			if len(r.negative) < r.opts.MaxNegative {
				break
			}
			delete(r.negative, k)
		}
	}
	r.negative[id] = now.Add(r.opts.NegativeTTL)
}

// upsertLocked records that the cgroup id lives at rel, as observed by
// something that started at sequence seq.
func (r *Resolver) upsertLocked(rel string, id uint64, seq uint64) {
	e, ok := r.byID[id]
	if ok && !e.removedAt.IsZero() && e.removeSeq > seq {
		// Removed after the observation started: the observation is stale.
		return
	}
	r.seq++
	if old, ok := r.byPath[rel]; ok && old != id {
		// Only one live cgroup can have a path: the old one was removed
		// and its event is missing or still queued.
		r.markRemovedLocked(old)
	}
	if !ok {
		e = &entry{}
		r.byID[id] = e
		delete(r.negative, id)
	}
	created := !ok || e.info.Path != rel || !e.removedAt.IsZero()
	if e.info.Path != rel {
		e.info = Parse(rel)
	}
	if !e.removedAt.IsZero() {
		// Marked removed by a resync or a path clash that raced with a
		// later sighting of it alive.
		e.removedAt = time.Time{}
		r.nRemoved--
	}
	e.seq = r.seq
	r.byPath[rel] = id
	if created {
		r.publishLocked(Event{Op: Created, ID: id, Info: e.info})
	}
}

func (r *Resolver) markRemovedLocked(id uint64) {
	e, ok := r.byID[id]
	if !ok || !e.removedAt.IsZero() {
		return
	}
	r.seq++
	if r.byPath[e.info.Path] == id {
		delete(r.byPath, e.info.Path)
	}
	e.removedAt = r.now()
	e.removeSeq = r.seq
	r.publishLocked(Event{Op: Removed, ID: id, Info: e.info})
	r.removed = append(r.removed, removal{id: id, at: e.removedAt, seq: e.removeSeq})
	r.nRemoved++
	for r.nRemoved > r.opts.MaxRemoved && len(r.removed) > 0 {
		r.popRemovedLocked()
	}
}

// popRemovedLocked forgets the oldest removed cgroup, unless it came back.
func (r *Resolver) popRemovedLocked() {
	it := r.removed[0]
	r.removed[0] = removal{}
	r.removed = r.removed[1:]
	if e, ok := r.byID[it.id]; ok && !e.removedAt.IsZero() && e.removeSeq == it.seq {
		delete(r.byID, it.id)
		r.nRemoved--
	}
}

// sweep forgets removed cgroups past their grace period and expired negative
// entries.
func (r *Resolver) sweep(now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for len(r.removed) > 0 && !now.Before(r.removed[0].at.Add(r.opts.Grace)) {
		r.popRemovedLocked()
	}
	// Re-slicing from the front never frees the array; copy when it is
	// mostly dead.
	if cap(r.removed) > 64 && len(r.removed) < cap(r.removed)/4 {
		r.removed = append([]removal(nil), r.removed...)
	}
	for id, exp := range r.negative {
		if !now.Before(exp) {
			delete(r.negative, id)
		}
	}
}

// Run keeps the map current until ctx is done or the resolver is closed.
func (r *Resolver) Run(ctx context.Context) error {
	sweepEvery := min(max(r.opts.Grace/4, 100*time.Millisecond), 5*time.Second)
	sweep := time.NewTicker(sweepEvery)
	defer sweep.Stop()
	var resync <-chan time.Time
	if r.opts.ResyncInterval > 0 {
		t := time.NewTicker(r.opts.ResyncInterval)
		defer t.Stop()
		resync = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-r.watcher.Events:
			if !ok {
				return nil
			}
			r.events.Add(1)
			r.handle(ev)
		case err, ok := <-r.watcher.Errors:
			if !ok {
				return nil
			}
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				r.overflows.Add(1)
				r.log.Warn("inotify queue overflowed, walking all cgroups again; raise fs.inotify.max_queued_events if this repeats")
			} else {
				r.log.Warn("cgroup watch", zap.Error(err))
			}
			if err := r.resync(); err != nil {
				r.log.Warn("walk cgroups", zap.Error(err))
			}
		case <-sweep.C:
			r.sweep(r.now())
		case <-resync:
			if err := r.resync(); err != nil {
				r.log.Warn("walk cgroups", zap.Error(err))
			}
		}
	}
}

func (r *Resolver) handle(ev fsnotify.Event) {
	rel, ok := r.rel(ev.Name)
	if !ok {
		return
	}
	switch {
	case ev.Has(fsnotify.Create):
		// A new cgroup, or a renamed one arriving. Walk it: cgroups made
		// inside it before its watch was set have no event of their own.
		r.mu.RLock()
		seq := r.seq
		r.mu.RUnlock()
		got, err := r.walk(ev.Name, true)
		if err != nil {
			// Gone again already; its removal event follows.
			return
		}
		r.mu.Lock()
		for _, f := range got {
			r.upsertLocked(f.rel, f.id, seq)
		}
		r.mu.Unlock()
	case ev.Has(fsnotify.Remove), ev.Has(fsnotify.Rename):
		// cgroup v2 refuses renames, so a move is only seen if the mount
		// is not cgroup2 after all; it is a removal all the same.
		r.mu.Lock()
		if id, ok := r.byPath[rel]; ok {
			r.markRemovedLocked(id)
		}
		r.mu.Unlock()
	}
	// Writes are kernfs reporting cgroup.events, memory.events and the like:
	// not a change of the hierarchy.
}

// resync walks the whole hierarchy, adds what is new, sets missing watches
// and marks as removed what is no longer there.
func (r *Resolver) resync() error {
	r.mu.RLock()
	seq := r.seq
	r.mu.RUnlock()
	r.rescans.Add(1)
	got, err := r.walk(r.mount, true)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	seen := make(map[uint64]bool, len(got))
	for _, f := range got {
		seen[f.id] = true
		r.upsertLocked(f.rel, f.id, seq)
	}
	for id, e := range r.byID {
		// Entries seen after the walk started are newer than the walk.
		if e.removedAt.IsZero() && e.seq <= seq && !seen[id] {
			r.markRemovedLocked(id)
		}
	}
	return nil
}

// walk returns the cgroups at and below dir. With watch, it sets a watch on
// each directory before reading it, so that a child made during the walk is
// either read or reported.
func (r *Resolver) walk(dir string, watch bool) ([]found, error) {
	var got []found
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == dir {
				return err
			}
			// Removed while walking.
			return nil
		}
		if !d.IsDir() {
			return nil
		}
		if watch {
			r.addWatch(p)
		}
		id, err := ID(p)
		if err != nil {
			if p == dir {
				return err
			}
			return fs.SkipDir
		}
		if rel, ok := r.rel(p); ok {
			got = append(got, found{rel: rel, id: id})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("walk %s: %w", dir, err)
	}
	return got, nil
}

func (r *Resolver) addWatch(dir string) {
	err := r.watcher.Add(dir)
	if err == nil || errors.Is(err, unix.ENOENT) || errors.Is(err, fsnotify.ErrClosed) {
		return
	}
	r.watchErrs.Add(1)
	if r.watchWarned.CompareAndSwap(false, true) {
		r.log.Warn("cannot watch cgroup directory; new cgroups below it are found on lookup only. "+
			"If this is ENOSPC, raise fs.inotify.max_user_watches",
			zap.String("cgroup", dir), zap.Error(err))
	}
}

// rel turns an absolute directory below the mount into a cgroup path.
func (r *Resolver) rel(abs string) (string, bool) {
	if abs == r.mount {
		return "/", true
	}
	if rest, ok := strings.CutPrefix(abs, r.mount); ok && strings.HasPrefix(rest, "/") {
		return rest, true
	}
	return "", false
}

// Stats returns the resolver's counters.
func (r *Resolver) Stats() Stats {
	r.mu.RLock()
	s := Stats{
		Cgroups:     len(r.byID) - r.nRemoved,
		Removed:     r.nRemoved,
		Negative:    len(r.negative),
		Subscribers: len(r.subs),
	}
	r.mu.RUnlock()
	if !r.closed.Load() {
		s.Watches = len(r.watcher.WatchList())
	}
	s.Hits = r.hits.Load()
	s.Resolved = r.resolved.Load()
	s.Misses = r.misses.Load()
	s.NegativeHits = r.negativeHits.Load()
	s.Rescans = r.rescans.Load()
	s.Events = r.events.Load()
	s.Overflows = r.overflows.Load()
	s.WatchErrors = r.watchErrs.Load()
	s.ByHandle = r.byHandle.Load()
	s.EventDrops = r.eventDrops.Load()
	return s
}

// Close stops the watches and releases the mount. Run returns once the
// watches are closed. Close is safe to call more than once and on nil.
func (r *Resolver) Close() error {
	if r == nil {
		return nil
	}
	var err error
	r.closeOnce.Do(func() {
		r.closed.Store(true)
		err = r.watcher.Close()
		r.fdMu.Lock()
		defer r.fdMu.Unlock()
		if cerr := unix.Close(r.mountFD); err == nil {
			err = cerr
		}
	})
	return err
}

// EventOp says what happened to a cgroup.
type EventOp uint8

// The operations an Event reports.
const (
	// Created: the cgroup is new to the resolver (made, or found by a walk
	// or a miss), or came back at a new path.
	Created EventOp = iota + 1
	// Removed: the cgroup is gone; Info is what it was.
	Removed
)

// Event is a change of the resolver's map, as subscribers see it.
type Event struct {
	Op   EventOp
	ID   uint64
	Info Info
}

// Subscription receives the resolver's create and remove events. Delivery
// never blocks the resolver: when Events is full, the event is dropped,
// counted, and Lost is signalled. A subscriber that sees Lost must drain
// Events and read the whole map again with Cgroups, which is then at least
// as new as every event it drained (see Resolver.Subscribe).
type Subscription struct {
	r       *Resolver
	events  chan Event
	lost    chan struct{}
	dropped atomic.Uint64
	once    sync.Once
}

// Events delivers the events in the order the map changed.
func (s *Subscription) Events() <-chan Event { return s.events }

// Lost is signalled (once per burst) after an event was dropped.
func (s *Subscription) Lost() <-chan struct{} { return s.lost }

// Dropped counts the events this subscription did not take.
func (s *Subscription) Dropped() uint64 { return s.dropped.Load() }

// Close ends the subscription; no event is sent after it returns. Events is
// not closed, so a reader selecting on it never sees a zero Event.
func (s *Subscription) Close() {
	s.once.Do(func() {
		s.r.mu.Lock()
		delete(s.r.subs, s)
		s.r.mu.Unlock()
	})
}

// Subscribe returns a subscription whose Events holds up to buffer events
// (at least 1). Subscribe first and read Cgroups after: every change after
// Subscribe returns is then either in the snapshot or delivered (or Lost
// is signalled), and applying an event to a snapshot that already has it
// changes nothing.
func (r *Resolver) Subscribe(buffer int) *Subscription {
	s := &Subscription{r: r, events: make(chan Event, max(buffer, 1)), lost: make(chan struct{}, 1)}
	r.mu.Lock()
	r.subs[s] = struct{}{}
	r.mu.Unlock()
	return s
}

// publishLocked hands ev to every subscriber without waiting: a subscriber
// that is behind loses it, and is told so, rather than stall the resolver
// (and with it every Lookup).
func (r *Resolver) publishLocked(ev Event) {
	for s := range r.subs {
		select {
		case s.events <- ev:
		default:
			s.dropped.Add(1)
			r.eventDrops.Add(1)
			select {
			case s.lost <- struct{}{}:
			default:
			}
		}
	}
}

// Cgroups returns the live cgroups the resolver knows, by id.
func (r *Resolver) Cgroups() map[uint64]Info {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make(map[uint64]Info, len(r.byPath))
	for _, id := range r.byPath {
		out[id] = r.byID[id].info
	}
	return out
}
