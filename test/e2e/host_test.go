package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/errnowatch/errnowatch/pkg/alert"
	"github.com/errnowatch/errnowatch/pkg/alertfmt"
	"github.com/errnowatch/errnowatch/test/hostbaseline"
)

// imagesTarball is where `e2e-node up` (make cluster-up) leaves the test
// images it built and imported.
func imagesTarball() string {
	return filepath.Join(os.TempDir(), "errnowatch-e2e-images", "images.tar")
}

// testHostBaseline is the node's own benign activity, which must raise no
// host alert: a node-exporter-style reader of /proc for every pid, as root
// and as nobody, for a minute, while pod sandboxes are set up and torn
// down (kubelet, containerd, runc, the CNI bridge plugin), kube-proxy
// rewrites its iptables rules for a Service whose endpoints come and go,
// and containerd imports and unpacks images. Both agents are checked.
func testHostBaseline(t *testing.T, r reader) {
	ctx := ctxFor(t, 8*time.Minute)
	const ns = "e2e-baseline"
	e.namespace(ctx, t, ns)
	dir, err := hostbaseline.ExecDir()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	var readers []*exec.Cmd
	var outs []*strings.Builder
	for _, uid := range []uint32{0, hostbaseline.Nobody} {
		cmd, err := hostbaseline.ProcReader(dir, hostbaseline.ExporterComm, uid, 60)
		if err != nil {
			t.Fatal(err)
		}
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		readers, outs = append(readers, cmd), append(outs, &out)
	}
	t.Cleanup(func() {
		for _, c := range readers {
			_ = c.Process.Kill()
		}
	})

	// kube-proxy: a Service over the churned pods, whose endpoints change
	// with every wave.
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "baseline", Namespace: ns},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "churn"},
			Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}}},
	}
	if _, err := e.kube.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for w := range 3 {
		if err := churnWave(ctx, ns, w, 5); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.kube.CoreV1().Services(ns).Delete(ctx, "baseline", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	// Image import and unpacking, into a namespace of containerd's own so
	// the node's images stay as they are.
	ctr := func(args ...string) string {
		t.Helper()
		out, err := exec.CommandContext(ctx, "ctr", append([]string{"--address", e.node.ContainerdSocket(), "-n", "e2e-baseline"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("ctr %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	ctr("images", "import", "--all-platforms", imagesTarball())
	imported := strings.Fields(ctr("images", "ls", "-q"))
	if len(imported) == 0 {
		t.Fatalf("ctr images import of %s imported nothing", imagesTarball())
	}
	ctr(append([]string{"images", "rm"}, imported...)...)
	t.Logf("containerd imported, unpacked and removed %d images", len(imported))

	for i, c := range readers {
		if err := c.Wait(); err != nil {
			t.Fatalf("%s reader: %v: %s", hostbaseline.ExporterComm, err, outs[i])
		}
		t.Logf("%s reader: %s", hostbaseline.ExporterComm, strings.TrimSpace(outs[i].String()))
	}
	// Rules evaluate every second: give the last interval time to land.
	time.Sleep(5 * time.Second)
	chart, err := e.list(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	checkHostAlerts(t, "chart agent", chart, hostCauses)
	host, err := e.host.alerts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	checkHostAlerts(t, "standalone agent", host, hostCauses)
}

// testHostAttack: the rules still catch the host. The permission-probing
// attack of test/attacks, run as a host process, and the /proc sweep of
// the baseline as nobody under a name no rule excludes, each raise
// permission-probing on the host in both agents.
func testHostAttack(t *testing.T, r reader) {
	ctx := ctxFor(t, 3*time.Minute)
	dir, err := hostbaseline.ExecDir()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	sweep, attack := hostbaseline.RunHostAttacks(t, dir)
	causes := []hostCause{
		{rule: "permission-probing", pids: []int{attack.Process.Pid},
			reason: "the host-attack step's permission-probing attack, run as a host process"},
		{rule: "permission-probing", pids: []int{sweep.Process.Pid},
			reason: "the host-attack step's /proc sweep as nobody, under a name no rule excludes"},
	}
	hostCauses = append(hostCauses, causes...)
	for _, c := range causes {
		for _, src := range []struct {
			who  string
			list func() ([]alertfmt.Record, error)
		}{
			{"chart agent", func() ([]alertfmt.Record, error) { return e.list(ctx, r) }},
			{"standalone agent", func() ([]alertfmt.Record, error) { return e.host.alerts(ctx) }},
		} {
			err := poll(ctx, 2*time.Second, func() (bool, error) {
				as, err := src.list()
				return slices.ContainsFunc(as, func(a alertfmt.Record) bool {
					return a.Host && a.RuleID == c.rule && slices.ContainsFunc(a.Processes, func(p alert.Process) bool {
						return int(p.PID) == c.pids[0]
					})
				}), err
			})
			if err != nil {
				t.Errorf("%s: no host %s alert for %s (pid %d): %v", src.who, c.rule, c.reason, c.pids[0], err)
			}
		}
	}
}

// testChartHostAlerts: over everything before uninstall, every host alert
// of the chart's agent is one the run explains.
func testChartHostAlerts(t *testing.T, r reader) {
	ctx := ctxFor(t, 2*time.Minute)
	var as []alertfmt.Record
	err := poll(ctx, 2*time.Second, func() (bool, error) {
		var err error
		as, err = e.list(ctx, r)
		return err == nil, err
	})
	if err != nil {
		t.Fatal(err)
	}
	checkHostAlerts(t, "chart agent", as, hostCauses)
	logHostCounts(t, "chart agent", as)
}

// testStandaloneHostAlerts: after uninstall, the standalone agent stops;
// over the whole run, every host alert it raised is one the run explains.
func testStandaloneHostAlerts(t *testing.T) {
	ctx := ctxFor(t, 2*time.Minute)
	if e.host == nil {
		t.Fatal("no standalone agent")
	}
	// Uninstall is over; give its last interval time to be evaluated.
	time.Sleep(3 * time.Second)
	as, err := e.host.alerts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.host.stop(); err != nil {
		t.Error(err)
	}
	checkHostAlerts(t, "standalone agent", as, hostCauses)
	logHostCounts(t, "standalone agent", as)
}

// logHostCounts says how many alerts an agent raised, on the host and in
// pods, so a run's log shows what the check covered.
func logHostCounts(t *testing.T, who string, as []alertfmt.Record) {
	var host, pods int
	for _, a := range latest(as) {
		if a.Host {
			host++
		} else {
			pods++
		}
	}
	t.Logf("%s: %d host alerts, %d pod alerts over the run", who, host, pods)
}
