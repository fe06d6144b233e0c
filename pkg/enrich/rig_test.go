package enrich_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/errnowatch/errnowatch/internal/testenv"
	"github.com/errnowatch/errnowatch/internal/testutil"
	"github.com/errnowatch/errnowatch/pkg/cgroup"
	"github.com/errnowatch/errnowatch/pkg/cgroup/cgrouptest"
	"github.com/errnowatch/errnowatch/pkg/enrich"
	"github.com/errnowatch/errnowatch/pkg/kube"
	"github.com/errnowatch/errnowatch/pkg/sensor"
)

// The kernel tests run workloads in children: this test binary started again
// with childEnv set, inside a test cgroup. A child first makes
// $childFirstEnv failing openat calls (before the Go runtime has settled, so
// they are the cgroup's first failures), says "ready", then runs commands
// from stdin ("enoent N") and answers "done".
const (
	childEnv      = "ERRNOWATCH_ENRICH_TEST_CHILD"
	childFirstEnv = "ERRNOWATCH_ENRICH_TEST_FIRST"
	missingPath   = "/nonexistent/errnowatch-enrich-test"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		childMain()
		os.Exit(0)
	}
	os.Exit(testenv.Main(m))
}

func childMain() {
	n, _ := strconv.Atoi(os.Getenv(childFirstEnv))
	enoent(n)
	fmt.Println("ready")
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		f := strings.Fields(in.Text())
		if len(f) == 2 && f[0] == "enoent" {
			n, _ := strconv.Atoi(f[1])
			enoent(n)
		}
		fmt.Println("done")
	}
}

func enoent(n int) {
	for i := 0; i < n; i++ {
		unix.Open(missingPath, unix.O_RDONLY, 0)
	}
}

// child is a test child in a cgroup that fails openat on command.
type child struct{ *testutil.Child }

// startChild starts a child in cg that fails first times at once.
func startChild(t *testing.T, cg *cgrouptest.Dir, first int) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=1", childFirstEnv+"="+strconv.Itoa(first))
	cmd.Stderr = os.Stderr
	c := &child{testutil.StartChild(t, cg, cmd)}
	c.Expect("ready")
	return c
}

// fail makes the child fail n openat calls.
func (c *child) fail(n int) {
	c.Send(fmt.Sprintf("enoent %d", n))
	c.Expect("done")
}

// runChild runs a child in cg that fails n times and exits.
func runChild(t *testing.T, cg *cgrouptest.Dir, n int) error {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=1", childFirstEnv+"="+strconv.Itoa(n))
	cmd.Stdin = strings.NewReader("")
	return cg.Run(cmd)
}

// rig is the agent's enrichment pipeline on the real kernel and a real
// kube-apiserver: sensor -> drain every 100 ms -> enricher, with the cgroup
// resolver and the pod informer of a node of the test's own.
type rig struct {
	t    *testing.T
	c    kubernetes.Interface
	ns   string
	node string
	s    *sensor.Sensor
	res  *cgroup.Resolver
	pods *kube.Pods
	e    *enrich.Enricher
	ctx  context.Context

	podsOnce sync.Once

	mu      sync.Mutex
	watched map[uint64]bool
	records []enrich.Record
	counts  []enrich.Count
	drains  int
}

type rigOpts struct {
	hold       time.Duration
	scope      enrich.Scope
	deletedTTL time.Duration
	// lateInformer leaves the pod informer stopped until startPods.
	lateInformer bool
}

