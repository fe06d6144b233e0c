package chart

import (
	"context"
	"crypto/x509"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/engine"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/errnowatch/errnowatch/internal/testenv"
)

// warnings records the API server's warnings (PodSecurity's among them).
type warnings struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warnings) HandleWarningHeaderWithContext(_ context.Context, _ int, _ string, msg string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, msg)
}

func (w *warnings) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	m := w.msgs
	w.msgs = nil
	return m
}

// crdStub is a CustomResourceDefinition with the group, kind and the spec
// fields the real CRD requires, and everything else left open. cert-manager
// and the Prometheus Operator are not installed here, so the dry run checks
// that their objects are well-formed resources of the right API, not every
// field against their full schemas.
func crdStub(group, kind, plural string, required ...string) *apiextensionsv1.CustomResourceDefinition {
	open := true
	return &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: plural + "." + group},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: group,
			Names: apiextensionsv1.CustomResourceDefinitionNames{Kind: kind, ListKind: kind + "List", Plural: plural, Singular: strings.ToLower(kind)},
			Scope: apiextensionsv1.NamespaceScoped,
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{
				Name: "v1", Served: true, Storage: true,
				Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
					Type:     "object",
					Required: []string{"spec"},
					Properties: map[string]apiextensionsv1.JSONSchemaProps{
						"spec": {Type: "object", Required: required, XPreserveUnknownFields: &open},
					},
				}},
			}},
		},
	}
}

func installCRDStubs(t *testing.T, cfg *rest.Config) {
	t.Helper()
	ctx := t.Context()
	cs, err := apiextensionsclient.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, crd := range []*apiextensionsv1.CustomResourceDefinition{
		crdStub("monitoring.coreos.com", "ServiceMonitor", "servicemonitors", "selector"),
		crdStub("monitoring.coreos.com", "PrometheusRule", "prometheusrules", "groups"),
		crdStub("cert-manager.io", "Certificate", "certificates", "secretName", "issuerRef"),
		crdStub("cert-manager.io", "Issuer", "issuers"),
	} {
		if _, err := cs.ApiextensionsV1().CustomResourceDefinitions().Create(ctx, crd, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatalf("create CRD %s: %v", crd.Name, err)
		}
		// Wait for the API server to serve the new kind.
		err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
			got, err := cs.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, crd.Name, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			for _, c := range got.Status.Conditions {
				if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
					return true, nil
				}
			}
			return false, nil
		})
		if err != nil {
			t.Fatalf("CRD %s not established: %v", crd.Name, err)
		}
	}
}

