package kube

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/errnowatch/errnowatch/internal/testenv"
	"github.com/errnowatch/errnowatch/pkg/cgroup/cgrouptest"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// startPods runs Pods for node until the test ends and waits for its sync.
func startPods(t *testing.T, cfg *rest.Config, opts Options) *Pods {
	t.Helper()
	opts.Logger = zaptest.NewLogger(t)
	client, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(client, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	if err := p.WaitForSync(wctx); err != nil {
		t.Fatal(err)
	}
	return p
}

// eventually polls cond until it holds; the deadline only bounds a broken
// test, it is not what the test measures.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func mkPod(ns, name, node string, labels map[string]string, owner *metav1.OwnerReference, containers ...string) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels,
			Annotations: map[string]string{"big": string(make([]byte, 4096))}},
		Spec: corev1.PodSpec{NodeName: node},
	}
	if owner != nil {
		p.OwnerReferences = []metav1.OwnerReference{*owner}
	}
	for _, c := range containers {
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: c, Image: "registry.example/" + c + ":1.0",
			Command: []string{"/bin/" + c, "--flag"}, Env: []corev1.EnvVar{{Name: "A", Value: "b"}}})
	}
	return p
}

func create(t *testing.T, c kubernetes.Interface, p *corev1.Pod) *corev1.Pod {
	t.Helper()
	out, err := c.CoreV1().Pods(p.Namespace).Create(context.Background(), p, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create pod %s: %v", p.Name, err)
	}
	return out
}

