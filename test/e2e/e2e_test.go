package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/cilium/ebpf"

	"github.com/errnowatch/errnowatch/pkg/alert"
	"github.com/errnowatch/errnowatch/pkg/alertfmt"
	"github.com/errnowatch/errnowatch/test/attacks"
	"github.com/errnowatch/errnowatch/test/hostbaseline"
)

// TestWholeSystem is one story, in order, because each step builds on the
// last: install, attacks, upgrade, faults, load, the host's own baseline
// and a host attack, the API-server fault, uninstall. A standalone agent
// (make run's) watches the node from before install to after uninstall,
// and neither it nor the chart's agent may raise a host alert the test
// cannot explain (hostagent_test.go).
func TestWholeSystem(t *testing.T) {
	ctx := ctxFor(t, 48*time.Minute)
	h, err := startHostAgent(ctx, e.bin, repoRules(), filepath.Join(e.work, "host-agent"))
	if err != nil {
		t.Fatal(err)
	}
	e.host = h
	t.Cleanup(func() { _ = h.stop() })
	if !t.Run("install", testInstall) {
		t.Fatal("the chart did not install: nothing else can run")
	}
	r := e.reader(ctx, t)
	t.Run("attacks", func(t *testing.T) { testAttacks(t, r) })
	t.Run("upgrade", func(t *testing.T) { testUpgrade(t, r) })
	t.Run("fault-collector-deleted", func(t *testing.T) { testCollectorDeleted(t, r) })
	t.Run("fault-agent-deleted-with-spool", func(t *testing.T) { testAgentDeletedWithSpool(t, r) })
	t.Run("fault-siem-reconnects", func(t *testing.T) { testSIEMReconnects(t, r) })
	t.Run("fault-broken-rules", func(t *testing.T) { testBrokenRules(t, r) })
	t.Run("fault-pod-churn", func(t *testing.T) { testPodChurn(t, r) })
	t.Run("load", func(t *testing.T) { testLoad(t, r) })
	t.Run("scope-first-syscalls", func(t *testing.T) { testScopeFirstSyscalls(t, r) })
	t.Run("hostile-pod", func(t *testing.T) { testHostile(t, r) })
	t.Run("host-baseline", func(t *testing.T) { testHostBaseline(t, r) })
	t.Run("host-attack", func(t *testing.T) { testHostAttack(t, r) })
	// Last before uninstall: after an API server restart the agent's
	// informer can miss new pods for minutes (see testAPIServerDown), and
	// every step above makes new pods.
	t.Run("fault-apiserver-down", func(t *testing.T) { testAPIServerDown(t, r) })
	t.Run("host-alerts-chart-agent", func(t *testing.T) { testChartHostAlerts(t, r) })
	if t.Failed() {
		// The agent's and the collector's logs, before uninstall takes them.
		e.dumpState()
	}
	t.Run("uninstall", testUninstall)
	t.Run("host-alerts-standalone-agent", testStandaloneHostAlerts)
}

func testInstall(t *testing.T) {
	ctx := ctxFor(t, 6*time.Minute)
	if err := e.collectorPV(ctx); err != nil {
		t.Fatal(err)
	}
	vals := e.writeValues(t, "values.yaml", "")
	start := time.Now()
	if out, err := e.helm(ctx, "install", e.release, chart(), "--namespace", e.ns, "--create-namespace",
		"-f", vals, "--wait", "--timeout", "5m"); err != nil {
		t.Fatalf("helm install: %v\n%s", err, out)
	}
	if err := e.waitRollout(ctx); err != nil {
		t.Fatalf("agent and collector not ready: %v", err)
	}
	t.Logf("helm install --wait: agent and collector ready in %s", time.Since(start).Round(time.Second))
	// The agent attached its program: the gauge says so, from the agent.
	att, err := e.metrics(ctx, "errnowatch_sensor_attached")
	if err != nil {
		t.Fatal(err)
	}
	if att[""] != 1 {
		t.Fatalf("errnowatch_sensor_attached = %v, want 1", att)
	}
}

// attackCase is one attack deployment and the alert it must raise.
type attackCase struct {
	w    attacks.Workload
	name string // Deployment and app label
}

