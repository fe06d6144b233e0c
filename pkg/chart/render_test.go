package chart

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/releaseutil"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"
)

// The release every test renders, as in `helm template errnowatch
// charts/errnowatch --namespace errnowatch`.
const (
	releaseName      = "errnowatch"
	releaseNamespace = "errnowatch"
)

// object is one document of a render.
type object struct {
	APIVersion string
	Kind       string
	Name       string
	Namespace  string
	Source     string // template file
	YAML       []byte
}

func (o object) String() string {
	return fmt.Sprintf("%s %s/%s (%s)", o.Kind, o.Namespace, o.Name, o.Source)
}

// rendered is a rendered release.
type rendered struct {
	Objects []object
	Notes   string
}

// combinations are the value files in charts/errnowatch/ci, the same ones
// `make chart-lint` lints, by name without "-values.yaml".
func combinations(t testing.TB) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(Dir(), "ci", "*-values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		names = append(names, strings.TrimSuffix(filepath.Base(f), "-values.yaml"))
	}
	// The combinations the issue asks for; a lost file must fail, not shrink
	// the test.
	for _, want := range []string{"default", "privileged", "certmanager", "existingsecret", "monitoring", "scope", "observability"} {
		if !contains(names, want) {
			t.Fatalf("charts/errnowatch/ci/%s-values.yaml is missing (have %v)", want, names)
		}
	}
	return names
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// valuesFile reads ci/<name>-values.yaml.
func valuesFile(t testing.TB, name string) map[string]any {
	t.Helper()
	v, err := chartutil.ReadValuesFile(filepath.Join(Dir(), "ci", name+"-values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return v.AsMap()
}

// values parses inline YAML overrides, as -f would.
func values(t testing.TB, doc string) map[string]any {
	t.Helper()
	v, err := chartutil.ReadValues([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return v.AsMap()
}

func loadChart(t testing.TB) *chart.Chart {
	t.Helper()
	ch, err := loader.Load(Dir())
	if err != nil {
		t.Fatalf("load chart: %v", err)
	}
	return ch
}

// render renders the chart as `helm template` does (no cluster: lookup
// finds nothing), failing the test on any error.
func render(t testing.TB, vals map[string]any) *rendered {
	t.Helper()
	r, err := renderWith(loadChart(t), engine.Engine{}, vals)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// renderWith renders ch with the engine given (engine.New(cfg) answers
// lookup from a real API server), validating vals against the schema.
func renderWith(ch *chart.Chart, eng engine.Engine, vals map[string]any) (*rendered, error) {
	return renderIn(ch, eng, releaseNamespace, vals)
}

// renderIn renders the release into namespace ns.
func renderIn(ch *chart.Chart, eng engine.Engine, ns string, vals map[string]any) (*rendered, error) {
	opts := chartutil.ReleaseOptions{Name: releaseName, Namespace: ns, Revision: 1, IsInstall: true}
	rv, err := chartutil.ToRenderValuesWithSchemaValidation(ch, vals, opts, chartutil.DefaultCapabilities, false)
	if err != nil {
		return nil, fmt.Errorf("values: %w", err)
	}
	files, err := eng.Render(ch, rv)
	if err != nil {
		return nil, fmt.Errorf("render: %w", err)
	}
	r := &rendered{}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		base := filepath.Base(name)
		switch {
		case base == "NOTES.txt":
			r.Notes = files[name]
			continue
		case strings.HasPrefix(base, "_"):
			continue
		}
		docs, err := splitDocs(files[name])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		for _, d := range docs {
			d.Source = name
			r.Objects = append(r.Objects, d)
		}
	}
	return r, nil
}

// splitDocs splits a multi-document YAML stream into its objects, in order,
// dropping empty documents.
func splitDocs(stream string) ([]object, error) {
	split := releaseutil.SplitManifests(stream) // keys manifest-0, manifest-1, ...
	keys := make([]string, 0, len(split))
	for k := range split {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return docIndex(keys[i]) < docIndex(keys[j]) })
	var out []object
	for _, k := range keys {
		doc := split[k]
		var head struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct {
				Name      string `json:"name"`
				Namespace string `json:"namespace"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
			return nil, fmt.Errorf("document %s: %w\n%s", k, err, doc)
		}
		if head.Kind == "" && head.APIVersion == "" {
			continue // only comments
		}
		out = append(out, object{
			APIVersion: head.APIVersion, Kind: head.Kind,
			Name: head.Metadata.Name, Namespace: head.Metadata.Namespace,
			YAML: []byte(doc),
		})
	}
	return out, nil
}

func docIndex(key string) int {
	n, _ := strconv.Atoi(strings.TrimPrefix(key, "manifest-"))
	return n
}

func (r *rendered) all(kind string) []object {
	var out []object
	for _, o := range r.Objects {
		if o.Kind == kind {
			out = append(out, o)
		}
	}
	return out
}

func (r *rendered) find(kind, name string) (object, bool) {
	for _, o := range r.Objects {
		if o.Kind == kind && o.Name == name {
			return o, true
		}
	}
	return object{}, false
}

// get decodes the object of kind and name strictly into T: a field the
// Kubernetes type does not have fails, as a misspelt template key should.
func get[T any](t testing.TB, r *rendered, kind, name string) *T {
	t.Helper()
	o, ok := r.find(kind, name)
	if !ok {
		t.Fatalf("render has no %s %q; it has: %v", kind, name, r.Objects)
	}
	return decode[T](t, o)
}

func decode[T any](t testing.TB, o object) *T {
	t.Helper()
	v := new(T)
	if err := yaml.UnmarshalStrict(o.YAML, v); err != nil {
		t.Fatalf("%v: %v", o, err)
	}
	return v
}

// typed are the Kubernetes kinds the chart renders, for strict decoding.
// CRD kinds (ServiceMonitor, Certificate, Issuer) are checked by the
// API server test.
var typed = map[string]func() any{
	"ServiceAccount":      func() any { return new(corev1.ServiceAccount) },
	"Secret":              func() any { return new(corev1.Secret) },
	"ConfigMap":           func() any { return new(corev1.ConfigMap) },
	"Service":             func() any { return new(corev1.Service) },
	"DaemonSet":           func() any { return new(appsv1.DaemonSet) },
	"StatefulSet":         func() any { return new(appsv1.StatefulSet) },
	"ClusterRole":         func() any { return new(rbacv1.ClusterRole) },
	"ClusterRoleBinding":  func() any { return new(rbacv1.ClusterRoleBinding) },
	"Role":                func() any { return new(rbacv1.Role) },
	"RoleBinding":         func() any { return new(rbacv1.RoleBinding) },
	"NetworkPolicy":       func() any { return new(networkingv1.NetworkPolicy) },
	"PodDisruptionBudget": func() any { return new(policyv1.PodDisruptionBudget) },
}

var crdKinds = map[string]string{
	"ServiceMonitor": "monitoring.coreos.com/v1",
	"PrometheusRule": "monitoring.coreos.com/v1",
	"Certificate":    "cert-manager.io/v1",
	"Issuer":         "cert-manager.io/v1",
}

func readRepoFile(t testing.TB, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(Dir(), "..", "..", rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func yamlStrict(b []byte, v any) error { return yaml.UnmarshalStrict(b, v) }

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }
