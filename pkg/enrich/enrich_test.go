package enrich_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/errnowatch/errnowatch/pkg/cgroup"
	"github.com/errnowatch/errnowatch/pkg/cgroup/cgrouptest"
	"github.com/errnowatch/errnowatch/pkg/enrich"
)

// Pods created after the agent started, in every cgroup layout kubelet makes
// (systemd and cgroupfs drivers, containerd, CRI-O and Docker, all QoS
// classes): every failure record and count names the pod, its container and
// its workload, and the counts stay exact.
func TestEnrichLayouts(t *testing.T) {
	r := newRig(t, rigOpts{})
	ctx := context.Background()
	d, err := r.c.AppsV1().Deployments(r.ns).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "shop"},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "shop"}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "shop"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "i"}}}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rs, err := r.c.AppsV1().ReplicaSets(r.ns).Create(ctx, &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: "shop-6b7d9", OwnerReferences: []metav1.OwnerReference{
			*metav1.NewControllerRef(d, appsv1.SchemeGroupVersion.WithKind("Deployment"))}},
		Spec: appsv1.ReplicaSetSpec{Selector: d.Spec.Selector, Template: d.Spec.Template},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rsRef := metav1.NewControllerRef(rs, appsv1.SchemeGroupVersion.WithKind("ReplicaSet"))

	qos := []string{cgroup.QoSGuaranteed, cgroup.QoSBurstable, cgroup.QoSBestEffort}
	i := 0
	for _, driver := range []string{cgroup.DriverSystemd, cgroup.DriverCgroupfs} {
		for _, runtime := range []string{cgroup.RuntimeContainerd, cgroup.RuntimeCRIO, cgroup.RuntimeDocker} {
			q := qos[i%len(qos)]
			i++
			t.Run(driver+"-"+runtime+"-"+q, func(t *testing.T) {
				name := fmt.Sprintf("shop-6b7d9-%d", i)
				p := r.pod(name, map[string]string{"app": "shop", "pod-template-hash": "6b7d9", "noise": "x"}, rsRef, "app", "sidecar")
				id := cgrouptest.ContainerID()
				r.status(p, map[string]string{"app": statusID(runtime, id), "sidecar": statusID(runtime, cgrouptest.ContainerID())}, nil)
				cg := r.cgroup(cgrouptest.KubeletPath(driver, runtime, q, string(p.UID), id))
				c := startChild(t, cg, 0)
				c.fail(50)
				r.waitCounted(cg.ID, 50)
				share, n := coverage(t, r, cg.ID, want{ns: r.ns, pod: name, uid: string(p.UID), container: "app",
					containerID: id, image: "registry.example/app:1.0", workload: "Deployment/shop"})
				recs, _ := r.data(cg.ID)
				if l := recs[0].Meta.Labels; len(l) != 1 || l["app"] != "shop" {
					t.Errorf("labels = %v, want only app=shop", l)
				}
				t.Logf("coverage %.0f%% of %d records", 100*share, n)
			})
		}
	}
}

// Failures at the very start of a container, before kubelet reported its
// status: the pod is known by the UID in the cgroup path, the records and
// counts are held, and once the status names the container they come out
// with it.
func TestEnrichBeforeContainerStatus(t *testing.T) {
	r := newRig(t, rigOpts{hold: 20 * time.Second})
	p := r.pod("early", nil, nil, "app")
	eventually(t, "pod in the informer", func() bool { _, ok := r.pods.ByUID(string(p.UID)); return ok })
	id := cgrouptest.ContainerID()
	cg := r.cgroup(cgrouptest.KubeletPath(cgroup.DriverSystemd, cgroup.RuntimeContainerd, cgroup.QoSBestEffort, string(p.UID), id))
	c := startChild(t, cg, 100)
	// Held: the pod is known, its container is not yet.
	eventually(t, "held failures", func() bool { return r.e.Held(cg.ID) })
	if m, complete := r.e.Lookup(cg.ID); complete || m.Pod != "early" || m.Container != "" {
		t.Errorf("before status: meta %+v complete %v, want pod early without container", m, complete)
	}
	if n := r.counted(cg.ID); n != 0 {
		t.Errorf("%d failures came out before the status named the container", n)
	}
	r.status(p, map[string]string{"app": statusID(cgroup.RuntimeContainerd, id)}, nil)
	c.fail(10)
	r.waitCounted(cg.ID, 110)
	share, n := coverage(t, r, cg.ID, want{ns: r.ns, pod: "early", uid: string(p.UID), container: "app",
		containerID: id, image: "registry.example/app:1.0", workload: "Pod/early"})
	t.Logf("coverage %.0f%% of %d records (first failures before the container status)", 100*share, n)
	if r.e.Held(cg.ID) {
		t.Errorf("cgroup %d still held after its status came: %+v", cg.ID, r.e.Stats())
	}
}

