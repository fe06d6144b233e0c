package chart

import (
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// Every combination renders, every object decodes strictly into its type,
// names are unique, and namespaced objects carry the release namespace (so
// the rendered manifests apply without -n).
func TestCombinationsRenderValidObjects(t *testing.T) {
	for _, name := range combinations(t) {
		t.Run(name, func(t *testing.T) {
			r := render(t, valuesFile(t, name))
			seen := map[string]bool{}
			for _, o := range r.Objects {
				key := o.Kind + "/" + o.Namespace + "/" + o.Name
				if seen[key] {
					t.Errorf("%v rendered twice", o)
				}
				seen[key] = true
				if o.Name == "" {
					t.Errorf("%v has no name", o)
				}
				switch {
				case typed[o.Kind] != nil:
					v := typed[o.Kind]()
					if err := yamlStrict(o.YAML, v); err != nil {
						t.Errorf("%v: %v", o, err)
					}
				case crdKinds[o.Kind] != "":
					if o.APIVersion != crdKinds[o.Kind] {
						t.Errorf("%v: apiVersion %s, want %s", o, o.APIVersion, crdKinds[o.Kind])
					}
				default:
					t.Errorf("%v: kind the test does not know; add it to typed", o)
				}
				clusterScoped := o.Kind == "ClusterRole" || o.Kind == "ClusterRoleBinding"
				switch {
				case clusterScoped && o.Namespace != "":
					t.Errorf("%v: cluster-scoped object with a namespace", o)
				case !clusterScoped && o.Namespace == "":
					t.Errorf("%v: namespaced object without a namespace", o)
				case !clusterScoped && o.Namespace != releaseNamespace && o.Kind != "Role" && o.Kind != "RoleBinding":
					t.Errorf("%v: outside the release namespace", o)
				}
			}
			if len(r.Objects) == 0 {
				t.Fatal("nothing rendered")
			}
		})
	}
}

func agentDaemonSet(t testing.TB, r *rendered) (*appsv1.DaemonSet, *corev1.Container) {
	t.Helper()
	ds := get[appsv1.DaemonSet](t, r, "DaemonSet", "errnowatch-agent")
	if n := len(ds.Spec.Template.Spec.Containers); n != 1 {
		t.Fatalf("agent pod has %d containers, want 1", n)
	}
	if n := len(ds.Spec.Template.Spec.InitContainers); n != 0 {
		t.Fatalf("agent pod has %d init containers, want none", n)
	}
	return ds, &ds.Spec.Template.Spec.Containers[0]
}

func capNames(cs []corev1.Capability) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = string(c)
	}
	sort.Strings(out)
	return out
}