func setStatus(t *testing.T, c kubernetes.Interface, p *corev1.Pod, init, regular []corev1.ContainerStatus) *corev1.Pod {
	t.Helper()
	cur, err := c.CoreV1().Pods(p.Namespace).Get(context.Background(), p.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cur.Status.InitContainerStatuses = init
	cur.Status.ContainerStatuses = regular
	out, err := c.CoreV1().Pods(p.Namespace).UpdateStatus(context.Background(), cur, metav1.UpdateOptions{})
	if err != nil {
		t.Fatalf("update status of %s: %v", p.Name, err)
	}
	return out
}

func status(name, id string) corev1.ContainerStatus {
	return corev1.ContainerStatus{Name: name, ContainerID: id, Image: "registry.example/" + name + ":1.0"}
}

func TestPodsIndexesNodePodsByUIDAndContainerID(t *testing.T) {
	env := testenv.Shared(t)
	c := env.Client
	ns := env.Namespace(t)
	node := "node-" + ns
	p := startPods(t, env.Config, Options{Node: node})

	labels := map[string]string{"app": "web", "app.kubernetes.io/name": "shop", "secret-ish": "x", "pod-template-hash": "abc"}
	pod := mkPod(ns, "web", node, labels, nil, "app", "sidecar")
	pod.Spec.InitContainers = []corev1.Container{{Name: "setup", Image: "busybox:1"}}
	pod = create(t, c, pod)
	other := create(t, c, mkPod(ns, "elsewhere", node+"-other", nil, nil, "app"))

	// Known by UID before any container status exists.
	eventually(t, "pod by UID", func() bool { _, ok := p.ByUID(string(pod.UID)); return ok })
	got, _ := p.ByUID(string(pod.UID))
	if got.Namespace != ns || got.Name != "web" || got.Node != node || got.Workload != (Workload{Kind: "Pod", Name: "web"}) {
		t.Errorf("pod = %+v", got)
	}
	if want := map[string]string{"app": "web", "app.kubernetes.io/name": "shop"}; fmt.Sprint(got.Labels) != fmt.Sprint(want) {
		t.Errorf("labels = %v, want %v", got.Labels, want)
	}
	if len(got.Containers) != 3 || got.Containers[0].Kind != InitContainer || got.Containers[1].Image != "registry.example/app:1.0" {
		t.Errorf("containers = %+v", got.Containers)
	}

	ids := map[string]string{"setup": cgrouptest.ContainerID(), "app": cgrouptest.ContainerID(), "sidecar": cgrouptest.ContainerID()}
	setStatus(t, c, pod,
		[]corev1.ContainerStatus{status("setup", "cri-o://"+ids["setup"])},
		[]corev1.ContainerStatus{status("app", "containerd://"+ids["app"]), status("sidecar", "docker://"+ids["sidecar"])})
	for name, id := range ids {
		eventually(t, "container "+name+" by id", func() bool { _, ok := p.ByContainerID(id); return ok })
		gp, _ := p.ByContainerID(id)
		ct, ok := gp.ContainerByID(id)
		if !ok || ct.Name != name || gp.UID != string(pod.UID) {
			t.Errorf("container %s: got %+v in %s", id, ct, gp.Name)
		}
	}
	if _, ok := p.ByUID(string(other.UID)); ok {
		t.Error("a pod of another node was indexed")
	}

	// The store holds stripped pods only.
	for _, o := range p.informer.GetStore().List() {
		sp := o.(*corev1.Pod)
		if len(sp.ManagedFields) > 0 || sp.Annotations["big"] != "" || len(sp.Spec.Containers[0].Command) > 0 ||
			sp.Labels["secret-ish"] != "" || sp.Labels["pod-template-hash"] != "abc" {
			t.Errorf("stored pod not stripped: %+v", sp.ObjectMeta)
		}
	}
}

func TestPodsRestartAndDeletion(t *testing.T) {
	env := testenv.Shared(t)
	c := env.Client
	ns := env.Namespace(t)
	node := "node-" + ns
	p := startPods(t, env.Config, Options{Node: node, DeletedTTL: 500 * time.Millisecond})
	var mu sync.Mutex
	var events []EventType
	// Subscribing after Run started is allowed for tests that only count.
	p.Subscribe(func(ev Event) {
		mu.Lock()
		events = append(events, ev.Type)
		mu.Unlock()
	})

	pod := create(t, c, mkPod(ns, "job", node, nil, nil, "main"))
	first, second := cgrouptest.ContainerID(), cgrouptest.ContainerID()
	setStatus(t, c, pod, nil, []corev1.ContainerStatus{status("main", "containerd://"+first)})
	eventually(t, "first container", func() bool { _, ok := p.ByContainerID(first); return ok })

	// Restart: a new id, the old one in lastState.
	restarted := status("main", "containerd://"+second)
	restarted.RestartCount = 1
	restarted.LastTerminationState.Terminated = &corev1.ContainerStateTerminated{ContainerID: "containerd://" + first, ExitCode: 1}
	setStatus(t, c, pod, nil, []corev1.ContainerStatus{restarted})
	eventually(t, "second container", func() bool { _, ok := p.ByContainerID(second); return ok })
	for _, id := range []string{first, second} {
		gp, ok := p.ByContainerID(id)
		if !ok {
			t.Fatalf("container %s forgotten after restart", id)
		}
		if ct, _ := gp.ContainerByID(id); ct.Name != "main" {
			t.Errorf("container %s = %+v", id, ct)
		}
	}

	// Deleted: still found, marked, until the TTL is over.
	zero := int64(0)
	if err := c.CoreV1().Pods(ns).Delete(context.Background(), "job", metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "deletion", func() bool { gp, ok := p.ByUID(string(pod.UID)); return ok && gp.Deleted })
	if gp, ok := p.ByContainerID(second); !ok || !gp.Deleted || gp.Name != "job" {
		t.Errorf("deleted pod by container id: %+v %v", gp, ok)
	}
	if st := p.Stats(); st.Deleted != 1 || st.Pods != 0 {
		t.Errorf("stats after delete: %+v", st)
	}
	eventually(t, "expiry", func() bool { _, ok := p.ByUID(string(pod.UID)); return !ok })
	if _, ok := p.ByContainerID(first); ok {
		t.Error("expired pod still indexed by container id")
	}
	mu.Lock()
	defer mu.Unlock()
	if n := len(events); n == 0 || events[n-1] != PodExpired {
		t.Errorf("events = %v, want the last to be PodExpired", events)
	}
}

func TestPodsDeletedCacheIsBounded(t *testing.T) {
	env := testenv.Shared(t)
	c := env.Client
	ns := env.Namespace(t)
	node := "node-" + ns
	p := startPods(t, env.Config, Options{Node: node, MaxDeleted: 3})
	var uids []string
	for i := 0; i < 5; i++ {
		pod := create(t, c, mkPod(ns, fmt.Sprintf("p%d", i), node, nil, nil, "main"))
		uids = append(uids, string(pod.UID))
	}
	eventually(t, "pods", func() bool { return p.Stats().Pods == 5 })
	zero := int64(0)
	for i := 0; i < 5; i++ {
		if err := c.CoreV1().Pods(ns).Delete(context.Background(), fmt.Sprintf("p%d", i), metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
			t.Fatal(err)
		}
		// One at a time, so that which ones are oldest is known.
		eventually(t, "deletion", func() bool { gp, ok := p.ByUID(uids[i]); return !ok || gp.Deleted })
	}
	for i, uid := range uids {
		_, ok := p.ByUID(uid)
		if want := i >= 2; ok != want {
			t.Errorf("deleted pod %d kept = %v, want %v", i, ok, want)
		}
	}
}

func TestPodsMirrorPodByStaticHash(t *testing.T) {
	env := testenv.Shared(t)
	c := env.Client
	ns := env.Namespace(t)
	node := "node-" + ns
	p := startPods(t, env.Config, Options{Node: node})
	hash := "0123456789abcdef0123456789abcdef"
	pod := mkPod(ns, "etcd-"+node, node, nil, &metav1.OwnerReference{APIVersion: "v1", Kind: "Node", Name: node,
		UID: types.UID("11111111-2222-3333-4444-555555555555"), Controller: ptr(true)}, "etcd")
	pod.Annotations[corev1.MirrorPodAnnotationKey] = hash
	pod = create(t, c, pod)
	eventually(t, "mirror pod", func() bool { _, ok := p.ByUID(hash); return ok })
	gp, _ := p.ByUID(hash)
	if gp.UID != string(pod.UID) || gp.Workload != (Workload{Kind: "Node", Name: node}) {
		t.Errorf("mirror pod = %+v", gp)
	}
}

func ptr[T any](v T) *T { return &v }

// owned makes the owner chain: a Deployment owning a ReplicaSet, a CronJob
// owning a Job, and returns controller references to the ReplicaSet and Job.
func owned(t *testing.T, c kubernetes.Interface, ns string) (rs, job *metav1.OwnerReference) {
	t.Helper()
	ctx := context.Background()
	sel := &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}
	tmpl := corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "web:1"}}},
	}
	d, err := c.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "shop"},
		Spec:       appsv1.DeploymentSpec{Selector: sel, Template: tmpl},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rsTmpl := tmpl.DeepCopy()
	rsTmpl.Labels["pod-template-hash"] = "5d8f7c9b4"
	r, err := c.AppsV1().ReplicaSets(ns).Create(ctx, &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: "shop-5d8f7c9b4", OwnerReferences: []metav1.OwnerReference{
			*metav1.NewControllerRef(d, appsv1.SchemeGroupVersion.WithKind("Deployment"))}},
		Spec: appsv1.ReplicaSetSpec{Selector: sel, Template: *rsTmpl},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	jobTmpl := corev1.PodTemplateSpec{Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever,
		Containers: []corev1.Container{{Name: "backup", Image: "backup:1"}}}}
	cj, err := c.BatchV1().CronJobs(ns).Create(ctx, &batchv1.CronJob{
		ObjectMeta: metav1.ObjectMeta{Name: "nightly"},
		Spec: batchv1.CronJobSpec{Schedule: "0 3 * * *",
			JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: jobTmpl}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	j, err := c.BatchV1().Jobs(ns).Create(ctx, &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: "nightly-29000000", OwnerReferences: []metav1.OwnerReference{
			*metav1.NewControllerRef(cj, batchv1.SchemeGroupVersion.WithKind("CronJob"))}},
		Spec: batchv1.JobSpec{Template: jobTmpl},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return metav1.NewControllerRef(r, appsv1.SchemeGroupVersion.WithKind("ReplicaSet")),
		metav1.NewControllerRef(j, batchv1.SchemeGroupVersion.WithKind("Job"))
}

// ownerPods creates one pod per kind of owner and returns the workload each
// must resolve to, by pod name.
func ownerPods(t *testing.T, c kubernetes.Interface, ns, node string, rs, job *metav1.OwnerReference) map[string]*corev1.Pod {
	t.Helper()
	ref := func(kind, name string) *metav1.OwnerReference {
		return &metav1.OwnerReference{APIVersion: "apps/v1", Kind: kind, Name: name,
			UID: types.UID(cgrouptest.PodUID()), Controller: ptr(true)}
	}
	return map[string]*corev1.Pod{
		"shop-5d8f7c9b4-x1":  create(t, c, mkPod(ns, "shop-5d8f7c9b4-x1", node, map[string]string{"app": "web", "pod-template-hash": "5d8f7c9b4"}, rs, "app")),
		"nightly-29000000-a": create(t, c, mkPod(ns, "nightly-29000000-a", node, nil, job, "backup")),
		"agent-x":            create(t, c, mkPod(ns, "agent-x", node, nil, ref("DaemonSet", "agent"), "agent")),
		"db-0":               create(t, c, mkPod(ns, "db-0", node, nil, ref("StatefulSet", "db"), "db")),
		"bare":               create(t, c, mkPod(ns, "bare", node, nil, nil, "sh")),
	}
}

func TestOwnersResolveDeploymentAndCronJob(t *testing.T) {
	env := testenv.Shared(t)
	c := env.Client
	ns := env.Namespace(t)
	node := "node-" + ns
	rs, job := owned(t, c, ns)
	p := startPods(t, env.Config, Options{Node: node})
	pods := ownerPods(t, c, ns, node, rs, job)
	want := map[string]Workload{
		"shop-5d8f7c9b4-x1":  {"Deployment", "shop"},
		"nightly-29000000-a": {"CronJob", "nightly"},
		"agent-x":            {"DaemonSet", "agent"},
		"db-0":               {"StatefulSet", "db"},
		"bare":               {"Pod", "bare"},
	}
	for name, pod := range pods {
		eventually(t, name, func() bool { _, ok := p.ByUID(string(pod.UID)); return ok })
		gp, _ := p.ByUID(string(pod.UID))
		if gp.Workload != want[name] {
			t.Errorf("%s: workload %+v, want %+v", name, gp.Workload, want[name])
		}
	}
	// A second pod of the same ReplicaSet is answered from the cache.
	gets := p.Stats().OwnerGets
	second := create(t, c, mkPod(ns, "shop-5d8f7c9b4-x2", node, map[string]string{"pod-template-hash": "5d8f7c9b4"}, rs, "app"))
	eventually(t, "second pod", func() bool { _, ok := p.ByUID(string(second.UID)); return ok })
	if st := p.Stats(); st.OwnerGets != gets || st.OwnerFallbacks != 0 || st.Owners != 2 {
		t.Errorf("owner stats = %+v (gets before: %d)", st, gets)
	}
}

// Without RBAC for ReplicaSets and Jobs, a Deployment is still named from the
// ReplicaSet's name and the pod-template-hash label, and a Job stays a Job.
func TestOwnersFallbackWhenForbidden(t *testing.T) {
	env := testenv.Shared(t)
	c := env.Client
	ns := env.Namespace(t)
	node := "node-" + ns
	rs, job := owned(t, c, ns)

	ctx := context.Background()
	user := "agent-" + ns
	if _, err := c.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: user},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"list", "watch"}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: user},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: user},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cfg, err := env.AddUser(user)
	if err != nil {
		t.Fatal(err)
	}
	limited := kubernetes.NewForConfigOrDie(cfg)
	if _, err := limited.AppsV1().ReplicaSets(ns).Get(ctx, rs.Name, metav1.GetOptions{}); err == nil {
		t.Fatal("the limited user can get ReplicaSets; the test needs it not to")
	}

	p := startPods(t, cfg, Options{Node: node})
	pods := ownerPods(t, c, ns, node, rs, job)
	for name, want := range map[string]Workload{
		"shop-5d8f7c9b4-x1":  {"Deployment", "shop"},
		"nightly-29000000-a": {"Job", "nightly-29000000"},
		"agent-x":            {"DaemonSet", "agent"},
	} {
		pod := pods[name]
		eventually(t, name, func() bool { _, ok := p.ByUID(string(pod.UID)); return ok })
		gp, _ := p.ByUID(string(pod.UID))
		if gp.Workload != want {
			t.Errorf("%s: workload %+v, want %+v", name, gp.Workload, want)
		}
	}
	if st := p.Stats(); st.OwnerFallbacks != 2 {
		t.Errorf("owner fallbacks = %d, want 2 (%+v)", st.OwnerFallbacks, st)
	}
}