// Failures of a pod the agent's informer has not seen yet (it is behind the
// API server): held until the informer catches up.
func TestEnrichBeforeInformer(t *testing.T) {
	r := newRig(t, rigOpts{hold: 20 * time.Second, lateInformer: true})
	p := r.pod("late", nil, nil, "app")
	id := cgrouptest.ContainerID()
	r.status(p, map[string]string{"app": statusID(cgroup.RuntimeCRIO, id)}, nil)
	cg := r.cgroup(cgrouptest.KubeletPath(cgroup.DriverCgroupfs, cgroup.RuntimeCRIO, cgroup.QoSBurstable, string(p.UID), id))
	c := startChild(t, cg, 100)
	eventually(t, "held failures", func() bool { return r.e.Held(cg.ID) })
	if m, complete := r.e.Lookup(cg.ID); complete || !m.Unresolved || m.PodUID != string(p.UID) || m.ContainerID != id {
		t.Errorf("before the informer: meta %+v complete %v", m, complete)
	}
	r.startPods()
	c.fail(10)
	r.waitCounted(cg.ID, 110)
	share, n := coverage(t, r, cg.ID, want{ns: r.ns, pod: "late", uid: string(p.UID), container: "app",
		containerID: id, image: "registry.example/app:1.0", workload: "Pod/late"})
	t.Logf("coverage %.0f%% of %d records (pod not in the informer at first)", 100*share, n)
}

// A pod the API never names: after the hold, its data goes out with what the
// path says, flagged unresolved; nothing is lost.
func TestEnrichUnresolvedAfterHold(t *testing.T) {
	r := newRig(t, rigOpts{hold: 500 * time.Millisecond})
	uid, id := cgrouptest.PodUID(), cgrouptest.ContainerID()
	cg := r.cgroup(cgrouptest.KubeletPath(cgroup.DriverCgroupfs, cgroup.RuntimeContainerd, cgroup.QoSBestEffort, uid, id))
	startChild(t, cg, 40)
	r.waitCounted(cg.ID, 40)
	recs, counts := r.data(cg.ID)
	for _, m := range append(metas(recs), cmetas(counts)...) {
		if !m.Unresolved || m.PodUID != uid || m.ContainerID != id || m.Pod != "" || m.Host || !strings.HasSuffix(m.CgroupPath, id) {
			t.Errorf("meta %+v, want unresolved pod %s container %s", m, uid, id)
		}
	}
	if st := r.e.Stats(); st.Records.Unresolved == 0 || st.Counts.Unresolved == 0 {
		t.Errorf("stats = %+v, want unresolved records and counts", st)
	}
}

func metas(recs []enrich.Record) []*enrich.Meta {
	var out []*enrich.Meta
	for _, r := range recs {
		out = append(out, r.Meta)
	}
	return out
}

func cmetas(counts []enrich.Count) []*enrich.Meta {
	var out []*enrich.Meta
	for _, c := range counts {
		out = append(out, c.Meta)
	}
	return out
}

