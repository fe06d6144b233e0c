package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/errnowatch/errnowatch/internal/testenv"
	"github.com/errnowatch/errnowatch/internal/testutil"
	"github.com/errnowatch/errnowatch/pkg/cgroup/cgrouptest"
	"github.com/errnowatch/errnowatch/pkg/collector/collectortest"
	"github.com/errnowatch/errnowatch/test/attacks"
)

// saToken makes a ServiceAccount and returns a token for it with the
// errnowatch audience, as the chart's projected volume does.
// saToken makes a ServiceAccount and a token for it. With a node, the
// token is bound to a pod of the account on that node, as the kubelet
// mounts an agent's: the collector lets an agent publish only for the node
// its token's pod runs on.
func saToken(t *testing.T, cs kubernetes.Interface, ns, name string, node ...string) string {
	t.Helper()
	ctx := context.Background()
	if _, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	spec := authenticationv1.TokenRequestSpec{Audiences: []string{"errnowatch"}}
	if len(node) == 1 {
		pod, err := cs.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name + "-" + node[0]},
			Spec:       corev1.PodSpec{ServiceAccountName: name, NodeName: node[0], Containers: []corev1.Container{{Name: "agent", Image: "errnowatch"}}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		spec.BoundObjectRef = &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID}
	}
	tr, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name, &authenticationv1.TokenRequest{Spec: spec}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), name+".token")
	if err := os.WriteFile(p, []byte(tr.Status.Token), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// startProcess starts the binary with its output in a log that is shown
// when the test or benchmark fails, and kills it when it ends.
func startProcess(t testing.TB, name string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(binary, args...)
	log, err := os.Create(filepath.Join(t.TempDir(), name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
		if t.Failed() {
			b, _ := os.ReadFile(log.Name())
			t.Logf("%s log:\n%s", name, b)
		}
	})
	return cmd
}

func waitHTTP(t *testing.T, url string, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return string(b)
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, b)
		} else {
			last = err.Error()
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s never answered 200 in %v: %s", url, timeout, last)
	return ""
}

