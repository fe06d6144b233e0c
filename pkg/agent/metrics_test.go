package agent

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	promtestutil "github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/errnowatch/errnowatch/internal/testenv"
	"github.com/errnowatch/errnowatch/pkg/enrich"
	"github.com/errnowatch/errnowatch/pkg/kube"
	"github.com/errnowatch/errnowatch/pkg/sensor"
)

// count is one failing (syscall, errno) of a cgroup with its workload.
func count(meta *enrich.Meta, errno uint16, n uint64) enrich.Count {
	return enrich.Count{Count: sensor.Count{Key: sensor.Key{Syscall: 2, Errno: errno}, Count: n}, Meta: meta}
}

func pod(ns, name, uid string) *enrich.Meta {
	return &enrich.Meta{Node: "n1", Namespace: ns, Pod: name, PodUID: uid}
}

// gatherPods registers p in a fresh registry, as the agent does, and
// returns errnowatch_pod_failures_total by "namespace/pod" and the series
// gauge by kind.
func gatherPods(t *testing.T, p *podFailures) (map[string]float64, map[string]float64) {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(p)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	failures, series := map[string]float64{}, map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			l := map[string]string{}
			for _, lp := range m.GetLabel() {
				l[lp.GetName()] = lp.GetValue()
			}
			switch mf.GetName() {
			case "errnowatch_pod_failures_total":
				failures[l["namespace"]+"/"+l["pod"]] = m.GetCounter().GetValue()
			case "errnowatch_pod_failure_series":
				series[l["kind"]] = m.GetGauge().GetValue()
			default:
				t.Errorf("unexpected metric %s", mf.GetName())
			}
		}
	}
	return failures, series
}

// Past MaxSeries pods, failures are counted in the _other series; nothing
// is lost, so the pod series add up to every failure observed, and
// successes are not failures.
func TestPodFailuresBoundFoldsIntoOther(t *testing.T) {
	p := newPodFailures(PodMetrics{Enabled: true, MaxSeries: 3}, nil)
	var b enrich.Batch
	var total uint64
	for i := range 6 {
		n := uint64(10 * (i + 1))
		b.Counts = append(b.Counts, count(pod("shop", fmt.Sprintf("web-%d", i), fmt.Sprintf("uid-%d", i)), 13, n))
		total += n
	}
	b.Counts = append(b.Counts, count(pod("shop", "web-0", "uid-0"), 0, 1000)) // a success
	p.observe(&b, time.Now())

	failures, series := gatherPods(t, p)
	want := map[string]float64{"shop/web-0": 10, "shop/web-1": 20, "shop/web-2": 30, "_other/_other": 40 + 50 + 60}
	if !mapsEqual(failures, want) {
		t.Errorf("pod failures = %v, want %v", failures, want)
	}
	var sum float64
	for _, v := range failures {
		sum += v
	}
	if sum != float64(total) {
		t.Errorf("pod series add up to %v, want every failure (%d)", sum, total)
	}
	if series["exported"] != 3 || series["bound"] != 3 {
		t.Errorf("series gauge = %v, want 3 exported of 3", series)
	}

	// A pod with a series keeps counting into it; a folded one stays folded
	// while the bound is reached.
	p.observe(&enrich.Batch{Counts: []enrich.Count{count(pod("shop", "web-1", "uid-1"), 1, 5), count(pod("shop", "web-5", "uid-5"), 1, 7)}}, time.Now())
	failures, _ = gatherPods(t, p)
	if failures["shop/web-1"] != 25 || failures["_other/_other"] != 157 {
		t.Errorf("after a second interval: %v", failures)
	}
}

// Processes outside pods and pods the API did not name have one series
// each, so that a node's host daemons cannot take the pods' slots.
func TestPodFailuresHostAndUnresolved(t *testing.T) {
	p := newPodFailures(PodMetrics{Enabled: true, MaxSeries: 10}, nil)
	p.observe(&enrich.Batch{Counts: []enrich.Count{
		count(&enrich.Meta{Host: true}, 2, 3),
		count(&enrich.Meta{Host: true, CgroupPath: "/system.slice/other.service"}, 2, 4),
		count(&enrich.Meta{Unresolved: true, PodUID: "u"}, 2, 5),
		count(nil, 2, 6),
		count(&enrich.Meta{Namespace: "shop", PodUID: "u2"}, 2, 7),
	}}, time.Now())
	failures, series := gatherPods(t, p)
	want := map[string]float64{"_host/_host": 7, "_unresolved/_unresolved": 11, "shop/_unresolved": 7, "_other/_other": 0}
	if !mapsEqual(failures, want) {
		t.Errorf("pod failures = %v, want %v", failures, want)
	}
	if series["exported"] != 3 {
		t.Errorf("exported series = %v, want 3", series["exported"])
	}
}