// startWorkloads deploys each workload of test/attacks as a Deployment of
// its own and waits until each pod reported its pattern done.
func startWorkloads(ctx context.Context, t *testing.T, ns string, ws []attacks.Workload, prefix string) []attackCase {
	t.Helper()
	e.namespace(ctx, t, ns)
	var cases []attackCase
	for _, w := range ws {
		c := attackCase{w: w, name: prefix + w.Name}
		if _, err := e.kube.AppsV1().Deployments(ns).Create(ctx, deployment(ns, c.name, "run", w.Name, "--then-sleep"), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		cases = append(cases, c)
	}
	for _, c := range cases {
		if err := waitWorkloadDone(ctx, ns, c.name); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
	}
	return cases
}

// waitWorkloadDone waits for the workload's {"ok":true} line in its
// container log.
func waitWorkloadDone(ctx context.Context, ns, app string) error {
	var last string
	err := poll(ctx, time.Second, func() (bool, error) {
		pods, err := e.podsOf(ctx, ns, app)
		if err != nil || len(pods) == 0 {
			return false, err
		}
		for _, p := range pods {
			log, _ := e.containerLog(p, "main")
			last = log
			for _, line := range strings.Split(log, "\n") {
				var o struct {
					OK    bool   `json:"ok"`
					Error string `json:"error"`
				}
				if json.Unmarshal([]byte(line), &o) == nil && strings.Contains(line, `"workload"`) {
					if !o.OK {
						return false, fmt.Errorf("workload failed: %s", o.Error)
					}
					return true, nil
				}
			}
		}
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("%w; log: %s", err, last)
	}
	return nil
}

// streamClient runs `errnowatch alerts stream` until stopped and keeps what
// it printed.
type streamClient struct {
	cmd  *exec.Cmd
	out  bytes.Buffer
	mu   sync.Mutex
	done chan error
}

func (s *streamClient) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.out.Write(p)
}

func (s *streamClient) records(t *testing.T) []alertfmt.Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	// The last line may be partial while the stream runs.
	out := s.out.String()
	if i := strings.LastIndexByte(out, '\n'); i >= 0 {
		out = out[:i+1]
	}
	recs, err := parseRecords(out)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

func startStream(t *testing.T, r reader, args ...string) *streamClient {
	t.Helper()
	s := &streamClient{done: make(chan error, 1)}
	s.cmd = exec.Command(filepath.Join(e.bin, "errnowatch"), append(append([]string{"alerts", "stream"}, r.args()...), args...)...)
	s.cmd.Stdout = s
	var stderr bytes.Buffer
	s.cmd.Stderr = &stderr
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.done <- s.cmd.Wait() }()
	t.Cleanup(func() {
		_ = s.cmd.Process.Kill()
		<-s.done
		if t.Failed() {
			t.Logf("alerts stream stderr:\n%s", stderr.String())
		}
	})
	return s
}

// latest keeps the newest revision of each alert.
func latest(recs []alertfmt.Record) map[string]alertfmt.Record {
	m := map[string]alertfmt.Record{}
	for _, r := range recs {
		if old, ok := m[r.ID]; !ok || r.Revision > old.Revision {
			m[r.ID] = r
		}
	}
	return m
}

