package cgroup_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/errnowatch/errnowatch/pkg/cgroup"
	"github.com/errnowatch/errnowatch/pkg/cgroup/cgrouptest"
	"go.uber.org/zap/zaptest"
	"golang.org/x/sys/unix"
)

// waitFor is generous: it bounds how long a test waits for the resolver to
// see an inotify event, it does not assert how fast that is.
const waitFor = 10 * time.Second

func newResolver(t *testing.T, opts cgroup.Options) *cgroup.Resolver {
	t.Helper()
	opts.Logger = zaptest.NewLogger(t)
	r, err := cgroup.NewResolver(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Error(err)
		}
	})
	return r
}

// run runs r until the test ends.
func run(t *testing.T, r *cgroup.Resolver) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", waitFor, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// known waits until the map (not the miss path) has id at path.
func known(t *testing.T, r *cgroup.Resolver, id uint64, path string) {
	t.Helper()
	eventually(t, "resolver never saw "+path, func() bool {
		p, removed, ok := r.Known(id)
		return ok && !removed && p == path
	})
}

func kubeletContainer() string {
	return cgrouptest.KubeletPath("systemd", "containerd", "burstable", cgrouptest.PodUID(), cgrouptest.ContainerID())
}

func TestResolverWalk(t *testing.T) {
	d := cgrouptest.New(t, kubeletContainer())
	r := newResolver(t, cgroup.Options{})

	p, removed, ok := r.Known(d.ID)
	if !ok || removed || p != d.Rel {
		t.Fatalf("after the first walk, Known(%d) = %q, %v, %v; want %q", d.ID, p, removed, ok, d.Rel)
	}
	info, ok := r.LookupInfo(d.ID)
	if !ok || info != cgroup.Parse(d.Rel) || !info.IsContainer || info.Runtime != "containerd" {
		t.Errorf("LookupInfo(%d) = %+v, %v; want the parse of %s", d.ID, info, ok, d.Rel)
	}
	rootID, err := cgroup.ID(r.Mount())
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := r.Lookup(rootID); !ok || p != "/" {
		t.Errorf("Lookup(root id %d) = %q, %v; want /", rootID, p, ok)
	}
	st := r.Stats()
	if st.Hits != 2 || st.Misses != 0 || st.Resolved != 0 || st.Rescans != 1 {
		t.Errorf("Stats = %+v; want 2 hits and the one walk", st)
	}
	// Other tests may make and remove cgroups meanwhile, so the counts are
	// lower bounds: the test's own tree and the root.
	if st.Cgroups < 6 || st.Watches < 6 {
		t.Errorf("Stats = %+v; want at least the test's 5 cgroups and the root known and watched", st)
	}
	for dir := d.Path; dir != d.Mount; dir = filepath.Dir(dir) {
		id, err := cgroup.ID(dir)
		if err != nil {
			t.Fatal(err)
		}
		if p, _, ok := r.Known(id); !ok || d.Mount+p != dir {
			t.Errorf("Known(%d) = %q, %v; want %s", id, p, ok, dir)
		}
	}
}

func TestResolverFollowsCreateAndRemove(t *testing.T) {
	var skew atomic.Int64
	r := newResolver(t, cgroup.Options{Grace: time.Hour})
	r.SetClock(func() time.Time { return time.Now().Add(time.Duration(skew.Load())) })
	run(t, r)

	// Made after the walk, all levels at once: the deeper ones exist
	// before a watch on their parent does.
	d := cgrouptest.New(t, kubeletContainer())
	known(t, r, d.ID, d.Rel)
	for dir := filepath.Dir(d.Path); dir != d.Mount; dir = filepath.Dir(dir) {
		id, err := cgroup.ID(dir)
		if err != nil {
			t.Fatal(err)
		}
		known(t, r, id, strings.TrimPrefix(dir, d.Mount))
	}
	if st := r.Stats(); st.Resolved != 0 || st.Events == 0 {
		t.Errorf("Stats = %+v; the watches, not the miss path, should have found the cgroups", st)
	}

	d.Remove()
	eventually(t, "resolver never saw the removal", func() bool {
		_, removed, _ := r.Known(d.ID)
		return removed
	})
	if p, ok := r.Lookup(d.ID); !ok || p != d.Rel {
		t.Errorf("Lookup(%d) within the grace period = %q, %v; want %q", d.ID, p, ok, d.Rel)
	}
	if st := r.Stats(); st.Removed == 0 {
		t.Errorf("Stats = %+v; want the removed cgroup counted", st)
	}

	skew.Store(int64(time.Hour + time.Second))
	r.Sweep()
	if _, _, ok := r.Known(d.ID); ok {
		t.Fatalf("cgroup %d still known after its grace period", d.ID)
	}
	before := r.Stats()
	if p, ok := r.Lookup(d.ID); ok {
		t.Fatalf("Lookup(%d) of a cgroup removed past its grace = %q", d.ID, p)
	}
	if _, ok := r.Lookup(d.ID); ok {
		t.Fatal("second Lookup of a removed cgroup succeeded")
	}
	after := r.Stats()
	if after.Misses-before.Misses != 2 || after.NegativeHits-before.NegativeHits != 1 {
		t.Errorf("Stats went from %+v to %+v; want 2 misses, the second from the negative cache", before, after)
	}
}