// A container restarts with a new id: the new cgroup resolves to the same
// container, and the old one still does (its id is the previous one).
func TestEnrichContainerRestart(t *testing.T) {
	r := newRig(t, rigOpts{})
	p := r.pod("restarts", nil, nil, "app")
	first, second := cgrouptest.ContainerID(), cgrouptest.ContainerID()
	r.status(p, map[string]string{"app": statusID(cgroup.RuntimeContainerd, first)}, nil)
	cg1 := r.cgroup(cgrouptest.KubeletPath(cgroup.DriverSystemd, cgroup.RuntimeContainerd, cgroup.QoSGuaranteed, string(p.UID), first))
	c1 := startChild(t, cg1, 0)
	c1.fail(20)
	r.waitCounted(cg1.ID, 20)

	r.status(p, map[string]string{"app": statusID(cgroup.RuntimeContainerd, second)},
		map[string]string{"app": statusID(cgroup.RuntimeContainerd, first)})
	cg2 := r.cgroup(cgrouptest.KubeletPath(cgroup.DriverSystemd, cgroup.RuntimeContainerd, cgroup.QoSGuaranteed, string(p.UID), second))
	c2 := startChild(t, cg2, 0)
	c2.fail(30)
	c1.fail(5) // the old container's last gasps
	r.waitCounted(cg2.ID, 30)
	r.waitCounted(cg1.ID, 25)
	for _, x := range []struct {
		cg *cgrouptest.Dir
		id string
	}{{cg1, first}, {cg2, second}} {
		share, n := coverage(t, r, x.cg.ID, want{ns: r.ns, pod: "restarts", uid: string(p.UID), container: "app",
			containerID: x.id, image: "registry.example/app:1.0"})
		t.Logf("container %s…: coverage %.0f%% of %d records", x.id[:8], 100*share, n)
	}
}

// A pod deleted from the API while its process still fails, for 30 s: every
// record and count keeps the pod's metadata (the deleted-pod cache keeps it
// 60 s by default).
func TestEnrichAfterPodDeletion(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOpts{})
	p := r.pod("doomed", map[string]string{"app": "doomed"}, nil, "app")
	id := cgrouptest.ContainerID()
	r.status(p, map[string]string{"app": statusID(cgroup.RuntimeDocker, id)}, nil)
	cg := r.cgroup(cgrouptest.KubeletPath(cgroup.DriverCgroupfs, cgroup.RuntimeDocker, cgroup.QoSBurstable, string(p.UID), id))
	c := startChild(t, cg, 0)
	c.fail(10)
	r.waitCounted(cg.ID, 10)
	r.deletePod(p)
	eventually(t, "deletion seen", func() bool { gp, ok := r.pods.ByUID(string(p.UID)); return ok && gp.Deleted })
	made := uint64(10)
	for end := time.Now().Add(30 * time.Second); time.Now().Before(end); {
		c.fail(10)
		made += 10
		time.Sleep(time.Second)
	}
	r.waitCounted(cg.ID, made)
	share, n := coverage(t, r, cg.ID, want{ns: r.ns, pod: "doomed", uid: string(p.UID), container: "app",
		containerID: id, image: "registry.example/app:1.0"})
	t.Logf("coverage %.0f%% of %d records over 30 s after deletion", 100*share, n)
}

// A process outside kubepods is a host process.
func TestEnrichHostProcess(t *testing.T) {
	r := newRig(t, rigOpts{})
	cg := r.cgroup("system.slice/errnowatch-host.service")
	startChild(t, cg, 25)
	r.waitCounted(cg.ID, 25)
	recs, counts := r.data(cg.ID)
	for _, m := range append(metas(recs), cmetas(counts)...) {
		if !m.Host || m.Pod != "" || m.Unresolved || m.CgroupPath != cg.Rel || m.Node != r.node {
			t.Errorf("host meta %+v", m)
		}
	}
	if len(recs) == 0 {
		t.Error("no records")
	}
}

// 200 pods created and deleted while their processes fail: every failure of
// every one is counted exactly and carries its pod.
func TestEnrichChurn(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOpts{})
	const pods, workers, each = 200, 8, 20
	type made struct {
		cg  *cgrouptest.Dir
		pod *corev1.Pod
		id  string
	}
	var mu sync.Mutex
	var all []made
	work := make(chan int)
	var wg sync.WaitGroup
	runtimes := []string{cgroup.RuntimeContainerd, cgroup.RuntimeCRIO, cgroup.RuntimeDocker}
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				rt := runtimes[i%3]
				p := r.pod(fmt.Sprintf("churn-%03d", i), nil, nil, "app")
				id := cgrouptest.ContainerID()
				r.status(p, map[string]string{"app": statusID(rt, id)}, nil)
				cg := r.cgroup(cgrouptest.KubeletPath(cgroup.DriverSystemd, rt, cgroup.QoSBestEffort, string(p.UID), id))
				if err := runChild(t, cg, each); err != nil {
					t.Errorf("child %d: %v", i, err)
				}
				r.deletePod(p)
				cg.Remove()
				mu.Lock()
				all = append(all, made{cg, p, id})
				mu.Unlock()
			}
		}()
	}
	for i := 0; i < pods; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	var ok, n int
	for _, m := range all {
		r.waitCounted(m.cg.ID, each)
		share, k := coverage(t, r, m.cg.ID, want{ns: r.ns, pod: m.pod.Name, uid: string(m.pod.UID), container: "app",
			containerID: m.id, image: "registry.example/app:1.0"})
		ok += int(share*float64(k) + 0.5)
		n += k
	}
	t.Logf("coverage %.1f%% of %d records from %d churned pods; stats %+v", 100*float64(ok)/float64(n), n, pods, r.e.Stats())
}