func newRig(t *testing.T, o rigOpts) *rig {
	t.Helper()
	env := testenv.Shared(t)
	log := zaptest.NewLogger(t)
	r := &rig{t: t, c: env.Client, watched: map[uint64]bool{}}
	r.ns = env.Namespace(t)
	r.node = "node-" + r.ns
	ctx, cancel := context.WithCancel(context.Background())
	r.ctx = ctx
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})

	var err error
	r.res, err = cgroup.NewResolver(cgroup.Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.res.Close() })
	go2(&wg, func() { r.res.Run(ctx) })

	keys, err := o.scope.LabelKeys()
	if err != nil {
		t.Fatal(err)
	}
	kc, err := kube.NewClient(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	r.pods, err = kube.New(kc, kube.Options{Node: r.node, DeletedTTL: o.deletedTTL,
		Labels: kube.DefaultLabelFilter().With(keys...), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	r.s, err = sensor.Load(sensor.Config{RecordsPerWindow: 100, ExcludeSelf: true, Logger: log})
	if err != nil {
		t.Fatalf("load sensor: %v", err)
	}
	t.Cleanup(func() { r.s.Close() })
	r.e, err = enrich.New(enrich.Options{
		Node: r.node, Cgroups: r.res, Pods: r.pods, Hold: o.hold,
		Scope: o.scope, Filter: r.s, Logger: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	go2(&wg, func() { r.e.Run(ctx) })
	if !o.lateInformer {
		r.startPods()
	}
	if _, err := r.s.Drain(); err != nil {
		t.Fatal(err)
	}
	go2(&wg, func() { r.loop(ctx) })
	// Cleanups run last-in first-out: this one stops the loops before the
	// sensor and the resolver above are closed.
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	return r
}

func go2(wg *sync.WaitGroup, f func()) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		f()
	}()
}

// startPods starts the pod informer and waits for its first list.
func (r *rig) startPods() {
	r.t.Helper()
	r.podsOnce.Do(func() {
		done := make(chan struct{})
		ctx, cancel := context.WithCancel(r.ctx)
		go func() {
			defer close(done)
			r.pods.Run(ctx)
		}()
		r.t.Cleanup(func() {
			cancel()
			<-done
		})
	})
	ctx, cancel := context.WithTimeout(r.ctx, 30*time.Second)
	defer cancel()
	if err := r.pods.WaitForSync(ctx); err != nil {
		r.t.Fatal(err)
	}
}

// loop is the agent's drain loop: records are gathered as they come, and
// every 100 ms the interval is drained and enriched with them.
func (r *rig) loop(ctx context.Context) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var buf []sensor.Record
	for {
		select {
		case <-ctx.Done():
			return
		case rec, ok := <-r.s.Records():
			if !ok {
				return
			}
			buf = append(buf, rec)
		case <-tick.C:
			iv, err := r.s.Drain()
			if err != nil {
				r.t.Errorf("drain: %v", err)
				return
			}
			b := r.e.EnrichInterval(iv, buf)
			buf = nil
			r.mu.Lock()
			r.drains++
			for _, c := range b.Counts {
				if r.watched[c.CgroupID] {
					r.counts = append(r.counts, c)
				}
			}
			for _, rec := range b.Records {
				if r.watched[rec.CgroupID] {
					r.records = append(r.records, rec)
				}
			}
			r.mu.Unlock()
		}
	}
}

// cgroup makes a test cgroup at rel whose enriched data the rig keeps.
func (r *rig) cgroup(rel string) *cgrouptest.Dir {
	r.t.Helper()
	cg := cgrouptest.New(r.t, rel)
	r.watch(cg.ID)
	return cg
}

func (r *rig) watch(id uint64) {
	r.mu.Lock()
	r.watched[id] = true
	r.mu.Unlock()
}

// data returns what the rig kept for cgroup id.
func (r *rig) data(id uint64) (recs []enrich.Record, counts []enrich.Count) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rec := range r.records {
		if rec.CgroupID == id {
			recs = append(recs, rec)
		}
	}
	for _, c := range r.counts {
		if c.CgroupID == id {
			counts = append(counts, c)
		}
	}
	return recs, counts
}

var enoentKey = func(id uint64) sensor.Key {
	return sensor.Key{CgroupID: id, Syscall: unix.SYS_OPENAT, Errno: uint16(unix.ENOENT)}
}

// counted returns the enriched openat ENOENT count of cgroup id.
func (r *rig) counted(id uint64) uint64 {
	_, counts := r.data(id)
	var n uint64
	for _, c := range counts {
		if c.Key == enoentKey(id) {
			n += c.Count.Count
		}
	}
	return n
}

// waitCounted waits until n failures of cgroup id came out enriched.
func (r *rig) waitCounted(id uint64, n uint64) {
	r.t.Helper()
	eventually(r.t, fmt.Sprintf("%d failures of cgroup %d enriched", n, id), func() bool { return r.counted(id) >= n })
	if got := r.counted(id); got != n {
		r.t.Fatalf("cgroup %d: %d failures enriched, made %d", id, got, n)
	}
}