func TestResolverKeepsBoundedRemoved(t *testing.T) {
	r := newResolver(t, cgroup.Options{MaxRemoved: 2})
	run(t, r)
	podDir := cgrouptest.New(t, cgrouptest.KubeletPath("cgroupfs", "containerd", "besteffort", cgrouptest.PodUID(), ""))
	var cs []*cgrouptest.Dir
	for range 3 {
		c := podDir.Mkdir(cgrouptest.ContainerID())
		known(t, r, c.ID, c.Rel)
		cs = append(cs, c)
	}
	for _, c := range cs {
		c.Remove()
		// The resolver watches the whole mount, so other packages'
		// tests removing their cgroups at the same time can evict
		// this one from the two kept before the check sees it: gone
		// from the map means it was removed and then evicted.
		eventually(t, "resolver never saw the removal of "+c.Rel, func() bool {
			_, removed, ok := r.Known(c.ID)
			return removed || !ok
		})
	}
	if _, _, ok := r.Known(cs[0].ID); ok {
		t.Errorf("the oldest of 3 removed cgroups is still kept with MaxRemoved 2")
	}
	// Other tests' cgroups may be among the removed, so no exact count.
	if st := r.Stats(); st.Removed > 2 || st.Removed == 0 {
		t.Errorf("Stats = %+v; want 1 or 2 removed", st)
	}
}

func TestResolverMissOpensByID(t *testing.T) {
	r := newResolver(t, cgroup.Options{})
	if !r.Stats().ByHandle {
		t.Fatal("running as root, cgroups should open by id")
	}
	// No Run: only the miss path can find a cgroup made now.
	d := cgrouptest.New(t, kubeletContainer())
	if _, _, ok := r.Known(d.ID); ok {
		t.Fatal("known without Run")
	}
	if p, ok := r.Lookup(d.ID); !ok || p != d.Rel {
		t.Fatalf("Lookup(%d) = %q, %v; want %q", d.ID, p, ok, d.Rel)
	}
	if st := r.Stats(); st.Resolved != 1 || st.Rescans != 1 {
		t.Errorf("Stats = %+v; want 1 resolved without a walk", st)
	}
	if p, ok := r.Lookup(d.ID); !ok || p != d.Rel {
		t.Fatalf("second Lookup(%d) = %q, %v", d.ID, p, ok)
	}
	if st := r.Stats(); st.Hits != 1 {
		t.Errorf("Stats = %+v; the second lookup should hit the map", st)
	}

	gone := cgrouptest.New(t, "gone")
	gone.Remove()
	if p, ok := r.Lookup(gone.ID); ok {
		t.Fatalf("Lookup of removed, never seen cgroup %d = %q", gone.ID, p)
	}
	if st := r.Stats(); st.Negative != 1 {
		t.Errorf("Stats = %+v; want the dead id in the negative cache", st)
	}
}

func TestResolverMissWalks(t *testing.T) {
	r := newResolver(t, cgroup.Options{MinRescanInterval: time.Nanosecond})
	r.DisableByHandle()
	d := cgrouptest.New(t, kubeletContainer())
	if p, ok := r.Lookup(d.ID); !ok || p != d.Rel {
		t.Fatalf("Lookup(%d) = %q, %v; want %q", d.ID, p, ok, d.Rel)
	}
	if st := r.Stats(); st.Resolved != 1 || st.Rescans != 2 {
		t.Errorf("Stats = %+v; want 1 resolved by a second walk", st)
	}
	gone := cgrouptest.New(t, "gone")
	gone.Remove()
	for range 2 {
		if _, ok := r.Lookup(gone.ID); ok {
			t.Fatal("removed cgroup found")
		}
	}
	if st := r.Stats(); st.Rescans != 3 || st.NegativeHits != 1 {
		t.Errorf("Stats = %+v; want one more walk, then the negative cache", st)
	}
}

