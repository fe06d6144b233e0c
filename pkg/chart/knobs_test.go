package chart

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/engine"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func volumeNames(vs []corev1.Volume) []string {
	var out []string
	for _, v := range vs {
		out = append(out, v.Name)
	}
	return out
}

func mountOf(c *corev1.Container, name string) (corev1.VolumeMount, bool) {
	for _, m := range c.VolumeMounts {
		if m.Name == name {
			return m, true
		}
	}
	return corev1.VolumeMount{}, false
}

// The agent knobs of ci/observability-values.yaml reach the pod, and the
// hardened parts of the pod stay as they are by default.
func TestAgentKnobs(t *testing.T) {
	r := render(t, valuesFile(t, "observability"))
	ds := get[appsv1.DaemonSet](t, r, "DaemonSet", "errnowatch-agent")
	pod := ds.Spec.Template.Spec
	if n := len(pod.Containers); n != 2 || pod.Containers[0].Name != "agent" || pod.Containers[1].Name != "log-shipper" {
		t.Fatalf("containers %v, want agent then the extra log-shipper", pod.Containers)
	}
	c := &pod.Containers[0]
	if !slices.Contains(volumeNames(pod.Volumes), "audit") {
		t.Errorf("extraVolumes missing: %v", volumeNames(pod.Volumes))
	}
	if m, ok := mountOf(c, "audit"); !ok || m.MountPath != "/var/log/errnowatch" {
		t.Errorf("extraVolumeMounts missing: %+v", c.VolumeMounts)
	}
	if p := c.LivenessProbe; p.PeriodSeconds != 20 || p.FailureThreshold != 3 || p.TimeoutSeconds != 2 || p.HTTPGet.Path != "/healthz" || p.HTTPGet.Port.StrVal != "health" {
		t.Errorf("liveness probe %+v", p)
	}
	if p := c.StartupProbe; p.PeriodSeconds != 5 || p.FailureThreshold != 30 || p.HTTPGet.Path != "/healthz" {
		t.Errorf("startup probe %+v", p)
	}
	if p := c.ReadinessProbe; p.PeriodSeconds != 10 || p.HTTPGet.Path != "/readyz" {
		t.Errorf("readiness probe %+v", p)
	}
	for _, want := range []string{"--pod-metrics", "--pod-metrics-max-series=200"} {
		if !slices.Contains(c.Args, want) {
			t.Errorf("agent args lack %s: %v", want, c.Args)
		}
	}
	sc := c.SecurityContext
	if sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeLocalhost || *sc.SeccompProfile.LocalhostProfile != "profiles/errnowatch-agent.json" {
		t.Errorf("container seccomp %+v, want the Localhost profile", sc.SeccompProfile)
	}
	if *sc.Privileged || *sc.AllowPrivilegeEscalation || !*sc.ReadOnlyRootFilesystem ||
		!reflect.DeepEqual(capNames(sc.Capabilities.Add), []string{"BPF", "DAC_READ_SEARCH", "PERFMON"}) ||
		!reflect.DeepEqual(capNames(sc.Capabilities.Drop), []string{"ALL"}) {
		t.Errorf("agent container security context weakened: %+v", sc)
	}
	psc := pod.SecurityContext
	if psc.SELinuxOptions == nil || psc.SELinuxOptions.Level != "s0:c123,c456" || *psc.RunAsUser != 0 || psc.SeccompProfile.Type != corev1.SeccompProfileTypeUnconfined {
		t.Errorf("agent pod security context %+v", psc)
	}
	// The hostPath volumes are still exactly the chart's two.
	var hostPaths []string
	for _, v := range pod.Volumes {
		if v.HostPath != nil {
			hostPaths = append(hostPaths, v.Name)
		}
	}
	if !reflect.DeepEqual(hostPaths, []string{"cgroup", "spool"}) {
		t.Errorf("hostPath volumes %v", hostPaths)
	}

	// Defaults: the probes as before the knobs existed, nothing extra.
	_, def := agentDaemonSet(t, render(t, nil))
	if def.LivenessProbe.PeriodSeconds != 10 || def.LivenessProbe.FailureThreshold != 6 || def.ReadinessProbe.PeriodSeconds != 5 ||
		def.StartupProbe.PeriodSeconds != 2 || def.StartupProbe.FailureThreshold != 60 {
		t.Errorf("default probes changed: %+v %+v %+v", def.LivenessProbe, def.ReadinessProbe, def.StartupProbe)
	}
	if slices.ContainsFunc(def.Args, func(a string) bool { return strings.HasPrefix(a, "--pod-metrics") }) {
		t.Errorf("per-pod metrics on by default: %v", def.Args)
	}
	if def.SecurityContext.SeccompProfile != nil || def.SecurityContext.SELinuxOptions != nil {
		t.Errorf("default container security context grew fields: %+v", def.SecurityContext)
	}
}