// The agent and the collector as processes, configured as the chart
// configures them, against a real kube-apiserver: the agent becomes ready,
// an attack in a pod's cgroup becomes an alert stored in the collector with
// the pod's name, /metrics counts it, and SIGTERM detaches everything.
func TestAgentAndCollectorProcesses(t *testing.T) {
	env := testenv.Start(t)
	cs := env.Client
	ctx := context.Background()
	kubeconfig := testutil.WriteKubeconfig(t, env.Config)
	const node = "node-e2e"
	for _, ns := range []string{"errnowatch", "shop"} {
		if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	agentToken := saToken(t, cs, "errnowatch", "errnowatch-agent", node)
	siemToken := saToken(t, cs, "errnowatch", "siem")
	if _, err := cs.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "errnowatch-siem"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{"errnowatch.io"}, Resources: []string{"alerts"}, Verbs: []string{"get", "list", "watch"}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "errnowatch-siem"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "errnowatch-siem"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: "errnowatch", Name: "siem"}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// A pod on our node, with its container running in a kubelet-shaped cgroup.
	pod, err := cs.CoreV1().Pods("shop").Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-1", Labels: map[string]string{"app": "web"}},
		Spec:       corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "app", Image: "shop/web:1.0"}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cid := cgrouptest.ContainerID()
	pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{{
		Name: "app", Image: "shop/web:1.0", ContainerID: "containerd://" + cid, Ready: true,
		State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.Now()}},
	}}}
	if _, err := cs.CoreV1().Pods("shop").UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	cg := cgrouptest.New(t, cgrouptest.KubeletPath("cgroupfs", "containerd", "besteffort", string(pod.UID), cid))

	pki := collectortest.NewPKI(t, "agent")
	collectorAddr := testutil.FreeAddr(t)
	collectorHealth := testutil.FreeAddr(t)
	startProcess(t, "collector", "collector", "--listen", collectorAddr,
		"--tls-cert", pki.ServerCertFile, "--tls-key", pki.ServerKeyFile, "--data-dir", t.TempDir(),
		"--auth", "kubernetes", "--kubeconfig", kubeconfig, "--token-audience", "errnowatch",
		"--agent-service-accounts", "errnowatch:errnowatch-agent",
		"--metrics-address", collectorHealth, "--health-address", collectorHealth, "--log-format", "json")
	waitHTTP(t, "http://"+collectorHealth+"/healthz", 30*time.Second)

	ops := testutil.FreeAddr(t)
	repo, _ := filepath.Abs("../..")
	agent := startProcess(t, "agent", "agent", "--node-name", node, "--kubeconfig", kubeconfig,
		"--rules", filepath.Join(repo, "rules"), "--collector", collectorAddr, "--collector-ca", pki.CAFile,
		"--token-file", agentToken, "--spool-dir", filepath.Join(t.TempDir(), "spool"),
		"--metrics-address", ops, "--health-address", ops, "--log-format", "json")
	waitHTTP(t, "http://"+ops+"/readyz", 60*time.Second)
	progs := bpfProgramsOf(t, agent.Process.Pid)
	if len(progs) == 0 {
		t.Fatal("the ready agent holds no BPF program")
	}

	// debug cgroup resolves the container's cgroup to the pod, as the agent does.
	out, err := exec.Command(binary, "debug", "cgroup", cg.Rel, "--kubeconfig", kubeconfig, "--node-name", node, "-o", "json").Output()
	if err != nil {
		t.Fatalf("debug cgroup: %v", err)
	}
	var dbg debugCgroupJSON
	if err := json.Unmarshal(out, &dbg); err != nil {
		t.Fatalf("debug cgroup: %v: %s", err, out)
	}
	if dbg.Pod == nil || dbg.Pod.Namespace != "shop" || dbg.Pod.Name != "web-1" || dbg.Pod.Container != "app" ||
		dbg.Pod.UID != string(pod.UID) || dbg.CgroupID == nil || *dbg.CgroupID != cg.ID || dbg.ContainerID != cid {
		t.Errorf("debug cgroup resolved %s to %s", cg.Rel, out)
	}

	w, _ := attacks.Lookup("privilege-escalation")
	attack := w.Command(attacks.Scratch(t))
	if err := cg.Run(attack); err != nil {
		t.Fatalf("attack: %v", err)
	}

	// The alert reaches the collector with the pod's name.
	var listed string
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		out, err := exec.Command(binary, "alerts", "list", "-n", "shop", "--server", collectorAddr, "--ca", pki.CAFile,
			"--token-file", siemToken, "-o", "json").CombinedOutput()
		if err != nil {
			t.Fatalf("alerts list: %v: %s", err, out)
		}
		if strings.Contains(string(out), "privilege-escalation-attempt") {
			listed = string(out)
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if listed == "" {
		t.Fatal("no privilege-escalation-attempt alert for namespace shop reached the collector in 30 s")
	}
	for _, want := range []string{`"pod":"web-1"`, `"container":"app"`, `"namespace":"shop"`, `"node":"node-e2e"`, `"image":"shop/web:1.0"`} {
		if !strings.Contains(listed, want) {
			t.Errorf("stored alert lacks %s: %s", want, listed)
		}
	}

	metrics := waitHTTP(t, "http://"+ops+"/metrics", 5*time.Second)
	for _, want := range []string{
		`errnowatch_failures_total{errno="EPERM",namespace="shop",syscall="setuid"}`,
		"errnowatch_sensor_exits_total", "errnowatch_spool_records 0", "errnowatch_collector_connected 1",
		`errnowatch_enrich_events_total{kind="count",result="pod"}`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics has no %s", want)
		}
	}

	if err := agent.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- agent.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("agent after SIGTERM: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("agent did not exit within 30 s of SIGTERM")
	}
	if left := stillLoaded(progs); len(left) > 0 {
		t.Errorf("programs %v of the agent are still loaded after it exited (pinned?)", left)
	}
}
