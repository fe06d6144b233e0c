package enrich

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/errnowatch/errnowatch/pkg/cgroup"
	"github.com/errnowatch/errnowatch/pkg/cgroup/cgrouptest"
)

// podCgroupsRig runs a real resolver on this host's cgroup v2 hierarchy.
func podCgroupsRig(t *testing.T) (*cgroup.Resolver, context.Context) {
	t.Helper()
	res, err := cgroup.NewResolver(cgroup.Options{Logger: zaptest.NewLogger(t), ResyncInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = res.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		res.Close()
	})
	return res, ctx
}

func runTree(t *testing.T, ctx context.Context, tree *podCgroups) {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		tree.run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

// waitPod waits until the tree holds exactly ids for pod uid; the wait
// bounds the test, it does not measure anything.
func waitPod(t *testing.T, tree *podCgroups, uid string, ids ...uint64) {
	t.Helper()
	slices.Sort(ids)
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := tree.snapshot()[uid]
		slices.Sort(got)
		if slices.Equal(got, ids) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pod %s has cgroups %v, want %v", uid, got, ids)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// The scope's pod cgroups follow the resolver's events: a pod's own cgroup
// and its containers come and go, and host cgroups never enter.
func TestPodCgroupsFollowResolver(t *testing.T) {
	res, ctx := podCgroupsRig(t)
	var changes atomic.Int64
	tree, err := newPodCgroups(res, zaptest.NewLogger(t), func() { changes.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	runTree(t, ctx, tree)
	if st := res.Stats(); st.Subscribers != 1 {
		t.Errorf("resolver has %d subscribers, want 1", st.Subscribers)
	}

	uid := cgrouptest.PodUID()
	podPath := cgrouptest.KubeletPath(cgroup.DriverSystemd, cgroup.RuntimeContainerd, cgroup.QoSBestEffort, uid, "")
	pod := cgrouptest.New(t, podPath)
	c1 := pod.Mkdir("cri-containerd-" + cgrouptest.ContainerID() + ".scope")
	c2 := pod.Mkdir("cri-containerd-" + cgrouptest.ContainerID() + ".scope")
	host := cgrouptest.New(t, "system.slice/errnowatch-podcgroups.service")
	waitPod(t, tree, uid, pod.ID, c1.ID, c2.ID)
	if changes.Load() == 0 {
		t.Error("onChange never called")
	}
	for u, ids := range tree.snapshot() {
		if slices.Contains(ids, host.ID) {
			t.Errorf("host cgroup %d is in the pod cgroups of %s", host.ID, u)
		}
	}

	c1.Remove()
	waitPod(t, tree, uid, pod.ID, c2.ID)
}

// When the subscription drops events (a burst larger than its buffer), the
// scope reads every pod cgroup again and ends up with all of them.
func TestPodCgroupsReloadAfterDrops(t *testing.T) {
	res, ctx := podCgroupsRig(t)
	tree, err := newPodCgroupsBuffered(res, 1, zaptest.NewLogger(t), func() {})
	if err != nil {
		t.Fatal(err)
	}
	uid := cgrouptest.PodUID()
	pod := cgrouptest.New(t, cgrouptest.KubeletPath(cgroup.DriverCgroupfs, cgroup.RuntimeContainerd, cgroup.QoSBurstable, uid, ""))
	var ids []uint64
	for range 4 {
		ids = append(ids, pod.Mkdir(cgrouptest.ContainerID()).ID)
	}
	deadline := time.Now().Add(10 * time.Second)
	for tree.sub.Dropped() < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("subscription with a 1-event buffer dropped %d of 5 events", tree.sub.Dropped())
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Only now does the scope read its events: the loss is repaired.
	runTree(t, ctx, tree)
	waitPod(t, tree, uid, append(ids, pod.ID)...)
	if tree.reloads.Load() == 0 {
		t.Error("no reload after dropped events")
	}
}

func TestPodCgroupsNeedAWatch(t *testing.T) {
	if _, err := newPodCgroups(lookupOnly{}, zaptest.NewLogger(t), func() {}); err == nil {
		t.Error("a scope on a cgroup source that announces nothing was accepted")
	}
}

type lookupOnly struct{}

func (lookupOnly) LookupInfo(uint64) (cgroup.Info, bool) { return cgroup.Info{}, false }