// The default agent: not privileged, exactly BPF, PERFMON and
// DAC_READ_SEARCH over drop ALL, no host namespaces, every host path
// read-only except the spool.
func TestAgentLeastPrivilegeByDefault(t *testing.T) {
	r := render(t, nil)
	ds, c := agentDaemonSet(t, r)
	pod := ds.Spec.Template.Spec
	sc := c.SecurityContext
	if sc == nil || sc.Capabilities == nil {
		t.Fatal("agent container has no capabilities")
	}
	if sc.Privileged == nil || *sc.Privileged {
		t.Errorf("privileged = %v, want false", sc.Privileged)
	}
	if got, want := capNames(sc.Capabilities.Add), []string{"BPF", "DAC_READ_SEARCH", "PERFMON"}; !reflect.DeepEqual(got, want) {
		t.Errorf("capabilities added = %v, want exactly %v", got, want)
	}
	if got := capNames(sc.Capabilities.Drop); !reflect.DeepEqual(got, []string{"ALL"}) {
		t.Errorf("capabilities dropped = %v, want [ALL]", got)
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Errorf("allowPrivilegeEscalation = %v, want false", sc.AllowPrivilegeEscalation)
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Error("root filesystem is writable")
	}
	if pod.HostPID || pod.HostNetwork || pod.HostIPC {
		t.Errorf("host namespaces: pid %v network %v ipc %v, want none", pod.HostPID, pod.HostNetwork, pod.HostIPC)
	}
	// Capabilities take effect for uid 0 only.
	if psc := pod.SecurityContext; psc == nil || psc.RunAsUser == nil || *psc.RunAsUser != 0 {
		t.Errorf("pod runAsUser = %v, want 0", psc)
	}
	if psc := pod.SecurityContext; psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeUnconfined {
		t.Errorf("seccomp = %v, want Unconfined by default (see values.yaml agent.seccompProfile)", psc.SeccompProfile)
	}
	if sc.AppArmorProfile != nil {
		t.Errorf("appArmorProfile = %v, want the runtime's default (unset)", sc.AppArmorProfile)
	}

	// Host paths: exactly the cgroup tree (read-only) and the spool.
	hostPaths := map[string]*corev1.HostPathVolumeSource{}
	for _, v := range pod.Volumes {
		if v.HostPath != nil {
			hostPaths[v.Name] = v.HostPath
		}
	}
	if len(hostPaths) != 2 || hostPaths["cgroup"] == nil || hostPaths["spool"] == nil {
		t.Fatalf("hostPath volumes = %v, want exactly cgroup and spool", hostPaths)
	}
	if hp := hostPaths["cgroup"]; hp.Path != "/sys/fs/cgroup" || hp.Type == nil || *hp.Type != corev1.HostPathDirectory {
		t.Errorf("cgroup hostPath = %s %v", hp.Path, hp.Type)
	}
	if hp := hostPaths["spool"]; hp.Path != "/var/lib/errnowatch/spool" || hp.Type == nil || *hp.Type != corev1.HostPathDirectoryOrCreate {
		t.Errorf("spool hostPath = %s %v", hp.Path, hp.Type)
	}
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range c.VolumeMounts {
		mounts[m.Name] = m
		if m.Name != "spool" && !m.ReadOnly {
			t.Errorf("mount %s at %s is writable; only the spool may be", m.Name, m.MountPath)
		}
	}
	if m := mounts["spool"]; m.ReadOnly || m.MountPath != "/var/lib/errnowatch/spool" {
		t.Errorf("spool mount = %+v", m)
	}
	if m := mounts["cgroup"]; m.MountPath != "/host/sys/fs/cgroup" {
		t.Errorf("cgroup mount at %s, want /host/sys/fs/cgroup", m.MountPath)
	}
	for _, m := range c.VolumeMounts {
		if m.MountPropagation != nil && *m.MountPropagation != corev1.MountPropagationNone {
			t.Errorf("mount %s propagates (%s)", m.Name, *m.MountPropagation)
		}
	}

	// The collector token: projected, audience-bound, short-lived; the
	// regular token stays for the pod informer.
	var token *corev1.ServiceAccountTokenProjection
	for _, v := range pod.Volumes {
		if v.Name == "collector-token" && v.Projected != nil && len(v.Projected.Sources) == 1 {
			token = v.Projected.Sources[0].ServiceAccountToken
		}
	}
	if token == nil || token.Audience != "errnowatch" || token.ExpirationSeconds == nil || *token.ExpirationSeconds != 3600 || token.Path != "token" {
		t.Errorf("collector token projection = %+v, want audience errnowatch, 3600s, path token", token)
	}
	if m := mounts["collector-token"]; m.MountPath != "/var/run/secrets/errnowatch" {
		t.Errorf("collector token mounted at %s", m.MountPath)
	}
	if pod.AutomountServiceAccountToken == nil || !*pod.AutomountServiceAccountToken {
		t.Error("the regular ServiceAccount token must stay mounted for the pod informer")
	}
	if pod.ServiceAccountName != "errnowatch-agent" {
		t.Errorf("serviceAccountName = %s", pod.ServiceAccountName)
	}

	// The TLS volume exposes only the CA, from its ConfigMap.
	for _, v := range pod.Volumes {
		if v.Name != "tls" {
			continue
		}
		if v.Projected == nil || len(v.Projected.Sources) != 1 || v.Projected.Sources[0].ConfigMap == nil {
			t.Fatalf("tls volume = %+v, want one projected ConfigMap", v)
		}
		s := v.Projected.Sources[0].ConfigMap
		if s.Name != "errnowatch-collector-ca" || len(s.Items) != 1 || s.Items[0].Key != "ca.crt" {
			t.Errorf("agent tls volume = %+v, want only ca.crt of ConfigMap errnowatch-collector-ca", s)
		}
	}

	wantArgs := []string{
		"agent",
		"--node-name=$(NODE_NAME)",
		"--rules=/etc/errnowatch/rules",
		"--collector=errnowatch-collector.errnowatch.svc:9443",
		"--collector-ca=/etc/errnowatch/tls/ca.crt",
		"--token-file=/var/run/secrets/errnowatch/token",
		"--spool-dir=/var/lib/errnowatch/spool",
		"--cgroup-root=/host/sys/fs/cgroup",
		"--metrics-address=:9090",
		"--health-address=:9091",
		"--log-format=json",
	}
	if !reflect.DeepEqual(c.Args, wantArgs) {
		t.Errorf("agent args =\n  %s\nwant\n  %s", strings.Join(c.Args, "\n  "), strings.Join(wantArgs, "\n  "))
	}
	if len(c.Env) != 2 || c.Env[0].Name != "NODE_NAME" || c.Env[0].ValueFrom == nil ||
		c.Env[0].ValueFrom.FieldRef == nil || c.Env[0].ValueFrom.FieldRef.FieldPath != "spec.nodeName" {
		t.Errorf("env = %+v, want NODE_NAME from spec.nodeName, then the memory limit", c.Env)
	}
	// The agent sets its Go memory limit from the container's (pkg/agent).
	if len(c.Env) == 2 {
		e := c.Env[1]
		if e.Name != "ERRNOWATCH_MEMORY_LIMIT" || e.ValueFrom == nil || e.ValueFrom.ResourceFieldRef == nil ||
			e.ValueFrom.ResourceFieldRef.Resource != "limits.memory" || e.ValueFrom.ResourceFieldRef.ContainerName != "agent" ||
			e.ValueFrom.ResourceFieldRef.Divisor.String() != "1" {
			t.Errorf("env[1] = %+v, want ERRNOWATCH_MEMORY_LIMIT from the agent's limits.memory in bytes", e)
		}
	}
	for _, p := range []*corev1.Probe{c.LivenessProbe, c.ReadinessProbe, c.StartupProbe} {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Port.StrVal != "health" {
			t.Errorf("probe %+v, want HTTP on the health port", p)
		}
	}
	if c.ReadinessProbe.HTTPGet.Path != "/readyz" || c.LivenessProbe.HTTPGet.Path != "/healthz" {
		t.Errorf("probe paths %s %s", c.ReadinessProbe.HTTPGet.Path, c.LivenessProbe.HTTPGet.Path)
	}

	// Every node: tolerate every taint; critical priority; bounded resources.
	if len(pod.Tolerations) != 1 || pod.Tolerations[0].Operator != corev1.TolerationOpExists || pod.Tolerations[0].Key != "" {
		t.Errorf("tolerations = %+v, want one operator Exists", pod.Tolerations)
	}
	if pod.PriorityClassName != "system-node-critical" {
		t.Errorf("priorityClassName = %q", pod.PriorityClassName)
	}
	wantRes := map[string]string{"requests.cpu": "50m", "requests.memory": "64Mi", "limits.cpu": "500m", "limits.memory": "256Mi"}
	gotRes := map[string]string{
		"requests.cpu": qstr(c.Resources.Requests[corev1.ResourceCPU]), "requests.memory": qstr(c.Resources.Requests[corev1.ResourceMemory]),
		"limits.cpu": qstr(c.Resources.Limits[corev1.ResourceCPU]), "limits.memory": qstr(c.Resources.Limits[corev1.ResourceMemory]),
	}
	if !reflect.DeepEqual(gotRes, wantRes) {
		t.Errorf("resources = %v, want %v", gotRes, wantRes)
	}
}

