package e2e

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/errnowatch/errnowatch/pkg/alertfmt"
)

// testLoad: a pod fails faccessat on both cores flat out for 60 s. The
// agent's exact count, in its metrics and in the alert of the rule that
// counts it (added by the upgrade step), equals what the pod reports having
// made. The agent's CPU and RSS are sampled; RSS at the end is within 10%
// of its steady state.
func testLoad(t *testing.T, r reader) {
	ctx := ctxFor(t, 6*time.Minute)
	const ns, app = "e2e-load", "fail-load"
	const seconds = 60
	e.namespace(ctx, t, ns)
	pid := e.agentProcess(ctx, t)
	dep := deployment(ns, app, "fail-load", "--threads", "2", "--duration", fmt.Sprintf("%ds", seconds), "--then-sleep")
	if _, err := e.kube.AppsV1().Deployments(ns).Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var samples []sample
	var report struct {
		Syscall string  `json:"syscall"`
		Errno   string  `json:"errno"`
		Count   uint64  `json:"count"`
		Seconds float64 `json:"seconds"`
	}
	start := time.Now()
	err := poll(ctx, 5*time.Second, func() (bool, error) {
		rss, cpu := procUsage(pid)
		samples = append(samples, sample{time.Since(start), rss, cpu})
		pods, err := e.podsOf(ctx, ns, app)
		if err != nil || len(pods) != 1 {
			return false, err
		}
		log, _ := e.containerLog(pods[0], "main")
		for _, line := range strings.Split(log, "\n") {
			if strings.Contains(line, `"count"`) && json.Unmarshal([]byte(line), &report) == nil {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("fail-load never reported: %v", err)
	}
	rate := float64(report.Count) / report.Seconds
	t.Logf("fail-load: %d %s %s in %.1f s (%.0f/s)", report.Count, report.Syscall, report.Errno, report.Seconds, rate)

	// /metrics: the exact count of the namespace's faccessat ENOENT.
	series := fmt.Sprintf(`{errno="%s",namespace="%s",syscall="%s"}`, report.Errno, ns, report.Syscall)
	var inMetrics float64
	err = poll(ctx, time.Second, func() (bool, error) {
		m, err := e.metrics(ctx, "errnowatch_failures_total")
		inMetrics = m[series]
		return err == nil && uint64(inMetrics) == report.Count, err
	})
	if err != nil {
		t.Errorf("errnowatch_failures_total%s = %.0f, the pod made %d", series, inMetrics, report.Count)
	}
	// The alert: its final revision counts every failure since it was
	// raised, which is the whole run (the rule fires on the first).
	var a alertfmt.Record
	err = poll(ctx, 2*time.Second, func() (bool, error) {
		got, err := e.list(ctx, r, "--namespace", ns, "--rule", "e2e-load-counter")
		if err != nil || len(got) == 0 {
			return false, err
		}
		a = got[0]
		return len(got) == 1 && a.Total == report.Count, nil
	})
	if err != nil {
		t.Errorf("e2e-load-counter alert total %d (revision %d), the pod made %d: %v", a.Total, a.Revision, report.Count, err)
	}

	// Agent CPU and memory over the run.
	if len(samples) < 8 {
		t.Fatalf("only %d samples", len(samples))
	}
	last := samples[len(samples)-1]
	first := samples[0]
	cpuShare := float64(last.cpu-first.cpu) / float64(last.at-first.at)
	var steady []float64
	for _, s := range samples {
		if s.at >= 15*time.Second && s.at <= 35*time.Second {
			steady = append(steady, s.rss)
		}
	}
	slices.Sort(steady)
	med := steady[len(steady)/2]
	t.Logf("agent under %.0f failures/s: CPU %.1f%% of one core, RSS steady %.1f MiB, end %.1f MiB, max %.1f MiB",
		rate, 100*cpuShare, med/(1<<20), last.rss/(1<<20), maxRSS(samples)/(1<<20))
	if d := (last.rss - med) / med; d > 0.10 || d < -0.10 {
		t.Errorf("agent RSS at the end %.1f MiB is %.0f%% off its steady state %.1f MiB", last.rss/(1<<20), 100*d, med/(1<<20))
	}
	_ = e.kube.AppsV1().Deployments(ns).Delete(ctx, app, metav1.DeleteOptions{})
}

// sample is the agent's resident memory and CPU time at a moment of the run.
type sample struct {
	at  time.Duration
	rss float64
	cpu time.Duration
}

func maxRSS(s []sample) float64 {
	var m float64
	for _, x := range s {
		m = max(m, x.rss)
	}
	return m
}
