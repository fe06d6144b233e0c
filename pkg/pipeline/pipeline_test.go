package pipeline

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/errnowatch/errnowatch/pkg/cgroup/cgrouptest"
	"github.com/errnowatch/errnowatch/pkg/enrich"
	"github.com/errnowatch/errnowatch/pkg/sensor"
)

const testRules = `rules:
  - id: pipeline-enoent
    severity: low
    match:
      syscalls: [openat, open]
      errnos: [ENOENT]
    window: 2s
    group_by: container
    condition: "count >= 100"
`

// TestStepEnrichesAndEvaluates builds the node pipeline without
// Kubernetes on the real kernel, makes a shell in a cgroup of the test's
// fail opening a missing file 200 times, and checks that the step names
// the cgroup of the exact counts and raises the rule's alert for it.
func TestStepEnrichesAndEvaluates(t *testing.T) {
	dir := t.TempDir()
	rulesFile := filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(rulesFile, []byte(testRules), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := New(Config{Rules: []string{rulesFile}, Sensor: sensor.Config{ExcludeSelf: true},
		Interval: 500 * time.Millisecond, Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	if p.Engine == nil || p.Pods != nil || p.Watcher != nil {
		t.Fatalf("engine %v, pods %v, watcher %v: want an engine only", p.Engine, p.Pods, p.Watcher)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); p.Wait() })
	p.Start(ctx)
	if err := p.WaitForPods(ctx); err != nil {
		t.Fatalf("WaitForPods without Kubernetes: %v", err)
	}

	cg := cgrouptest.New(t, "pipeline")
	missing := filepath.Join(dir, "missing")
	sh := exec.Command("/bin/sh", "-c", `i=0; while [ $i -lt 200 ]; do cat "$1" 2>/dev/null; i=$((i+1)); done; true`, "sh", missing)
	if err := cg.Run(sh); err != nil {
		t.Fatalf("run failing shell: %v", err)
	}

	var failures uint64
	var raised bool
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && !raised {
		time.Sleep(500 * time.Millisecond)
		iv, err := p.Sensor.Drain()
		if err != nil {
			t.Fatal(err)
		}
		alerts := p.Step(iv, nil, func(b *enrich.Batch) {
			for _, c := range b.Counts {
				if c.Meta != nil && c.Meta.CgroupPath == cg.Rel && c.Errno == 2 {
					failures += c.Count.Count
				}
			}
		})
		for _, a := range alerts {
			if a.RuleID == "pipeline-enoent" && a.CgroupPath == cg.Rel {
				raised = true
			}
		}
	}
	if failures < 200 {
		t.Errorf("the step saw %d ENOENT failures in %s, want at least 200", failures, cg.Rel)
	}
	if !raised {
		t.Errorf("no pipeline-enoent alert for %s", cg.Rel)
	}
}

// TestNewRefusesAndCloses: a scope without Kubernetes is refused before
// anything is opened, a bad rule file fails New, and Close is nil-safe.
func TestNewRefusesAndCloses(t *testing.T) {
	var nilPipe *Pipeline
	if err := nilPipe.Close(); err != nil {
		t.Errorf("nil Close: %v", err)
	}
	if _, err := New(Config{Scope: enrich.Scope{Namespaces: []string{"shop"}}}); err == nil {
		t.Error("a pod scope without Kubernetes was accepted")
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("rules: [{id: Bad}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{Rules: []string{bad}}); err == nil {
		t.Error("a bad rule file was accepted")
	}
}