func qstr(q resource.Quantity) string { return q.String() }

// agent.privileged flips the agent to a privileged container (old kernels),
// and nothing else about the pod.
func TestAgentPrivilegedSwitch(t *testing.T) {
	r := render(t, valuesFile(t, "privileged"))
	ds, c := agentDaemonSet(t, r)
	sc := c.SecurityContext
	if sc.Privileged == nil || !*sc.Privileged {
		t.Fatalf("privileged = %v, want true", sc.Privileged)
	}
	if sc.Capabilities != nil {
		t.Errorf("capabilities %+v beside privileged: privileged has them all", sc.Capabilities)
	}
	// Kubernetes rejects allowPrivilegeEscalation false with privileged.
	if sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation {
		t.Error("allowPrivilegeEscalation false with privileged is invalid")
	}
	pod := ds.Spec.Template.Spec
	if pod.HostPID || pod.HostNetwork || pod.HostIPC {
		t.Error("privileged must not bring host namespaces")
	}
	_, def := agentDaemonSet(t, render(t, nil))
	if !reflect.DeepEqual(c.VolumeMounts, def.VolumeMounts) || !reflect.DeepEqual(c.Args, def.Args) {
		t.Error("privileged changed the mounts or flags; it should change the security context only")
	}
}

// Scope, config, seccomp and AppArmor values reach the flags and the
// security context.
func TestAgentScopeAndConfinementValues(t *testing.T) {
	r := render(t, valuesFile(t, "scope"))
	ds, c := agentDaemonSet(t, r)
	for _, want := range []string{
		"--namespaces=shop,payments",
		"--exclude-namespaces=kube-system",
		"--pod-selector=errnowatch.io/watch!=false",
		"--config=/etc/errnowatch/agent.yaml",
	} {
		if !slices.Contains(c.Args, want) {
			t.Errorf("agent args lack %s: %v", want, c.Args)
		}
	}
	if got := ds.Spec.Template.Spec.SecurityContext.SeccompProfile.Type; got != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("seccomp = %s, want RuntimeDefault", got)
	}
	if p := c.SecurityContext.AppArmorProfile; p == nil || p.Type != corev1.AppArmorProfileTypeUnconfined {
		t.Errorf("appArmorProfile = %+v, want Unconfined", p)
	}
	if a := ds.Spec.Template.Annotations["container.apparmor.security.beta.kubernetes.io/agent"]; a != "unconfined" {
		t.Errorf("AppArmor annotation = %q, want unconfined", a)
	}
	var config bool
	for _, m := range c.VolumeMounts {
		if m.Name == "config" {
			config = m.MountPath == "/etc/errnowatch/agent.yaml" && m.SubPath == "agent.yaml" && m.ReadOnly
		}
	}
	if !config {
		t.Errorf("agent.yaml is not mounted read-only at /etc/errnowatch/agent.yaml: %+v", c.VolumeMounts)
	}
	cm := get[corev1.ConfigMap](t, r, "ConfigMap", "errnowatch-agent-config")
	if !strings.Contains(cm.Data["agent.yaml"], "interval: 2s") {
		t.Errorf("agent config = %q", cm.Data["agent.yaml"])
	}
	// The capability set and host paths do not move with these values.
	if got := capNames(c.SecurityContext.Capabilities.Add); !reflect.DeepEqual(got, []string{"BPF", "DAC_READ_SEARCH", "PERFMON"}) {
		t.Errorf("capabilities = %v", got)
	}
}