func TestEnrichMetrics(t *testing.T) {
	r := newRig(t, rigOpts{})
	p := r.pod("metered", nil, nil, "app")
	id := cgrouptest.ContainerID()
	r.status(p, map[string]string{"app": statusID(cgroup.RuntimeContainerd, id)}, nil)
	cg := r.cgroup(cgrouptest.KubeletPath(cgroup.DriverCgroupfs, cgroup.RuntimeContainerd, cgroup.QoSBestEffort, string(p.UID), id))
	startChild(t, cg, 10)
	r.waitCounted(cg.ID, 10)

	reg := prometheus.NewPedanticRegistry()
	if err := r.e.Register(reg); err != nil {
		t.Fatal(err)
	}
	st := r.e.Stats()
	if st.Records.Pod == 0 || st.Counts.Pod == 0 || st.Cached == 0 || st.Pods.Pods != 1 {
		t.Errorf("stats = %+v", st)
	}
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			key := f.GetName()
			for _, l := range m.GetLabel() {
				key += "," + l.GetName() + "=" + l.GetValue()
			}
			got[key] = m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	for key, v := range map[string]float64{
		"errnowatch_enrich_events_total,kind=record,result=pod":  float64(st.Records.Pod),
		"errnowatch_enrich_events_total,kind=count,result=pod":   float64(st.Counts.Pod),
		"errnowatch_enrich_events_total,kind=record,result=host": float64(st.Records.Host),
		"errnowatch_enrich_cache_entries,cache=pods":             1,
		"errnowatch_enrich_pending":                              0,
	} {
		g, ok := got[key]
		// Host counters move on between Stats and Gather (the host keeps
		// failing syscalls); pod ones must match.
		if !ok || (!strings.Contains(key, "host") && g != v) || (strings.Contains(key, "host") && g < v) {
			t.Errorf("%s = %v (present %v), want %v", key, g, ok, v)
		}
	}
	if len(got) < 25 {
		t.Errorf("only %d series: %v", len(got), got)
	}
}

// The pod's sandbox (pause) container has a container cgroup that no status
// names: once every container has reported its id, its failures go out at
// once with the pod and no container, not held and not unresolved.
func TestEnrichSandboxContainer(t *testing.T) {
	r := newRig(t, rigOpts{hold: 20 * time.Second})
	p := r.pod("sandboxed", nil, nil, "app")
	id, sandbox := cgrouptest.ContainerID(), cgrouptest.ContainerID()
	r.status(p, map[string]string{"app": statusID(cgroup.RuntimeContainerd, id)}, nil)
	eventually(t, "status in the informer", func() bool { _, ok := r.pods.ByContainerID(id); return ok })
	cg := r.cgroup(cgrouptest.KubeletPath(cgroup.DriverSystemd, cgroup.RuntimeContainerd, cgroup.QoSBestEffort, string(p.UID), sandbox))
	startChild(t, cg, 30)
	// A hold would last the rig's 20 s: polled every 10 ms, it cannot
	// pass unseen.
	held := false
	eventually(t, "the sandbox's 30 failures enriched", func() bool {
		held = held || r.e.Held(cg.ID)
		return r.counted(cg.ID) >= 30
	})
	r.waitCounted(cg.ID, 30)
	if held {
		t.Errorf("sandbox data was held: %+v", r.e.Stats())
	}
	share, n := coverage(t, r, cg.ID, want{ns: r.ns, pod: "sandboxed", uid: string(p.UID), containerID: sandbox})
	t.Logf("coverage %.0f%% of %d records (sandbox container)", 100*share, n)
}
