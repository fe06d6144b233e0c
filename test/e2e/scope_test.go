package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// testScopeFirstSyscalls (issue 14 §3): with the agent scoped to one
// namespace (the chart's agent.scope.namespaces), a new container's very
// first failing syscalls are counted. The pod's container fails faccessat
// exactly 50 times as the first thing it does, and the agent's exact count
// for the namespace must be 50: the kernel matches the pod's cgroup, which
// the kubelet makes before the sandbox starts, not the container's, which
// the agent learns of only after the container runs. The agent goes back
// to no scope afterwards, so later steps see every namespace.
func testScopeFirstSyscalls(t *testing.T, _ reader) {
	ctx := ctxFor(t, 10*time.Minute)
	const ns, app, n = "e2e-scope", "first-syscalls", 50
	vals := e.writeValues(t, "values-scope.yaml", upgradeRules)
	scope := filepath.Join(e.work, "values-scope-agent.yaml")
	if err := os.WriteFile(scope, []byte("agent:\n  scope:\n    namespaces: ["+ns+"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	upgrade := func(files ...string) {
		t.Helper()
		args := []string{"upgrade", e.release, chart(), "--namespace", e.ns, "--wait", "--timeout", "5m"}
		for _, f := range files {
			args = append(args, "-f", f)
		}
		if out, err := e.helm(ctx, args...); err != nil {
			t.Fatalf("helm upgrade: %v\n%s", err, out)
		}
		if err := e.waitRollout(ctx); err != nil {
			t.Fatal(err)
		}
	}
	upgrade(vals, scope)
	t.Cleanup(func() { upgrade(vals) })
	e.namespace(ctx, t, ns)
	dep := deployment(ns, app, "burst", "--count", fmt.Sprint(n), "--syscall", "faccessat", "--then-sleep")
	if _, err := e.kube.AppsV1().Deployments(ns).Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := waitWorkloadDone(ctx, ns, app); err != nil {
		t.Fatal(err)
	}
	series := fmt.Sprintf(`{errno="ENOENT",namespace="%s",syscall="faccessat"}`, ns)
	var got float64
	err := poll(ctx, time.Second, func() (bool, error) {
		m, err := e.metrics(ctx, "errnowatch_failures_total")
		got = m[series]
		return err == nil && got >= n, err
	})
	if err != nil || got != n {
		t.Errorf("errnowatch_failures_total%s = %.0f, want %d: the container's first failing syscalls were not all counted (%v)",
			series, got, n, err)
	}
	_ = e.kube.AppsV1().Deployments(ns).Delete(ctx, app, metav1.DeleteOptions{})
}