func TestCollectorRunsNonRootConfined(t *testing.T) {
	r := render(t, nil)
	ss := get[appsv1.StatefulSet](t, r, "StatefulSet", "errnowatch-collector")
	if ss.Spec.Replicas == nil || *ss.Spec.Replicas != 1 {
		t.Errorf("replicas = %v, want 1", ss.Spec.Replicas)
	}
	pod := ss.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers", len(pod.Containers))
	}
	c := pod.Containers[0]
	psc, sc := pod.SecurityContext, c.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser != 65532 {
		t.Errorf("pod security context %+v, want runAsNonRoot and uid 65532", psc)
	}
	if psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("seccomp %+v, want RuntimeDefault", psc.SeccompProfile)
	}
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Error("collector root filesystem is writable")
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.Privileged == nil || *sc.Privileged {
		t.Error("collector may escalate or is privileged")
	}
	if sc.Capabilities == nil || len(sc.Capabilities.Add) != 0 || !reflect.DeepEqual(capNames(sc.Capabilities.Drop), []string{"ALL"}) {
		t.Errorf("capabilities = %+v, want drop ALL and nothing added", sc.Capabilities)
	}
	if pod.HostPID || pod.HostNetwork || pod.HostIPC {
		t.Error("collector uses host namespaces")
	}
	for _, v := range pod.Volumes {
		if v.HostPath != nil {
			t.Errorf("collector has hostPath volume %s", v.Name)
		}
	}
	wantArgs := []string{
		"collector",
		"--listen=:9443",
		"--tls-cert=/etc/errnowatch/tls/tls.crt",
		"--tls-key=/etc/errnowatch/tls/tls.key",
		"--data-dir=/var/lib/errnowatch",
		"--store=sqlite:/var/lib/errnowatch/alerts.db",
		"--retention=720h",
		"--retention-max-alerts=5000000",
		"--retention-max-alerts-per-node=100000",
		"--ui-address=:9444",
		"--auth=kubernetes",
		"--token-audience=errnowatch",
		"--agent-service-accounts=errnowatch:errnowatch-agent",
		"--metrics-address=:9090",
		"--health-address=:9091",
		"--log-format=json",
	}
	if !reflect.DeepEqual(c.Args, wantArgs) {
		t.Errorf("collector args =\n  %s\nwant\n  %s", strings.Join(c.Args, "\n  "), strings.Join(wantArgs, "\n  "))
	}
	if len(ss.Spec.VolumeClaimTemplates) != 1 {
		t.Fatalf("volumeClaimTemplates = %d, want 1", len(ss.Spec.VolumeClaimTemplates))
	}
	pvc := ss.Spec.VolumeClaimTemplates[0]
	if pvc.Name != "data" || qstr(pvc.Spec.Resources.Requests[corev1.ResourceStorage]) != "12Gi" {
		t.Errorf("volume claim %s of %v", pvc.Name, pvc.Spec.Resources.Requests)
	}
	if ss.Spec.ServiceName != "errnowatch-collector-headless" {
		t.Errorf("serviceName = %s", ss.Spec.ServiceName)
	}
	get[corev1.Service](t, r, "Service", "errnowatch-collector-headless")

	svc := get[corev1.Service](t, r, "Service", "errnowatch-collector")
	if svc.Spec.Type != corev1.ServiceTypeClusterIP {
		t.Errorf("service type %s", svc.Spec.Type)
	}
	ports := map[string]int32{}
	for _, p := range svc.Spec.Ports {
		ports[p.Name] = p.Port
	}
	if !reflect.DeepEqual(ports, map[string]int32{"grpc": 9443, "metrics": 9090, "ui": 9444}) {
		t.Errorf("service ports = %v", ports)
	}
	if !reflect.DeepEqual(svc.Spec.Selector, ss.Spec.Selector.MatchLabels) {
		t.Errorf("service selector %v does not match the pods %v", svc.Spec.Selector, ss.Spec.Selector.MatchLabels)
	}
}