// The collector knobs reach its pod; the pod stays non-root and confined.
func TestCollectorKnobs(t *testing.T) {
	r := render(t, valuesFile(t, "observability"))
	ss := get[appsv1.StatefulSet](t, r, "StatefulSet", "errnowatch-collector")
	pod := ss.Spec.Template.Spec
	if n := len(pod.Containers); n != 2 || pod.Containers[1].Name != "siem-forwarder" {
		t.Fatalf("containers %v, want collector then siem-forwarder", pod.Containers)
	}
	fwd := pod.Containers[1]
	if fwd.Args[0] != "alerts" || fwd.Args[1] != "stream" {
		t.Errorf("forwarder args %v", fwd.Args)
	}
	c := &pod.Containers[0]
	if m, ok := mountOf(c, "siem-token"); !ok || !m.ReadOnly {
		t.Errorf("extraVolumeMounts missing: %+v", c.VolumeMounts)
	}
	if !slices.Contains(volumeNames(pod.Volumes), "siem-token") {
		t.Errorf("extraVolumes missing: %v", volumeNames(pod.Volumes))
	}
	psc := pod.SecurityContext
	if *psc.RunAsUser != 1000650000 || *psc.RunAsGroup != 1000650000 || *psc.FSGroup != 1000650000 || !*psc.RunAsNonRoot ||
		psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault || *psc.FSGroupChangePolicy != corev1.FSGroupChangeOnRootMismatch {
		t.Errorf("collector pod security context %+v", psc)
	}
	sc := c.SecurityContext
	if sc.SELinuxOptions == nil || sc.SELinuxOptions.Level != "s0:c26,c5" || *sc.Privileged || *sc.AllowPrivilegeEscalation ||
		!*sc.ReadOnlyRootFilesystem || !*sc.RunAsNonRoot || !reflect.DeepEqual(capNames(sc.Capabilities.Drop), []string{"ALL"}) {
		t.Errorf("collector container security context %+v", sc)
	}
	if p := c.StartupProbe; p.FailureThreshold != 300 || p.HTTPGet.Path != "/healthz" {
		t.Errorf("startup probe %+v", p)
	}
	if p := c.ReadinessProbe; p.TimeoutSeconds != 3 || p.HTTPGet.Path != "/readyz" {
		t.Errorf("readiness probe %+v", p)
	}

	def := get[appsv1.StatefulSet](t, render(t, nil), "StatefulSet", "errnowatch-collector").Spec.Template.Spec
	if p := def.Containers[0].StartupProbe; p.PeriodSeconds != 2 || p.FailureThreshold != 150 {
		t.Errorf("default startup probe %+v", p)
	}
}

// The collector's PodDisruptionBudget exists only with more than one
// replica, and selects exactly the collector pods.
func TestCollectorPodDisruptionBudget(t *testing.T) {
	r := render(t, valuesFile(t, "observability"))
	pdb := get[policyv1.PodDisruptionBudget](t, r, "PodDisruptionBudget", "errnowatch-collector")
	ss := get[appsv1.StatefulSet](t, r, "StatefulSet", "errnowatch-collector")
	if pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.IntValue() != 1 || pdb.Spec.MinAvailable != nil {
		t.Errorf("PDB spec %+v, want maxUnavailable 1", pdb.Spec)
	}
	if !reflect.DeepEqual(pdb.Spec.Selector.MatchLabels, ss.Spec.Selector.MatchLabels) {
		t.Errorf("PDB selects %v, the collector pods are %v", pdb.Spec.Selector.MatchLabels, ss.Spec.Selector.MatchLabels)
	}
	if n := len(render(t, nil).all("PodDisruptionBudget")); n != 0 {
		t.Errorf("%d PDBs with one replica, want none (it would block drains)", n)
	}
	pg := "collector: {replicas: 3, store: {type: postgres, postgres: {existingSecret: pg}}, podDisruptionBudget: {maxUnavailable: \"50%\"}}"
	pdb = get[policyv1.PodDisruptionBudget](t, render(t, values(t, pg)), "PodDisruptionBudget", "errnowatch-collector")
	if pdb.Spec.MaxUnavailable.StrVal != "50%" {
		t.Errorf("maxUnavailable %v, want 50%%", pdb.Spec.MaxUnavailable)
	}
	off := "collector: {replicas: 3, store: {type: postgres, postgres: {existingSecret: pg}}, podDisruptionBudget: {enabled: false}}"
	if n := len(render(t, values(t, off)).all("PodDisruptionBudget")); n != 0 {
		t.Errorf("podDisruptionBudget.enabled false still renders %d", n)
	}
}