func createNamespace(t *testing.T, env *testenv.Env, name string, labels map[string]string) {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	if _, err := env.Client.CoreV1().Namespaces().Create(t.Context(), ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

// Every object of every combination is accepted by a real kube-apiserver
// (server-side dry run, strict field validation: an unknown field is an
// error), and PodSecurity finds the collector fit for the restricted level.
func TestAPIServerAcceptsEveryObject(t *testing.T) {
	env := testenv.Shared(t)
	installCRDStubs(t, env.Config)
	// warn, not enforce: the agent cannot meet restricted, and the warnings
	// are what the test reads.
	createNamespace(t, env, releaseNamespace, map[string]string{
		"pod-security.kubernetes.io/warn":         "restricted",
		"pod-security.kubernetes.io/warn-version": "latest",
	})
	createNamespace(t, env, "shop", nil) // the team Role of the monitoring combination

	w := &warnings{}
	cfg := rest.CopyConfig(env.Config)
	cfg.WarningHandlerWithContext = w
	c, err := client.New(cfg, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// The negative control: a misspelt field is an error, not a silently
	// dropped key, so the acceptances below mean something.
	o, _ := render(t, nil).find("DaemonSet", "errnowatch-agent")
	bad := decode[unstructured.Unstructured](t, o)
	if err := unstructured.SetNestedField(bad.Object, true, "spec", "template", "spec", "hostPid"); err != nil {
		t.Fatal(err)
	}
	if err := c.Create(t.Context(), bad, client.DryRunAll, client.FieldValidation("Strict")); err == nil || !strings.Contains(err.Error(), "hostPid") {
		t.Fatalf("a DaemonSet with the unknown field hostPid: error %v, want a strict validation error", err)
	}
	w.take()

	for _, name := range combinations(t) {
		t.Run(name, func(t *testing.T) {
			r := render(t, valuesFile(t, name))
			for _, o := range r.Objects {
				u := decode[unstructured.Unstructured](t, o)
				w.take()
				if err := c.Create(t.Context(), u, client.DryRunAll, client.FieldValidation("Strict")); err != nil {
					t.Errorf("%v rejected: %v", o, err)
					continue
				}
				msgs := w.take()
				switch o.Kind {
				case "DaemonSet":
					// The positive control: hostPath and added capabilities
					// are not restricted, and PodSecurity must say so, or the
					// collector's silence below proves nothing.
					all := strings.Join(msgs, "\n")
					if !containsAll(all, "restricted", "hostPath") {
						t.Errorf("no PodSecurity warning for the agent (got %q): is PodSecurity admission on?", msgs)
					}
					// PodSecurity's own view of the agent: whatever else it
					// lacks for restricted, it is never privileged, never in
					// a host namespace, never on a host port, unless asked.
					for _, never := range []string{"privileged (", "host namespaces", "hostPort"} {
						if name != "privileged" && strings.Contains(all, never) {
							t.Errorf("PodSecurity reports %q for the agent: %s", never, all)
						}
					}
					if name == "privileged" && !strings.Contains(all, "privileged (") {
						t.Errorf("PodSecurity does not see the privileged agent as privileged: %s", all)
					}
				default:
					if len(msgs) != 0 {
						t.Errorf("%v: API server warnings %q", o, msgs)
					}
				}
			}
		})
	}
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// tlsData renders the chart against the API server (lookup answers) and
// returns the data of its auto-mode Secrets.
func tlsData(t *testing.T, eng engine.Engine, ns string, mtls bool) (server, client map[string][]byte, objs []object) {
	t.Helper()
	vals := values(t, "tls: {mtls: {enabled: false}}")
	if mtls {
		vals = values(t, "tls: {mtls: {enabled: true}}")
	}
	r, err := renderIn(loadChart(t), eng, ns, vals)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range r.all("Secret") {
		s := decode[corev1.Secret](t, o)
		switch s.Name {
		case "errnowatch-collector-tls":
			server = s.Data
		case "errnowatch-agent-tls":
			client = s.Data
		}
		objs = append(objs, o)
	}
	if server == nil || (mtls && client == nil) {
		t.Fatalf("auto TLS rendered Secrets %v", objs)
	}
	return server, client, objs
}

// An upgrade keeps the chart-made CA and certificates: the templates look
// the Secrets up and reuse them, so agents never lose trust in the
// collector. When a needed Secret is missing (mTLS turned on later) it
// makes a new CA for both, consistently.
func TestAutoTLSSurvivesUpgradeThroughLookup(t *testing.T) {
	env := testenv.Shared(t)
	const ns = "lookup"
	createNamespace(t, env, ns, nil)
	eng := engine.New(env.Config)

	first, firstClient, objs := tlsData(t, eng, ns, true)
	for _, o := range objs {
		s := decode[corev1.Secret](t, o)
		s.Namespace = ns
		if _, err := env.Client.CoreV1().Secrets(ns).Create(t.Context(), s, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	again, againClient, _ := tlsData(t, eng, ns, true)
	if !reflect.DeepEqual(first, again) || !reflect.DeepEqual(firstClient, againClient) {
		t.Fatal("second render with the Secrets in place made new certificates")
	}
	// Without a cluster (helm template) the same render makes new ones.
	if plain, _, _ := tlsData(t, engine.Engine{}, ns, true); reflect.DeepEqual(plain["ca.crt"], first["ca.crt"]) {
		t.Fatal("render without lookup reused the CA; the comparison above proves nothing")
	}

	// Drop the agents' Secret: the next render cannot sign a new client
	// certificate with the old CA (its key is not kept), so it renews both.
	if err := env.Client.CoreV1().Secrets(ns).Delete(t.Context(), "errnowatch-agent-tls", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	renewed, renewedClient, _ := tlsData(t, eng, ns, true)
	if reflect.DeepEqual(renewed["ca.crt"], first["ca.crt"]) {
		t.Fatal("a new client certificate was rendered under the old CA, which it cannot sign")
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(renewed["ca.crt"])
	if _, err := parseCert(t, renewedClient["tls.crt"]).Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("renewed client certificate does not verify against the renewed CA: %v", err)
	}
	// Without mTLS, the server Secret alone is enough to keep.
	server, _, _ := tlsData(t, eng, ns, false)
	if !reflect.DeepEqual(server, first) {
		t.Error("render without mTLS did not keep the existing collector Secret")
	}
}