// rulesOf flattens a role's rules into "group/resource:verb" strings.
func rulesOf(rules []rbacv1.PolicyRule) []string {
	var out []string
	for _, r := range rules {
		if len(r.NonResourceURLs) > 0 || len(r.ResourceNames) > 0 {
			out = append(out, "unexpected:"+r.String())
		}
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				for _, v := range r.Verbs {
					out = append(out, g+"/"+res+":"+v)
				}
			}
		}
	}
	sort.Strings(out)
	return out
}

func TestRBACIsExactlyWhatEachRoleNeeds(t *testing.T) {
	r := render(t, nil)
	agent := get[rbacv1.ClusterRole](t, r, "ClusterRole", "errnowatch-agent")
	want := []string{"/pods:get", "/pods:list", "/pods:watch", "apps/replicasets:get", "batch/jobs:get"}
	if got := rulesOf(agent.Rules); !reflect.DeepEqual(got, want) {
		t.Errorf("agent may %v, want exactly %v", got, want)
	}
	collector := get[rbacv1.ClusterRole](t, r, "ClusterRole", "errnowatch-collector")
	want = []string{"authentication.k8s.io/tokenreviews:create", "authorization.k8s.io/subjectaccessreviews:create"}
	if got := rulesOf(collector.Rules); !reflect.DeepEqual(got, want) {
		t.Errorf("collector may %v, want exactly %v", got, want)
	}
	for _, name := range []string{"errnowatch-agent", "errnowatch-collector"} {
		b := get[rbacv1.ClusterRoleBinding](t, r, "ClusterRoleBinding", name)
		wantSubject := []rbacv1.Subject{{Kind: "ServiceAccount", Name: name, Namespace: releaseNamespace}}
		if b.RoleRef.Name != name || b.RoleRef.Kind != "ClusterRole" || !reflect.DeepEqual(b.Subjects, wantSubject) {
			t.Errorf("binding %s = %+v %+v", name, b.RoleRef, b.Subjects)
		}
	}
	// The collector's Role (get pods: TestCollectorMayGetAgentPodsOnly).
	// Nothing else grants anything by default.
	if n := len(r.all("ClusterRole")); n != 2 {
		t.Errorf("%d ClusterRoles by default, want 2", n)
	}
	if n := len(r.all("Role")) + len(r.all("RoleBinding")); n != 2 {
		t.Errorf("%d Roles/RoleBindings by default, want only the collector's 2", n)
	}
}