func TestResolverMissWalksRateLimited(t *testing.T) {
	r := newResolver(t, cgroup.Options{MinRescanInterval: time.Hour})
	r.DisableByHandle()
	a := cgrouptest.New(t, "a")
	if _, ok := r.Lookup(a.ID); !ok {
		t.Fatal("first miss should walk and find it")
	}
	b := cgrouptest.New(t, "b")
	if _, ok := r.Lookup(b.ID); ok {
		t.Fatal("second miss within MinRescanInterval walked")
	}
	st := r.Stats()
	if st.Rescans != 2 || st.Negative != 0 {
		t.Errorf("Stats = %+v; want no second walk, and no negative entry for an id that was not looked for", st)
	}
}

func TestResolverResync(t *testing.T) {
	r := newResolver(t, cgroup.Options{})
	d := cgrouptest.New(t, kubeletContainer())
	if err := r.Resync(); err != nil {
		t.Fatal(err)
	}
	if p, removed, ok := r.Known(d.ID); !ok || removed || p != d.Rel {
		t.Fatalf("after Resync, Known(%d) = %q, %v, %v", d.ID, p, removed, ok)
	}
	d.Remove()
	if err := r.Resync(); err != nil {
		t.Fatal(err)
	}
	if _, removed, ok := r.Known(d.ID); !ok || !removed {
		t.Fatalf("after Resync of a removed cgroup, Known = removed %v, ok %v; want kept as removed", removed, ok)
	}
}

// TestResolverConcurrent looks cgroups up from several goroutines while they
// come and go; run it with -race.
func TestResolverConcurrent(t *testing.T) {
	r := newResolver(t, cgroup.Options{})
	run(t, r)
	podDir := cgrouptest.New(t, cgrouptest.KubeletPath("cgroupfs", "crio", "burstable", cgrouptest.PodUID(), ""))
	type job struct {
		d    *cgrouptest.Dir
		done *sync.WaitGroup
	}
	jobs := make(chan job, 64)
	var wg sync.WaitGroup
	var bad atomic.Int64
	for range 4 {
		wg.Go(func() {
			for j := range jobs {
				if p, ok := r.Lookup(j.d.ID); !ok || p != j.d.Rel {
					bad.Add(1)
				}
				j.done.Done()
			}
		})
	}
	var last []*cgrouptest.Dir
	for range 40 {
		c := podDir.Mkdir("crio-" + cgrouptest.ContainerID())
		var done sync.WaitGroup
		done.Add(2)
		jobs <- job{c, &done}
		jobs <- job{c, &done}
		// Looked up once, by the map or by the miss path: from now on
		// it must stay resolvable through the grace period.
		done.Wait()
		c.Remove()
		last = append(last, c)
	}
	close(jobs)
	wg.Wait()
	if n := bad.Load(); n != 0 {
		t.Errorf("%d lookups of existing cgroups failed", n)
	}
	for _, c := range last {
		if p, ok := r.Lookup(c.ID); !ok || p != c.Rel {
			t.Errorf("Lookup(%d) of a cgroup removed within the grace period = %q, %v", c.ID, p, ok)
		}
	}
}

func TestResolverRunEndsOnClose(t *testing.T) {
	r, err := cgroup.NewResolver(cgroup.Options{Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- r.Run(context.Background()) }()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	var nilR *cgroup.Resolver
	if err := nilR.Close(); err != nil {
		t.Errorf("Close on nil: %v", err)
	}
}

// TestCgroupRenameRefused checks what the resolver builds on: a cgroup v2
// directory cannot be renamed, so an id keeps its path for life.
func TestCgroupRenameRefused(t *testing.T) {
	a := cgrouptest.New(t, "a")
	err := os.Rename(a.Path, filepath.Join(filepath.Dir(a.Path), "renamed"))
	if !errors.Is(err, unix.EPERM) {
		t.Fatalf("rename of a cgroup v2 directory: %v; want EPERM (if renames work now, the resolver must follow IN_MOVED events)", err)
	}
}