// drained waits for k more drains, so that what the kernel counted so far
// has been through the enricher.
func (r *rig) drained(k int) {
	r.t.Helper()
	r.mu.Lock()
	start := r.drains
	r.mu.Unlock()
	eventually(r.t, "drains", func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.drains >= start+k
	})
}

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

// pod creates a pod on the rig's node with one container per name.
func (r *rig) pod(name string, labels map[string]string, owner *metav1.OwnerReference, containers ...string) *corev1.Pod {
	r.t.Helper()
	return r.podIn(r.ns, name, labels, owner, containers...)
}

func (r *rig) podIn(ns, name string, labels map[string]string, owner *metav1.OwnerReference, containers ...string) *corev1.Pod {
	r.t.Helper()
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels},
		Spec:       corev1.PodSpec{NodeName: r.node},
	}
	if owner != nil {
		p.OwnerReferences = []metav1.OwnerReference{*owner}
	}
	for _, c := range containers {
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: c, Image: "registry.example/" + c + ":1.0"})
	}
	out, err := r.c.CoreV1().Pods(ns).Create(context.Background(), p, metav1.CreateOptions{})
	if err != nil {
		r.t.Fatalf("create pod %s: %v", name, err)
	}
	return out
}

// status reports containers (name -> "<runtime>://<id>") in the pod's
// status, as kubelet does once the runtime started them; last names the
// previous id of restarted ones.
func (r *rig) status(p *corev1.Pod, ids map[string]string, last map[string]string) {
	r.t.Helper()
	cur, err := r.c.CoreV1().Pods(p.Namespace).Get(context.Background(), p.Name, metav1.GetOptions{})
	if err != nil {
		r.t.Fatal(err)
	}
	cur.Status.ContainerStatuses = nil
	for _, c := range cur.Spec.Containers {
		st := corev1.ContainerStatus{Name: c.Name, ContainerID: ids[c.Name], Image: c.Image}
		if l := last[c.Name]; l != "" {
			st.RestartCount = 1
			st.LastTerminationState.Terminated = &corev1.ContainerStateTerminated{ContainerID: l, ExitCode: 1}
		}
		cur.Status.ContainerStatuses = append(cur.Status.ContainerStatuses, st)
	}
	if _, err := r.c.CoreV1().Pods(p.Namespace).UpdateStatus(context.Background(), cur, metav1.UpdateOptions{}); err != nil {
		r.t.Fatalf("update status of %s: %v", p.Name, err)
	}
}

func (r *rig) deletePod(p *corev1.Pod) {
	r.t.Helper()
	zero := int64(0)
	if err := r.c.CoreV1().Pods(p.Namespace).Delete(context.Background(), p.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
		r.t.Fatalf("delete pod %s: %v", p.Name, err)
	}
}

// statusID is a container id as pod status shows it for runtime.
func statusID(runtime, id string) string {
	switch runtime {
	case cgroup.RuntimeCRIO:
		return "cri-o://" + id
	case cgroup.RuntimeDocker:
		return "docker://" + id
	}
	return "containerd://" + id
}

// want is the pod metadata a cgroup's data must carry.
type want struct {
	ns, pod, uid, container, containerID, image string
	workload                                    string // "Kind/name"
}

// coverage checks that every record and count of cgroup id carries w, and
// returns the share of records that carried pod metadata (for the closing
// note) and how many there were.
func coverage(t *testing.T, r *rig, id uint64, w want) (float64, int) {
	t.Helper()
	recs, counts := r.data(id)
	ok := 0
	check := func(what string, m *enrich.Meta) bool {
		good := m != nil && !m.Host && !m.Unresolved && m.Namespace == w.ns && m.Pod == w.pod && m.PodUID == w.uid &&
			m.Container == w.container && m.ContainerID == w.containerID && m.Image == w.image && m.Node == r.node &&
			(w.workload == "" || m.Workload.Kind+"/"+m.Workload.Name == w.workload)
		if !good {
			t.Errorf("%s of cgroup %d: meta %+v, want %+v", what, id, m, w)
		}
		return good
	}
	for _, rec := range recs {
		if check("record", rec.Meta) {
			ok++
		}
	}
	for _, c := range counts {
		check("count", c.Meta)
	}
	if len(recs) == 0 {
		t.Errorf("cgroup %d: no records", id)
		return 0, 0
	}
	return float64(ok) / float64(len(recs)), len(recs)
}