// The series of a pod the informer no longer knows is removed at the next
// sweep, and its slot goes to the next pod; host series are never swept.
func TestPodFailuresRemovesGonePods(t *testing.T) {
	goneUIDs := map[string]bool{}
	var asked []string
	p := newPodFailures(PodMetrics{Enabled: true, MaxSeries: 2, SweepEvery: time.Minute}, func(uid string) bool {
		asked = append(asked, uid)
		return goneUIDs[uid]
	})
	t0 := time.Now()
	p.observe(&enrich.Batch{Counts: []enrich.Count{
		count(pod("shop", "a", "uid-a"), 1, 1), count(&enrich.Meta{Host: true}, 1, 1), count(pod("shop", "b", "uid-b"), 1, 2),
	}}, t0)
	failures, _ := gatherPods(t, p)
	if failures["shop/b"] != 0 || failures["_other/_other"] != 2 {
		t.Fatalf("with the bound reached, b should be in _other: %v", failures)
	}

	goneUIDs["uid-a"] = true
	// Within SweepEvery of the last sweep nothing is removed.
	p.observe(&enrich.Batch{}, t0.Add(30*time.Second))
	if failures, _ := gatherPods(t, p); failures["shop/a"] != 1 {
		t.Fatalf("swept before SweepEvery: %v", failures)
	}
	p.observe(&enrich.Batch{}, t0.Add(61*time.Second))
	failures, series := gatherPods(t, p)
	if _, ok := failures["shop/a"]; ok {
		t.Errorf("series of deleted pod a still exported: %v", failures)
	}
	if series["exported"] != 1 {
		t.Errorf("exported series = %v, want 1 (the host's)", series["exported"])
	}
	for _, uid := range asked {
		if uid == "" {
			t.Error("asked whether the host series' pod is gone")
		}
	}
	// The freed slot goes to the next pod that fails.
	p.observe(&enrich.Batch{Counts: []enrich.Count{count(pod("shop", "b", "uid-b"), 1, 4)}}, t0.Add(62*time.Second))
	if failures, _ := gatherPods(t, p); failures["shop/b"] != 4 || failures["_other/_other"] != 2 {
		t.Errorf("after the sweep: %v, want b with its own series", failures)
	}
}

// The defaults: a bound of 500 series, and the help text says where the
// overflow goes.
func TestPodFailuresDefaults(t *testing.T) {
	p := newPodFailures(PodMetrics{Enabled: true}, nil)
	if p.max != 500 || p.sweepEvery != 30*time.Second {
		t.Errorf("defaults: bound %d, sweep %v; want 500 and 30s", p.max, p.sweepEvery)
	}
	if !strings.Contains(p.desc.String(), "_other") {
		t.Error("help does not say where overflow goes")
	}
}

