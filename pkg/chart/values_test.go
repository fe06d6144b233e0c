package chart

import (
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/engine"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// values.schema.json rejects typos and wrong values rather than ignoring
// them.
func TestSchemaRejectsMistakes(t *testing.T) {
	ch := loadChart(t)
	for _, tc := range []struct{ name, doc, want string }{
		{"top-level typo", "agnet: {privileged: true}", "agnet"},
		{"agent typo", "agent: {privilged: true}", "privilged"},
		{"collector typo", "collector: {replica: 2}", "replica"},
		{"tls mode", "tls: {mode: selfsigned}", "mode"},
		{"seccomp", "agent: {seccompProfile: {type: Localhost}}", "type"},
		{"capability case", "agent: {extraCapabilities: [sys_resource]}", "extraCapabilities"},
		{"retention", "collector: {retention: 30d}", "retention"},
		{"network policy typo", "networkPolicy: {siem: {namespaceSelectors: {}}}", "namespaceSelectors"},
		{"rule without id", "rules: {extra: [{severity: high}]}", "id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := renderWith(ch, engine.Engine{}, values(t, tc.doc))
			if err == nil {
				t.Fatalf("%s accepted", tc.doc)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not name %q", err, tc.want)
			}
		})
	}
}

// Values the templates refuse with a message saying what to do.
func TestTemplatesRefuseBrokenSetups(t *testing.T) {
	ch := loadChart(t)
	for _, tc := range []struct{ doc, want string }{
		{"collector: {replicas: 2}", "postgres"},
		{"collector: {store: {type: postgres}}", "existingSecret"},
		{"rules: {default: false}", "rules.extra"},
		{"rbac: {alertReaders: {siem: {enabled: true, serviceAccount: {create: false}}}}", "subjects"},
	} {
		_, err := renderWith(ch, engine.Engine{}, values(t, tc.doc))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one mentioning %q", tc.doc, err, tc.want)
		}
	}
}

func TestNetworkPolicyAdmitsAgentsAndSIEMOnly(t *testing.T) {
	r := render(t, valuesFile(t, "monitoring"))
	np := get[networkingv1.NetworkPolicy](t, r, "NetworkPolicy", "errnowatch-collector")
	if got := np.Spec.PodSelector.MatchLabels["app.kubernetes.io/component"]; got != "collector" {
		t.Errorf("policy selects %v", np.Spec.PodSelector)
	}
	if len(np.Spec.Ingress) != 2 {
		t.Fatalf("%d ingress rules, want grpc and metrics", len(np.Spec.Ingress))
	}
	grpc := np.Spec.Ingress[0]
	if len(grpc.Ports) != 1 || grpc.Ports[0].Port.StrVal != "grpc" || len(grpc.From) != 2 {
		t.Fatalf("grpc rule = %+v", grpc)
	}
	if grpc.From[0].PodSelector.MatchLabels["app.kubernetes.io/component"] != "agent" || grpc.From[0].NamespaceSelector != nil {
		t.Errorf("first peer %+v, want this namespace's agents", grpc.From[0])
	}
	if ns := grpc.From[1].NamespaceSelector; ns == nil || ns.MatchLabels["kubernetes.io/metadata.name"] != "siem" {
		t.Errorf("second peer %+v, want the siem namespace", grpc.From[1])
	}
	metrics := np.Spec.Ingress[1]
	if metrics.Ports[0].Port.StrVal != "metrics" || metrics.From[0].NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] != "monitoring" {
		t.Errorf("metrics rule = %+v", metrics)
	}
	// An empty SIEM selector would match every namespace: it is left out.
	r = render(t, values(t, "networkPolicy: {enabled: true}"))
	np = get[networkingv1.NetworkPolicy](t, r, "NetworkPolicy", "errnowatch-collector")
	if len(np.Spec.Ingress) != 1 || len(np.Spec.Ingress[0].From) != 1 {
		t.Errorf("default policy ingress = %+v, want agents only", np.Spec.Ingress)
	}
}

func TestServiceMonitorsScrapeBothRoles(t *testing.T) {
	r := render(t, valuesFile(t, "monitoring"))
	for _, name := range []string{"errnowatch-agent", "errnowatch-collector"} {
		o, ok := r.find("ServiceMonitor", name)
		if !ok {
			t.Fatalf("no ServiceMonitor %s", name)
		}
		u := decode[unstructured.Unstructured](t, o)
		if l := u.GetLabels()["release"]; l != "prometheus" {
			t.Errorf("%s lacks serviceMonitor.labels: %v", name, u.GetLabels())
		}
		eps, _, _ := unstructured.NestedSlice(u.Object, "spec", "endpoints")
		if len(eps) != 1 || eps[0].(map[string]any)["port"] != "metrics" {
			t.Errorf("%s endpoints = %v", name, eps)
		}
	}
	svc := get[corev1.Service](t, r, "Service", "errnowatch-agent-metrics")
	if svc.Spec.ClusterIP != corev1.ClusterIPNone || svc.Spec.Ports[0].Port != 9090 {
		t.Errorf("agent metrics service = %+v", svc.Spec)
	}
	if len(render(t, nil).all("ServiceMonitor")) != 0 {
		t.Error("ServiceMonitors rendered by default")
	}
}

func TestNotesShowHowToReadAlerts(t *testing.T) {
	notes := render(t, nil).Notes
	for _, want := range []string{
		"kubectl -n errnowatch port-forward svc/errnowatch-collector 9443:9443",
		"get configmap errnowatch-collector-ca -o jsonpath='{.data.ca\\.crt}' > errnowatch-ca.crt",
		"--audience errnowatch",
		"errnowatch alerts list    --server localhost:9443 --ca errnowatch-ca.crt --token-file errnowatch.token",
		"errnowatch alerts stream --server errnowatch-collector.errnowatch.svc:9443",
	} {
		if !strings.Contains(notes, want) {
			t.Errorf("NOTES.txt lacks %q:\n%s", want, notes)
		}
	}
}

// manifests/errnowatch.yaml is the current render of the default install
// with tls.mode existingSecret (what `make manifests` writes), object for
// object. `make verify` catches the same drift byte for byte.
func TestManifestsAreCurrent(t *testing.T) {
	committed, err := splitDocs(string(readRepoFile(t, "manifests/errnowatch.yaml")))
	if err != nil {
		t.Fatal(err)
	}
	want := render(t, values(t, "tls: {mode: existingSecret}")).Objects
	index := func(objs []object) map[string]string {
		m := map[string]string{}
		for _, o := range objs {
			var v any
			if err := yamlStrict(o.YAML, &v); err != nil {
				t.Fatalf("%v: %v", o, err)
			}
			b, _ := jsonMarshal(v)
			m[o.Kind+"/"+o.Namespace+"/"+o.Name] = string(b)
		}
		return m
	}
	got, exp := index(committed), index(want)
	for k, v := range exp {
		if got[k] == "" {
			t.Errorf("manifests/errnowatch.yaml lacks %s: run `make manifests`", k)
		} else if got[k] != v {
			t.Errorf("manifests/errnowatch.yaml has an old %s: run `make manifests`", k)
		}
	}
	for k := range got {
		if exp[k] == "" {
			t.Errorf("manifests/errnowatch.yaml has %s, which the chart no longer renders: run `make manifests`", k)
		}
	}
}
