package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/errnowatch/errnowatch/pkg/alertfmt"
	"github.com/errnowatch/errnowatch/test/e2e/images"
)

// run runs a command and returns its stdout; stderr goes into the error.
func run(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+e.node.AdminKubeconfig(), "HELM_CACHE_HOME="+filepath.Join(e.work, "helm-cache"),
		"HELM_CONFIG_HOME="+filepath.Join(e.work, "helm-config"), "HELM_DATA_HOME="+filepath.Join(e.work, "helm-data"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

func (e *env) helm(ctx context.Context, args ...string) (string, error) {
	return run(ctx, filepath.Join(e.bin, "helm"), args...)
}

// chart is the repository's chart.
func chart() string { p, _ := filepath.Abs("../../charts/errnowatch"); return p }

// values are the chart values of every e2e install: the images the harness
// built, this node's hybrid cgroup mount, the spool in the node's directory,
// a SIEM ServiceAccount for the CLI, and a fast agent interval is the
// default (1s) already.
func (e *env) values(extra string) string {
	return fmt.Sprintf(`image:
  repository: localhost/errnowatch
  tag: e2e
  pullPolicy: Never
logFormat: json
agent:
  hostCgroupPath: /sys/fs/cgroup/unified
  spoolHostPath: %s
  resources:
    requests: {cpu: 50m, memory: 64Mi}
collector:
  resources:
    requests: {cpu: 50m, memory: 64Mi}
  persistence:
    size: 1Gi
rbac:
  alertReaders:
    siem:
      enabled: true
%s`, filepath.Join(e.node.Dir(), "spool"), extra)
}

func (e *env) writeValues(t *testing.T, name, extra string) string {
	t.Helper()
	p := filepath.Join(e.work, name)
	if err := os.WriteFile(p, []byte(e.values(extra)), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// collectorPV makes the hostPath PersistentVolume the collector's claim
// binds to: the node has no storage provisioner, as a bare kubeadm node
// has none.
func (e *env) collectorPV(ctx context.Context) error {
	dir := filepath.Join(e.node.Dir(), "pv", "collector")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.Chown(dir, 65532, 65532); err != nil {
		return err
	}
	hostPathType := corev1.HostPathDirectory
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: "e2e-collector"},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")},
			AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
			PersistentVolumeSource: corev1.PersistentVolumeSource{
				HostPath: &corev1.HostPathVolumeSource{Path: dir, Type: &hostPathType},
			},
		},
	}
	_, err := e.kube.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

// waitRollout waits until the agent DaemonSet and the collector StatefulSet
// run their current revision on every pod, and are ready.
func (e *env) waitRollout(ctx context.Context) error {
	return poll(ctx, 2*time.Second, func() (bool, error) {
		ds, err := e.kube.AppsV1().DaemonSets(e.ns).Get(ctx, e.release+"-agent", metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		ss, err := e.kube.AppsV1().StatefulSets(e.ns).Get(ctx, e.release+"-collector", metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		return daemonSetReady(ds) && statefulSetReady(ss), nil
	})
}

func daemonSetReady(ds *appsv1.DaemonSet) bool {
	s := ds.Status
	return s.ObservedGeneration >= ds.Generation && s.DesiredNumberScheduled > 0 &&
		s.UpdatedNumberScheduled == s.DesiredNumberScheduled && s.NumberReady == s.DesiredNumberScheduled
}

func statefulSetReady(ss *appsv1.StatefulSet) bool {
	s := ss.Status
	want := int32(1)
	if ss.Spec.Replicas != nil {
		want = *ss.Spec.Replicas
	}
	return s.ObservedGeneration >= ss.Generation && s.ReadyReplicas == want && s.UpdatedReplicas == want &&
		(want == 0 || s.CurrentRevision == s.UpdateRevision)
}

func poll(ctx context.Context, every time.Duration, cond func() (bool, error)) error {
	var last error
	for {
		ok, err := cond()
		if err != nil {
			last = err
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			if last != nil {
				return fmt.Errorf("%w (last error: %v)", ctx.Err(), last)
			}
			return ctx.Err()
		case <-time.After(every):
		}
	}
}

// reader is what the alerts CLI needs to reach the collector from the node:
// the Service's ClusterIP (kube-proxy routes the node's own traffic too),
// the certificate's name, the chart's CA and a SIEM token.
type reader struct {
	server, serverName, ca, token string
}

func (e *env) reader(ctx context.Context, t *testing.T) reader {
	t.Helper()
	svc, err := e.kube.CoreV1().Services(e.ns).Get(ctx, e.release+"-collector", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sec, err := e.kube.CoreV1().Secrets(e.ns).Get(ctx, e.release+"-collector-tls", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(e.work, "ca.crt")
	if err := os.WriteFile(ca, sec.Data["ca.crt"], 0o644); err != nil {
		t.Fatal(err)
	}
	exp := int64(3600)
	tr, err := e.kube.CoreV1().ServiceAccounts(e.ns).CreateToken(ctx, e.release+"-siem", &authv1.TokenRequest{
		Spec: authv1.TokenRequestSpec{Audiences: []string{"errnowatch"}, ExpirationSeconds: &exp},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tok := filepath.Join(e.work, "siem.token")
	if err := os.WriteFile(tok, []byte(tr.Status.Token), 0o600); err != nil {
		t.Fatal(err)
	}
	return reader{
		server:     fmt.Sprintf("%s:%d", svc.Spec.ClusterIP, 9443),
		serverName: fmt.Sprintf("%s-collector.%s.svc", e.release, e.ns),
		ca:         ca, token: tok,
	}
}

func (r reader) args() []string {
	return []string{"--server", r.server, "--server-name", r.serverName, "--ca", r.ca, "--token-file", r.token}
}

// list runs `errnowatch alerts list -o json` with filters.
//
// A collector that is not reachable is asked again for up to
// unreachableFor: the steps assert what is stored, not that the Service
// never drops its endpoint. After the API server has been away for 30 s the
// node lifecycle controller can mark the node NotReady for a few seconds
// (the kubelet's lease renewals were not seen within its grace period), and
// with it every pod on the node, so kube-proxy refuses the Service's
// ClusterIP until the kubelet reports the pods ready again (seen in CI).
// A collector that stays away still fails the read.
func (e *env) list(ctx context.Context, r reader, filters ...string) ([]alertfmt.Record, error) {
	args := append([]string{"alerts", "list", "-o", "json", "--limit", "10000"}, r.args()...)
	args = append(args, filters...)
	give := time.Now().Add(unreachableFor)
	for tries := 1; ; tries++ {
		out, err := e.listOnce(ctx, args)
		if err == nil {
			return parseRecords(out)
		}
		if !strings.Contains(err.Error(), "is not reachable") || time.Now().After(give) {
			if tries > 1 {
				return nil, fmt.Errorf("after %d tries over %s: %w", tries, unreachableFor, err)
			}
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w (last error: %v)", ctx.Err(), err)
		case <-time.After(2 * time.Second):
		}
	}
}

// unreachableFor is how long list asks again a collector that refuses.
const unreachableFor = 2 * time.Minute

// listOnce runs one alerts list. Each call gets its own bound: after an API
// server restart the collector's TokenReview can stall for minutes (seen in
// CI), and a poll must retry rather than wait on one call until its whole
// deadline.
func (e *env) listOnce(ctx context.Context, args []string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return run(ctx, filepath.Join(e.bin, "errnowatch"), args...)
}

// parseRecords reads the CLI's JSON lines (alerts list -o json, alerts stream).
func parseRecords(out string) ([]alertfmt.Record, error) {
	var alerts []alertfmt.Record
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var a alertfmt.Record
		if err := json.Unmarshal(sc.Bytes(), &a); err != nil {
			return nil, fmt.Errorf("alert line %q: %w", sc.Text(), err)
		}
		alerts = append(alerts, a)
	}
	return alerts, sc.Err()
}

// workloadPod is a pod of the workload image running args.
func workloadPod(args ...string) corev1.PodSpec {
	zero := int64(0)
	return corev1.PodSpec{
		TerminationGracePeriodSeconds: &zero,
		RestartPolicy:                 corev1.RestartPolicyAlways,
		Containers: []corev1.Container{{
			Name:            "main",
			Image:           images.Workload,
			ImagePullPolicy: corev1.PullNever,
			Args:            args,
		}},
	}
}

// deployment runs one replica of a workload-image pod.
func deployment(ns, name string, args ...string) *appsv1.Deployment {
	one := int32(1)
	labels := map[string]string{"app": name}
	spec := workloadPod(args...)
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: &one,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: spec},
		},
	}
}

func (e *env) namespace(ctx context.Context, t *testing.T, name string) {
	t.Helper()
	_, err := e.kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

// podsOf lists the pods of an app label.
func (e *env) podsOf(ctx context.Context, ns, app string) ([]corev1.Pod, error) {
	l, err := e.kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=" + app})
	if err != nil {
		return nil, err
	}
	return l.Items, nil
}

// containerLog reads a container's log from the node's log directory (the
// kubelet's CRI format: time stream tag message).
func (e *env) containerLog(pod corev1.Pod, container string) (string, error) {
	dirs, _ := filepath.Glob(filepath.Join(e.node.PodLogsDir(), fmt.Sprintf("%s_%s_%s", pod.Namespace, pod.Name, pod.UID), container, "*.log"))
	slices.Sort(dirs)
	var b strings.Builder
	for _, f := range dirs {
		data, err := os.ReadFile(f)
		if err != nil {
			return "", err
		}
		for _, line := range strings.Split(string(data), "\n") {
			parts := strings.SplitN(line, " ", 4)
			if len(parts) == 4 {
				b.WriteString(parts[3])
				b.WriteByte('\n')
			}
		}
	}
	return b.String(), nil
}

// agentPod is the agent's pod on the node.
func (e *env) agentPod(ctx context.Context) (corev1.Pod, error) {
	l, err := e.kube.CoreV1().Pods(e.ns).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/component=agent"})
	if err != nil {
		return corev1.Pod{}, err
	}
	for _, p := range l.Items {
		if p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning && p.Status.PodIP != "" {
			return p, nil
		}
	}
	return corev1.Pod{}, fmt.Errorf("no running agent pod")
}

// metrics scrapes the agent's /metrics from the node (pod IPs are on the
// node's bridge) and returns the samples of one metric family by labels.
func (e *env) metrics(ctx context.Context, family string) (map[string]float64, error) {
	pod, err := e.agentPod(ctx)
	if err != nil {
		return nil, err
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://%s:9090/metrics", pod.Status.PodIP), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	out := map[string]float64{}
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(line, family) {
			continue
		}
		rest := strings.TrimPrefix(line, family)
		if rest == "" || (rest[0] != '{' && rest[0] != ' ') {
			continue
		}
		i := strings.LastIndexByte(rest, ' ')
		v, err := strconv.ParseFloat(rest[i+1:], 64)
		if err != nil {
			continue
		}
		out[strings.TrimSpace(rest[:i])] = v
	}
	return out, nil
}

// dumpState prints what a person debugging a failed run needs first.
func (e *env) dumpState() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pods, err := e.kube.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: dump:", err)
		return
	}
	for _, p := range pods.Items {
		fmt.Fprintf(os.Stderr, "e2e: pod %s/%s %s\n", p.Namespace, p.Name, p.Status.Phase)
		if p.Namespace != e.ns {
			continue
		}
		for _, c := range p.Spec.Containers {
			log, _ := e.containerLog(p, c.Name)
			if len(log) > 4000 {
				log = log[len(log)-4000:]
			}
			fmt.Fprintf(os.Stderr, "--- %s/%s %s ---\n%s\n", p.Namespace, p.Name, c.Name, log)
		}
	}
}