func mapsEqual(a, b map[string]float64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// With the real pod informer on a real API server: a pod's series goes when
// the pod is deleted and the informer forgets it, and its slot goes to the
// next pod.
func TestPodFailuresForgetDeletedPods(t *testing.T) {
	env := testenv.Shared(t)
	ns := env.Namespace(t)
	node := "node-" + ns
	kc, err := kube.NewClient(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	pods, err := kube.New(kc, kube.Options{Node: node, DeletedTTL: 300 * time.Millisecond, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- pods.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	if err := pods.WaitForSync(ctx); err != nil {
		t.Fatal(err)
	}
	mk := func(name string) *corev1.Pod {
		p, err := env.Client.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec:       corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "app", Image: "registry.example/app:1"}}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	eventually := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	a, b := mk("a"), mk("b")
	gone := podGone(pods)
	eventually("the informer to know a and b", func() bool { return !gone(string(a.UID)) && !gone(string(b.UID)) })

	p := newPodFailures(PodMetrics{Enabled: true, MaxSeries: 1, SweepEvery: time.Nanosecond}, gone)
	now := time.Now()
	p.observe(&enrich.Batch{Counts: []enrich.Count{
		count(pod(ns, "a", string(a.UID)), 1, 3), count(pod(ns, "b", string(b.UID)), 1, 4),
	}}, now)
	failures, _ := gatherPods(t, p)
	if failures[ns+"/a"] != 3 || failures["_other/_other"] != 4 {
		t.Fatalf("before the deletion: %v", failures)
	}
	// A live pod's series survives sweeps.
	p.observe(&enrich.Batch{}, now.Add(time.Second))
	if failures, _ := gatherPods(t, p); failures[ns+"/a"] != 3 {
		t.Fatalf("a live pod's series was swept: %v", failures)
	}

	zero := int64(0)
	if err := env.Client.CoreV1().Pods(ns).Delete(ctx, "a", metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
		t.Fatal(err)
	}
	eventually("the informer to forget a", func() bool { return gone(string(a.UID)) })
	p.observe(&enrich.Batch{}, now.Add(2*time.Second))
	failures, series := gatherPods(t, p)
	if _, ok := failures[ns+"/a"]; ok || series["exported"] != 0 {
		t.Fatalf("after a was deleted: %v, %v series", failures, series["exported"])
	}
	p.observe(&enrich.Batch{Counts: []enrich.Count{count(pod(ns, "b", string(b.UID)), 1, 5)}}, now.Add(3*time.Second))
	if failures, _ := gatherPods(t, p); failures[ns+"/b"] != 5 || failures["_other/_other"] != 4 {
		t.Errorf("b should have a's slot now: %v", failures)
	}
}

// One namespace making thousands of distinct failing (syscall, errno) pairs,
// as the hostile-pod flood does, folds its own new series past its share;
// another namespace's series still appear after it, exact, and the fold is
// counted.
func TestFailureSeriesShareIsPerNamespace(t *testing.T) {
	m := newSeriesMetrics()
	hostile, victim := pod("hostile", "flood", "uid-f"), pod("victim", "v", "uid-v")
	var b enrich.Batch
	for e := uint16(1); e <= 4095; e++ {
		b.Counts = append(b.Counts, count(hostile, e, 1))
	}
	m.observe(&b)
	m.observe(&enrich.Batch{Counts: []enrich.Count{count(victim, 2, 20000)}})

	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(m.failures, m.folded)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	byNS := map[string]int{}
	var victimENOENT, hostileOther, folded float64
	for _, mf := range mfs {
		for _, s := range mf.GetMetric() {
			l := map[string]string{}
			for _, lp := range s.GetLabel() {
				l[lp.GetName()] = lp.GetValue()
			}
			switch mf.GetName() {
			case "errnowatch_metric_series_folded_total":
				folded = s.GetCounter().GetValue()
			case "errnowatch_failures_total":
				byNS[l["namespace"]]++
				switch {
				case l["namespace"] == "victim" && l["errno"] == "ENOENT":
					victimENOENT = s.GetCounter().GetValue()
				case l["namespace"] == "hostile" && l["syscall"] == "_other":
					hostileOther = s.GetCounter().GetValue()
				}
			}
		}
	}
	if victimENOENT != 20000 {
		t.Errorf("victim's ENOENT series = %v, want exactly 20000 (series per namespace %v)", victimENOENT, byNS)
	}
	if byNS["hostile"] != maxNamespaceSeries+1 || hostileOther != 4095-maxNamespaceSeries {
		t.Errorf("hostile namespace: %d series, %v failures in _other; want %d series (its share and _other) and %d",
			byNS["hostile"], hostileOther, maxNamespaceSeries+1, 4095-maxNamespaceSeries)
	}
	if folded != 4095-maxNamespaceSeries {
		t.Errorf("errnowatch_metric_series_folded_total = %v, want %d", folded, 4095-maxNamespaceSeries)
	}
}

// Past the node's bound, a namespace with no series yet folds into
// namespace "_other"; one that has some keeps its name.
func TestFailureSeriesNodeBound(t *testing.T) {
	m := newSeriesMetrics()
	var b enrich.Batch
	for i := 0; len(m.series) < maxSeries; i++ {
		b.Counts = b.Counts[:0]
		ns := pod(fmt.Sprintf("ns-%d", i), "p", "uid")
		for e := uint16(1); e <= maxNamespaceSeries; e++ {
			b.Counts = append(b.Counts, count(ns, e, 1))
		}
		m.observe(&b)
	}
	m.observe(&enrich.Batch{Counts: []enrich.Count{count(pod("late", "p", "uid-l"), 2, 3), count(pod("ns-0", "p", "uid"), 4000, 5)}})
	if got := promtestutil.ToFloat64(m.failures.WithLabelValues("_other", "_other", "_other")); got != 3 {
		t.Errorf("a new namespace past the node's bound: _other/_other/_other = %v, want 3", got)
	}
	if got := promtestutil.ToFloat64(m.failures.WithLabelValues("ns-0", "_other", "_other")); got != 5 {
		t.Errorf("a known namespace past the node's bound: ns-0/_other/_other = %v, want 5", got)
	}
}