func TestNewNeedsNode(t *testing.T) {
	if _, err := New(nil, Options{}); err == nil {
		t.Fatal("New without a node name succeeded")
	}
	t.Setenv(NodeNameEnv, "")
	if _, err := NodeName(""); err == nil {
		t.Fatal("NodeName without flag or env succeeded")
	}
	t.Setenv(NodeNameEnv, "n1")
	if n, err := NodeName(""); err != nil || n != "n1" {
		t.Fatalf("NodeName = %q, %v", n, err)
	}
}

func TestRESTConfigFromKubeconfig(t *testing.T) {
	env := testenv.Shared(t)
	dir := t.TempDir()
	kc := dir + "/kubeconfig"
	cfg := env.Config
	content := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: %q, insecure-skip-tls-verify: true}}]
users: [{name: u, user: {client-certificate-data: %q, client-key-data: %q}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`, cfg.Host, b64(cfg.CertData), b64(cfg.KeyData))
	if err := os.WriteFile(kc, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := RESTConfig(kc)
	if err != nil {
		t.Fatal(err)
	}
	c := kubernetes.NewForConfigOrDie(got)
	if _, err := c.CoreV1().Namespaces().Get(context.Background(), "default", metav1.GetOptions{}); err != nil {
		t.Errorf("client from kubeconfig: %v", err)
	}
	if _, err := RESTConfig(dir + "/missing"); err == nil {
		t.Error("a missing kubeconfig loaded")
	}
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
