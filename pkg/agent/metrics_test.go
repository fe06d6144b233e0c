package agent

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/errnowatch/errnowatch/pkg/enrich"
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