func TestAlertReaderExamples(t *testing.T) {
	r := render(t, valuesFile(t, "monitoring"))
	readAlerts := []string{"errnowatch.io/alerts:get", "errnowatch.io/alerts:list", "errnowatch.io/alerts:watch"}

	var roles []object
	for _, o := range r.all("Role") {
		if o.Namespace != releaseNamespace {
			roles = append(roles, o)
		}
	}
	if len(roles) != 1 || roles[0].Namespace != "shop" {
		t.Fatalf("team Roles = %v, want one in shop", roles)
	}
	role := decode[rbacv1.Role](t, roles[0])
	if got := rulesOf(role.Rules); !reflect.DeepEqual(got, readAlerts) {
		t.Errorf("team role grants %v, want %v", got, readAlerts)
	}
	rb := decode[rbacv1.RoleBinding](t, r.all("RoleBinding")[0])
	for _, o := range r.all("RoleBinding") {
		if o.Namespace == "shop" {
			rb = decode[rbacv1.RoleBinding](t, o)
		}
	}
	if rb.Namespace != "shop" || rb.RoleRef.Name != role.Name || len(rb.Subjects) != 1 || rb.Subjects[0].Name != "shop-developers" {
		t.Errorf("team binding = %+v", rb)
	}

	siem := get[rbacv1.ClusterRole](t, r, "ClusterRole", "errnowatch-alerts-siem")
	if got := rulesOf(siem.Rules); !reflect.DeepEqual(got, readAlerts) {
		t.Errorf("SIEM role grants %v, want %v", got, readAlerts)
	}
	crb := get[rbacv1.ClusterRoleBinding](t, r, "ClusterRoleBinding", "errnowatch-alerts-siem")
	wantSubject := []rbacv1.Subject{{Kind: "ServiceAccount", Name: "errnowatch-siem", Namespace: releaseNamespace}}
	if !reflect.DeepEqual(crb.Subjects, wantSubject) {
		t.Errorf("SIEM binding subjects = %+v", crb.Subjects)
	}
	sa := get[corev1.ServiceAccount](t, r, "ServiceAccount", "errnowatch-siem")
	if sa.AutomountServiceAccountToken == nil || *sa.AutomountServiceAccountToken {
		t.Error("the SIEM ServiceAccount should not automount tokens")
	}
	if !strings.Contains(r.Notes, "create token errnowatch-siem --audience errnowatch") {
		t.Errorf("NOTES do not show how to get the SIEM token:\n%s", r.Notes)
	}
}
