package enrich_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"

	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/errnowatch/errnowatch/internal/testenv"
	"github.com/errnowatch/errnowatch/pkg/cgroup"
	"github.com/errnowatch/errnowatch/pkg/cgroup/cgrouptest"
	"github.com/errnowatch/errnowatch/pkg/enrich"
	"github.com/errnowatch/errnowatch/pkg/kube"
)

// The informer and the enricher with 1 000 pods on the node, each with two
// containers and the labels and annotations real charts put on pods, and a
// Meta cached for each pod's container cgroup: the heap they add stays under
// 64 MiB.
func TestMemoryThousandPods(t *testing.T) {
	env := testenv.Shared(t)
	ns := env.Namespace(t)
	node := "node-" + ns
	const pods = 1000
	top := cgrouptest.New(t, "kubepods")

	// Pods first, as a node has them when the agent starts.
	type made struct {
		uid, id string
	}
	all := make([]made, pods)
	work := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				p := bigPod(ns, node, i)
				out, err := env.Client.CoreV1().Pods(ns).Create(context.Background(), p, metav1.CreateOptions{})
				if err != nil {
					t.Errorf("create pod: %v", err)
					continue
				}
				id := cgrouptest.ContainerID()
				out.Status.ContainerStatuses = []corev1.ContainerStatus{
					{Name: "app", ContainerID: "containerd://" + id, Image: "registry.example/app:1.0", ImageID: "sha256:" + id, Ready: true},
					{Name: "proxy", ContainerID: "containerd://" + cgrouptest.ContainerID(), Image: "envoy:1.30", Ready: true},
				}
				if _, err := env.Client.CoreV1().Pods(ns).UpdateStatus(context.Background(), out, metav1.UpdateOptions{}); err != nil {
					t.Errorf("update status: %v", err)
				}
				all[i] = made{string(out.UID), id}
			}
		}()
	}
	for i := 0; i < pods; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	ids := make([]uint64, pods)
	for i, m := range all {
		ids[i] = top.Mkdir("besteffort/pod" + m.uid + "/" + m.id).ID
	}

	res, err := cgroup.NewResolver(cgroup.Options{Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()

	heap0, rss0 := memory()
	kc, err := kube.NewClient(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	pw, err := kube.New(kc, kube.Options{Node: node, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	e, err := enrich.New(enrich.Options{Node: node, Cgroups: res, Pods: pw})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		pw.Run(ctx)
	}()
	defer func() {
		cancel()
		<-done
	}()
	if err := pw.WaitForSync(ctx); err != nil {
		t.Fatal(err)
	}
	resolved := 0
	for _, id := range ids {
		if m, ok := e.Lookup(id); ok && m.Container == "app" {
			resolved++
		}
	}
	heap1, rss1 := memory()
	st := e.Stats()
	t.Logf("1000 pods: informer+enricher heap in use +%.1f MiB (%.1f MiB total), process RSS %.1f MiB (+%.1f MiB); %d metas resolved, %d cached, pods %+v",
		mib(heap1-heap0), mib(heap1), mib(rss1), mib(rss1-rss0), resolved, st.Cached, st.Pods)
	if resolved != pods || st.Pods.Pods != pods {
		t.Errorf("resolved %d of %d pods, informer has %d", resolved, pods, st.Pods.Pods)
	}
	if d := heap1 - heap0; d > 64<<20 {
		t.Errorf("informer and enricher hold %.1f MiB of heap, more than 64 MiB", mib(d))
	}
	runtime.KeepAlive(e)
}

func bigPod(ns, node string, i int) *corev1.Pod {
	name := fmt.Sprintf("shop-7d9f8b6c5-%05d", i)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: ns, Name: name,
			Labels: map[string]string{
				"app": "shop", "app.kubernetes.io/name": "shop", "app.kubernetes.io/instance": "shop-prod",
				"app.kubernetes.io/version": "1.2.3", "helm.sh/chart": "shop-1.2.3", "pod-template-hash": "7d9f8b6c5",
				"security.istio.io/tlsMode": "istio", "service.istio.io/canonical-name": "shop",
			},
			Annotations: map[string]string{
				"kubectl.kubernetes.io/last-applied-configuration": strings.Repeat("x", 2048),
				"prometheus.io/scrape":                             "true", "sidecar.istio.io/status": strings.Repeat("y", 512),
			},
		},
		Spec: corev1.PodSpec{
			NodeName: node,
			Containers: []corev1.Container{
				{Name: "app", Image: "registry.example/app:1.0", Args: []string{"--port=8080", "--log-level=info"},
					Env: []corev1.EnvVar{{Name: "A", Value: strings.Repeat("v", 100)}, {Name: "B", Value: "w"}}},
				{Name: "proxy", Image: "envoy:1.30", Args: []string{"proxy", "sidecar"}},
			},
		},
	}
}

// memory returns the heap in use after a collection, and the process's RSS.
func memory() (heap, rss uint64) {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			rss = kb << 10
		}
	}
	return ms.HeapInuse, rss
}

func mib(b uint64) float64 { return float64(int64(b)) / (1 << 20) }