// The scrape options reach both ServiceMonitors; the agent's keeps its node
// relabeling first and honours its series' namespace and pod labels.
func TestServiceMonitorOptions(t *testing.T) {
	r := render(t, valuesFile(t, "observability"))
	for _, name := range []string{"errnowatch-agent", "errnowatch-collector"} {
		o, _ := r.find("ServiceMonitor", name)
		u := decode[unstructured.Unstructured](t, o)
		eps, _, _ := unstructured.NestedSlice(u.Object, "spec", "endpoints")
		if len(eps) != 1 {
			t.Fatalf("%s endpoints %v", name, eps)
		}
		ep := eps[0].(map[string]any)
		if ep["interval"] != "15s" || ep["scrapeTimeout"] != "10s" || ep["scheme"] != "https" {
			t.Errorf("%s endpoint %v", name, ep)
		}
		if sn, _, _ := unstructured.NestedString(ep, "tlsConfig", "serverName"); sn != "errnowatch-metrics" {
			t.Errorf("%s tlsConfig %v", name, ep["tlsConfig"])
		}
		relabel, _ := ep["relabelings"].([]any)
		last, _ := relabel[len(relabel)-1].(map[string]any)
		if last["targetLabel"] != "cluster" {
			t.Errorf("%s relabelings %v, want the user's last", name, relabel)
		}
		if mr, _ := ep["metricRelabelings"].([]any); len(mr) != 1 {
			t.Errorf("%s metricRelabelings %v", name, ep["metricRelabelings"])
		}
		if name == "errnowatch-agent" {
			if first := relabel[0].(map[string]any); first["targetLabel"] != "node" {
				t.Errorf("agent relabelings %v, want node first", relabel)
			}
			if ep["honorLabels"] != true {
				t.Error("agent endpoint does not honour its series' namespace/pod labels")
			}
		}
	}
	// Defaults: plain http, no timeout, no TLS.
	o, _ := render(t, values(t, "serviceMonitor: {enabled: true}")).find("ServiceMonitor", "errnowatch-collector")
	ep := decode[unstructured.Unstructured](t, o).Object["spec"].(map[string]any)["endpoints"].([]any)[0].(map[string]any)
	if ep["scheme"] != "http" || ep["scrapeTimeout"] != nil || ep["tlsConfig"] != nil || ep["relabelings"] != nil {
		t.Errorf("default collector endpoint %v", ep)
	}
}

// The security-context knobs cannot weaken the hardened defaults: the
// schema refuses every field that would.
func TestSchemaRefusesWeakerSecurityContexts(t *testing.T) {
	ch := loadChart(t)
	for _, doc := range []string{
		"agent: {securityContext: {privileged: true}}",
		"agent: {securityContext: {allowPrivilegeEscalation: true}}",
		"agent: {securityContext: {capabilities: {add: [SYS_ADMIN]}}}",
		"agent: {securityContext: {readOnlyRootFilesystem: false}}",
		"agent: {securityContext: {seccompProfile: {type: Unconfined}}}",
		"agent: {securityContext: {seccompProfile: {type: Localhost}}}",
		"agent: {securityContext: {seLinuxOptions: {type: spc_t}}}",
		"agent: {podSecurityContext: {runAsUser: 1000}}",
		"agent: {podSecurityContext: {seccompProfile: {type: Unconfined}}}",
		"agent: {podSecurityContext: {sysctls: [{name: kernel.msgmax, value: '1'}]}}",
		"collector: {podSecurityContext: {runAsUser: 0}}",
		"collector: {podSecurityContext: {runAsNonRoot: false}}",
		"collector: {podSecurityContext: {seccompProfile: {type: Unconfined}}}",
		"collector: {podSecurityContext: {seLinuxOptions: {user: system_u}}}",
		"collector: {securityContext: {privileged: true}}",
		"collector: {securityContext: {runAsUser: 0}}",
		"collector: {securityContext: {capabilities: {add: [NET_ADMIN]}}}",
		"agent: {probes: {liveness: {exec: {command: [/bin/true]}}}}",
		"agent: {probes: {liveness: {periodSeconds: 0}}}",
		"agent: {podMetrics: {maxSeries: 0}}",
		"agent: {extraContainers: [{name: x}]}",
		"collector: {extraVolumeMounts: [{name: x}]}",
		"collector: {podDisruptionBudget: {maxUnavailable: 0}}",
		"serviceMonitor: {scheme: ftp}",
		"prometheusRule: {enabled: true, severity: page}",
	} {
		if _, err := renderWith(ch, engine.Engine{}, values(t, doc)); err == nil {
			t.Errorf("schema accepted %s", doc)
		}
	}
}
