package enrich_test

import (
	"context"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/errnowatch/errnowatch/internal/testenv"
	"github.com/errnowatch/errnowatch/pkg/cgroup"
	"github.com/errnowatch/errnowatch/pkg/cgroup/cgrouptest"
	"github.com/errnowatch/errnowatch/pkg/enrich"
)

// scoped is a pod with a running container for the scope tests.
type scoped struct {
	pod *corev1.Pod
	cg  *cgrouptest.Dir
	c   *child
}

func (r *rig) scopedPod(ns, name string, labels map[string]string) *scoped {
	r.t.Helper()
	p := r.podIn(ns, name, labels, nil, "app")
	id := cgrouptest.ContainerID()
	r.status(p, map[string]string{"app": statusID(cgroup.RuntimeContainerd, id)}, nil)
	cg := r.cgroup(cgrouptest.KubeletPath(cgroup.DriverSystemd, cgroup.RuntimeContainerd, cgroup.QoSBurstable, string(p.UID), id))
	return &scoped{pod: p, cg: cg}
}

// waitScope waits until the sensor's include set holds or lacks each cgroup
// as wanted: the scope follows pods and cgroups asynchronously.
func (r *rig) waitScope(in, out []*cgrouptest.Dir) {
	r.t.Helper()
	eventually(r.t, "scope applied", func() bool {
		include, _ := r.e.ScopeCgroups()
		for _, cg := range in {
			if !slices.Contains(include, cg.ID) {
				return false
			}
		}
		for _, cg := range out {
			if slices.Contains(include, cg.ID) {
				return false
			}
		}
		return true
	})
}

// The scope "namespace A, app=web" reaches the kernel: only the pod in scope
// is counted, the others (another label, another namespace, the host) cost
// nothing but the kernel's first check and are counted zero. A pod whose
// labels change, and a pod made later, follow.
func TestScopeNamespaceAndSelector(t *testing.T) {
	env := testenv.Shared(t)
	nsA, nsB := env.Namespace(t), env.Namespace(t)
	r := newRig(t, rigOpts{scope: enrich.Scope{Namespaces: []string{nsA}, Selector: "app=web"}})

	inScope := r.scopedPod(nsA, "web", map[string]string{"app": "web"})
	otherLabel := r.scopedPod(nsA, "db", map[string]string{"app": "db"})
	otherNS := r.scopedPod(nsB, "web", map[string]string{"app": "web"})
	host := r.cgroup("system.slice/errnowatch-scope.service")
	r.waitScope([]*cgrouptest.Dir{inScope.cg}, []*cgrouptest.Dir{otherLabel.cg, otherNS.cg, host})

	for _, s := range []*scoped{inScope, otherLabel, otherNS} {
		s.c = startChild(t, s.cg, 0)
		s.c.fail(100)
	}
	hc := startChild(t, host, 0)
	hc.fail(100)
	r.waitCounted(inScope.cg.ID, 100)
	r.drained(2)
	for name, cg := range map[string]*cgrouptest.Dir{"other label": otherLabel.cg, "other namespace": otherNS.cg, "host": host} {
		if n := r.counted(cg.ID); n != 0 {
			t.Errorf("%s: kernel counted %d failures out of scope", name, n)
		}
	}

	// Relabelled into scope: counted from then on.
	cur, err := r.c.CoreV1().Pods(nsA).Get(context.Background(), "db", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cur.Labels["app"] = "web"
	if _, err := r.c.CoreV1().Pods(nsA).Update(context.Background(), cur, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	r.waitScope([]*cgrouptest.Dir{inScope.cg, otherLabel.cg}, nil)
	otherLabel.c.fail(30)
	r.waitCounted(otherLabel.cg.ID, 30)

	// A pod made after the start, whose cgroup appears after its pod.
	late := r.scopedPod(nsA, "late", map[string]string{"app": "web"})
	r.waitScope([]*cgrouptest.Dir{late.cg}, nil)
	lc := startChild(t, late.cg, 0)
	lc.fail(40)
	r.waitCounted(late.cg.ID, 40)
	st := r.e.Stats()
	t.Logf("scope stats: include %d, updates %d, pod cgroups watched %d", st.ScopeInclude, st.ScopeUpdates, st.ScopePodCgroups)
	if st.ScopeErrors != 0 {
		t.Errorf("scope errors: %d", st.ScopeErrors)
	}
}

// An exclude-only scope counts everything but the excluded pods, the host
// included.
func TestScopeExclude(t *testing.T) {
	env := testenv.Shared(t)
	nsB := env.Namespace(t)
	r := newRig(t, rigOpts{scope: enrich.Scope{ExcludeNamespaces: []string{nsB}, ExcludeSelector: "tier=cache"}})
	kept := r.scopedPod(r.ns, "api", map[string]string{"tier": "api"})
	cache := r.scopedPod(r.ns, "cache", map[string]string{"tier": "cache"})
	excluded := r.scopedPod(nsB, "web", nil)
	host := r.cgroup("system.slice/errnowatch-scope-ex.service")
	eventually(t, "exclusions applied", func() bool {
		_, exclude := r.e.ScopeCgroups()
		return slices.Contains(exclude, cache.cg.ID) && slices.Contains(exclude, excluded.cg.ID) &&
			!slices.Contains(exclude, kept.cg.ID)
	})
	for _, s := range []*scoped{kept, cache, excluded} {
		s.c = startChild(t, s.cg, 0)
		s.c.fail(50)
	}
	hc := startChild(t, host, 0)
	hc.fail(50)
	r.waitCounted(kept.cg.ID, 50)
	r.waitCounted(host.ID, 50)
	r.drained(2)
	for name, cg := range map[string]*cgrouptest.Dir{"tier=cache": cache.cg, "excluded namespace": excluded.cg} {
		if n := r.counted(cg.ID); n != 0 {
			t.Errorf("%s: kernel counted %d failures of an excluded pod", name, n)
		}
	}
}

func TestScopeRejectsBadSelector(t *testing.T) {
	if _, err := (enrich.Scope{Selector: "app in (a"}).LabelKeys(); err == nil {
		t.Error("a broken selector parsed")
	}
	keys, err := (enrich.Scope{Selector: "app=web,team in (a,b)", ExcludeSelector: "!canary"}).LabelKeys()
	if err != nil || !slices.Equal(keys, []string{"app", "team", "canary"}) {
		t.Errorf("keys = %v, %v", keys, err)
	}
}