func testAttacks(t *testing.T, r reader) {
	ctx := ctxFor(t, 8*time.Minute)
	stream := startStream(t, r, "--namespace", "e2e-attacks")
	var atk, benign []attacks.Workload
	for _, w := range attacks.All() {
		if w.Benign() {
			benign = append(benign, w)
		} else {
			atk = append(atk, w)
		}
	}
	okCases := startWorkloads(ctx, t, "e2e-benign", benign, "ok-")
	cases := startWorkloads(ctx, t, "e2e-attacks", atk, "atk-")

	// Every attack's alert, listed by the CLI.
	want := map[string]attackCase{} // pod name -> case
	for _, c := range cases {
		pods, err := e.podsOf(ctx, "e2e-attacks", c.name)
		if err != nil || len(pods) != 1 {
			t.Fatalf("%s: pods %v, %v", c.name, len(pods), err)
		}
		want[pods[0].Name] = c
	}
	var got []alertfmt.Record
	err := poll(ctx, 2*time.Second, func() (bool, error) {
		var err error
		got, err = e.list(ctx, r, "--namespace", "e2e-attacks")
		if err != nil {
			return false, err
		}
		seen := map[string]bool{}
		for _, a := range got {
			seen[a.Pod] = true
		}
		return len(seen) >= len(want), nil
	})
	if err != nil {
		t.Fatalf("alerts of %d attacks: %v; got %d alerts: %s", len(want), err, len(got), summarize(got))
	}
	// A rule evaluates every interval: give stragglers (a second rule on
	// the same pod, an alert on a benign pod) time to show.
	time.Sleep(5 * time.Second)
	got, err = e.list(ctx, r, "--namespace", "e2e-attacks")
	if err != nil {
		t.Fatal(err)
	}
	byPod := map[string][]alertfmt.Record{}
	for _, a := range got {
		byPod[a.Pod] = append(byPod[a.Pod], a)
	}
	for pod, c := range want {
		as := byPod[pod]
		if len(as) != 1 {
			t.Errorf("%s (%s): %d alerts, want exactly 1 of %s: %s", c.w.Name, pod, len(as), c.w.Rule, summarize(as))
			continue
		}
		a := as[0]
		if a.RuleID != c.w.Rule || a.Namespace != "e2e-attacks" || a.Container != "main" ||
			a.Workload.Kind != "Deployment" || a.Workload.Name != c.name || a.Node != e.node.NodeName() ||
			a.Host || !strings.HasPrefix(a.CgroupPath, "/kubepods") || a.PodUID == "" || a.ContainerID == "" {
			t.Errorf("%s: alert %+v: want rule %s, pod %s, container main, workload Deployment/%s on node %s",
				c.w.Name, a.Alert, c.w.Rule, pod, c.name, e.node.NodeName())
		}
		checkDenied(t, c.w.Name, a.Alert)
	}
	for pod, as := range byPod {
		if _, ok := want[pod]; !ok {
			t.Errorf("unexpected alerts on pod %s: %s", pod, summarize(as))
		}
	}
	// Benign workloads raise nothing; nor do the cluster's own pods.
	all, err := e.list(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range all {
		switch {
		case a.Namespace == "e2e-attacks":
		case a.Host:
			// Host alerts are checked at the end of the run, over all of
			// it (testChartHostAlerts).
			t.Logf("host alert: %s", hostbaseline.Describe(&a.Alert))
		default:
			t.Errorf("alert outside the attacks: %s on %s/%s (%s)", a.RuleID, a.Namespace, a.Pod, a.Message)
		}
	}
	t.Logf("%d benign workloads raised nothing", len(okCases))

	// The SIEM stream saw the same alerts, each first revision once.
	err = poll(ctx, time.Second, func() (bool, error) {
		return len(latest(stream.records(t))) >= len(got), nil
	})
	recs := stream.records(t)
	if err != nil {
		t.Fatalf("stream: %d alerts, want %d: %v", len(latest(recs)), len(got), err)
	}
	seen := map[string]bool{}
	for _, rec := range recs {
		key := fmt.Sprintf("%s/%d", rec.ID, rec.Revision)
		if seen[key] {
			t.Errorf("stream repeated %s", key)
		}
		seen[key] = true
	}
	for _, a := range got {
		if !seen[fmt.Sprintf("%s/%d", a.ID, a.Revision)] {
			t.Errorf("stream missed %s revision %d (%s on %s)", a.ID, a.Revision, a.RuleID, a.Pod)
		}
	}
}

func summarize(as []alertfmt.Record) string {
	var parts []string
	for _, a := range as {
		parts = append(parts, fmt.Sprintf("%s@%s/%s", a.RuleID, a.Namespace, a.Pod))
	}
	slices.Sort(parts)
	return "[" + strings.Join(parts, " ") + "]"
}

// testUpgrade changes the rules through values: a rule of the user's own,
// added with helm upgrade, fires on a pattern no default rule knows.
func testUpgrade(t *testing.T, r reader) {
	ctx := ctxFor(t, 6*time.Minute)
	vals := e.writeValues(t, "values-upgrade.yaml", upgradeRules)
	if out, err := e.helm(ctx, "upgrade", e.release, chart(), "--namespace", e.ns, "-f", vals, "--wait", "--timeout", "5m"); err != nil {
		t.Fatalf("helm upgrade: %v\n%s", err, out)
	}
	if err := e.waitRollout(ctx); err != nil {
		t.Fatal(err)
	}
	e.namespace(ctx, t, "e2e-upgrade")
	// The rules ConfigMap is a mounted volume: the kubelet refreshes it
	// within its sync period, and the agent reloads on the change. Keep
	// bursting until the rule fires.
	dep := deployment("e2e-upgrade", "burst", "burst", "--count", "50", "--syscall", "faccessat", "--then-sleep")
	if _, err := e.kube.AppsV1().Deployments("e2e-upgrade").Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var got []alertfmt.Record
	err := poll(ctx, 3*time.Second, func() (bool, error) {
		var err error
		got, err = e.list(ctx, r, "--namespace", "e2e-upgrade", "--rule", "e2e-missing-file")
		if err != nil || len(got) > 0 {
			return len(got) > 0, err
		}
		// Not yet: restart the burst so it runs under the new rules.
		pods, _ := e.podsOf(ctx, "e2e-upgrade", "burst")
		for _, p := range pods {
			_ = e.kube.CoreV1().Pods("e2e-upgrade").Delete(ctx, p.Name, metav1.DeleteOptions{})
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("the rule added by helm upgrade never fired: %v", err)
	}
	if a := got[0]; a.Workload.Name != "burst" || a.Container != "main" {
		t.Errorf("upgrade rule alert: %+v", a.Alert)
	}
}

// upgradeRules adds, through values, a rule for the burst workload's
// faccessat ENOENT in its namespace only.
const upgradeRules = `rules:
  default: true
  extra:
    - id: e2e-missing-file
      description: faccessat of missing files in the e2e-upgrade namespace.
      severity: low
      match:
        syscalls: [faccessat]
        errnos: [ENOENT]
      scope:
        namespaces: [e2e-upgrade]
      window: 10s
      group_by: container
      condition: count >= 50
    - id: e2e-load-counter
      description: Every faccessat ENOENT of the load test, counted.
      severity: info
      match:
        syscalls: [faccessat]
        errnos: [ENOENT]
      scope:
        namespaces: [e2e-load]
      window: 10s
      group_by: container
      cooldown: 5s
      condition: count >= 1
`

// testUninstall removes the release and checks nothing of errnowatch stays
// attached in the kernel.
func testUninstall(t *testing.T) {
	ctx := ctxFor(t, 5*time.Minute)
	before := errnowatchPrograms(t)
	if len(before) == 0 {
		t.Fatal("no errnowatch BPF program loaded before uninstall: is the agent running?")
	}
	if out, err := e.helm(ctx, "uninstall", e.release, "--namespace", e.ns, "--wait", "--timeout", "3m"); err != nil {
		t.Fatalf("helm uninstall: %v\n%s", err, out)
	}
	err := poll(ctx, time.Second, func() (bool, error) {
		pods, err := e.kube.CoreV1().Pods(e.ns).List(ctx, metav1.ListOptions{})
		return err == nil && len(pods.Items) == 0, nil
	})
	if err != nil {
		t.Fatalf("pods left after uninstall: %v", err)
	}
	// The agent detaches on SIGTERM; the kernel frees a program once its
	// last reference goes.
	err = poll(ctx, time.Second, func() (bool, error) { return len(errnowatchPrograms(t)) == 0, nil })
	if err != nil {
		t.Fatalf("BPF programs still loaded after uninstall: %v", errnowatchPrograms(t))
	}
}

// errnowatchPrograms lists the loaded BPF programs of errnowatch's sensor
// (by the names its object gives them).
func errnowatchPrograms(t *testing.T) []string {
	t.Helper()
	var names []string
	var id ebpf.ProgramID
	for {
		next, err := ebpf.ProgramGetNextID(id)
		if err != nil {
			break
		}
		id = next
		p, err := ebpf.NewProgramFromID(id)
		if err != nil {
			continue
		}
		info, err := p.Info()
		p.Close()
		if err != nil {
			continue
		}
		// The standalone agent's programs stay until it stops.
		if slices.Contains(sensorProgramNames, info.Name) && (e.host == nil || !e.host.programs[id]) {
			names = append(names, fmt.Sprintf("%d:%s", id, info.Name))
		}
	}
	return names
}

// sensorProgramNames are the names bpf/errnowatch.c gives its programs.
var sensorProgramNames = []string{"on_sys_exit", "on_sys_enter"}

// deniedWant is what the stored alerts of two attacks must say was denied
// (issue 12): the files the permission probe opened, under its scratch
// directory's secrets/, and the loopback ports the scan found closed.
var deniedWant = map[string]struct {
	syscall, errno string
	kind           alert.TargetKind
	target         *regexp.Regexp
}{
	"permission-probing": {"openat", "EACCES", alert.TargetFile, regexp.MustCompile(`^/.*/secrets/key-[0-9]{2}\.pem$`)},
	"network-scan":       {"connect", "ECONNREFUSED", alert.TargetNetwork, regexp.MustCompile(`^127\.0\.0\.1:200[0-5][0-9]$`)},
}

// checkDenied checks that the stored alert of workload w names a denied
// path or a refused address, as sampled by the kernel with the call's
// arguments, when w is one of deniedWant's.
func checkDenied(t *testing.T, w string, a alert.Alert) {
	t.Helper()
	want, ok := deniedWant[w]
	if !ok {
		return
	}
	for _, d := range a.Targets {
		if d.Syscall == want.syscall && d.Errno == want.errno && d.Kind == want.kind && want.target.MatchString(d.Target) && d.Count >= 1 {
			t.Logf("%s: the stored alert says what was denied: %s", w, alert.TargetSummary(a.Targets))
			return
		}
	}
	t.Errorf("%s: the stored alert's denied targets %+v have no %s %s %s matching %s", w, a.Targets,
		want.syscall, want.errno, want.kind, want.target)
}
