package chart

import (
	"crypto/x509"
	"encoding/pem"
	"reflect"
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func parseCert(t testing.TB, pemBytes []byte) *x509.Certificate {
	t.Helper()
	b, _ := pem.Decode(pemBytes)
	if b == nil {
		t.Fatalf("no PEM block in %q", pemBytes)
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The zero-config certificates work: the collector's verifies for the names
// agents (service DNS) and people (port-forward to localhost) dial, and the
// agents' client certificate verifies for client auth, both against ca.crt.
func TestAutoTLSCertificatesVerify(t *testing.T) {
	r := render(t, values(t, "tls: {mtls: {enabled: true}}"))
	server := get[corev1.Secret](t, r, "Secret", "errnowatch-collector-tls")
	client := get[corev1.Secret](t, r, "Secret", "errnowatch-agent-tls")
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(server.Data["ca.crt"]) {
		t.Fatal("ca.crt holds no certificate")
	}
	if len(server.Data["tls.key"]) == 0 || len(client.Data["tls.key"]) == 0 {
		t.Fatal("a key is missing")
	}
	srv := parseCert(t, server.Data["tls.crt"])
	for _, name := range []string{"errnowatch-collector.errnowatch.svc", "errnowatch-collector.errnowatch.svc.cluster.local", "localhost", "127.0.0.1"} {
		if _, err := srv.Verify(x509.VerifyOptions{DNSName: name, Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("collector certificate for %s: %v", name, err)
		}
	}
	cli := parseCert(t, client.Data["tls.crt"])
	if _, err := cli.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("agent client certificate: %v", err)
	}

	// With mTLS the collector requires client certificates and the agents
	// present theirs.
	ss := get[appsv1.StatefulSet](t, r, "StatefulSet", "errnowatch-collector")
	if !slices.Contains(ss.Spec.Template.Spec.Containers[0].Args, "--client-ca=/etc/errnowatch/tls/ca.crt") {
		t.Error("collector lacks --client-ca with mTLS")
	}
	_, c := agentDaemonSet(t, r)
	for _, want := range []string{"--collector-cert=/etc/errnowatch/tls/tls.crt", "--collector-key=/etc/errnowatch/tls/tls.key"} {
		if !slices.Contains(c.Args, want) {
			t.Errorf("agent lacks %s with mTLS", want)
		}
	}
}

// Each helm template run makes new certificates: that is why the committed
// manifests use existingSecret (and why upgrades look the Secrets up).
func TestAutoTLSIsRandomWithoutACluster(t *testing.T) {
	a := get[corev1.Secret](t, render(t, nil), "Secret", "errnowatch-collector-tls")
	b := get[corev1.Secret](t, render(t, nil), "Secret", "errnowatch-collector-tls")
	if reflect.DeepEqual(a.Data["ca.crt"], b.Data["ca.crt"]) {
		t.Fatal("two renders made the same CA; the lookup test would prove nothing")
	}
}

func TestExistingSecretRendersNoCertificates(t *testing.T) {
	r := render(t, valuesFile(t, "existingsecret"))
	if s := r.all("Secret"); len(s) != 0 {
		t.Errorf("existingSecret mode rendered Secrets %v", s)
	}
	for _, k := range []string{"Certificate", "Issuer"} {
		if len(r.all(k)) != 0 {
			t.Errorf("existingSecret mode rendered %s", k)
		}
	}
	ss := get[appsv1.StatefulSet](t, r, "StatefulSet", "errnowatch-collector")
	var secretName string
	for _, v := range ss.Spec.Template.Spec.Volumes {
		if v.Name == "tls" && v.Secret != nil {
			secretName = v.Secret.SecretName
		}
	}
	if secretName != "errnowatch-tls" {
		t.Errorf("collector mounts Secret %q, want errnowatch-tls", secretName)
	}
	ds, _ := agentDaemonSet(t, r)
	for _, v := range ds.Spec.Template.Spec.Volumes {
		if v.Name == "tls" && v.Projected.Sources[0].Secret.Name != "errnowatch-tls" {
			t.Errorf("agent reads the CA from %q", v.Projected.Sources[0].Secret.Name)
		}
	}
}

func TestCertManagerChain(t *testing.T) {
	r := render(t, valuesFile(t, "certmanager"))
	spec := func(kind, name string) map[string]any {
		t.Helper()
		o, ok := r.find(kind, name)
		if !ok {
			t.Fatalf("no %s %s", kind, name)
		}
		u := decode[unstructured.Unstructured](t, o)
		s, _, _ := unstructured.NestedMap(u.Object, "spec")
		return s
	}
	if _, ok := spec("Issuer", "errnowatch-selfsigned")["selfSigned"]; !ok {
		t.Error("no self-signed root Issuer")
	}
	ca := spec("Certificate", "errnowatch-ca")
	if ca["isCA"] != true || ca["secretName"] != "errnowatch-ca" {
		t.Errorf("CA certificate = %v", ca)
	}
	if s, _, _ := unstructured.NestedString(spec("Issuer", "errnowatch-ca"), "ca", "secretName"); s != "errnowatch-ca" {
		t.Errorf("CA issuer signs with %q", s)
	}
	srv := spec("Certificate", "errnowatch-collector")
	if srv["secretName"] != "errnowatch-collector-tls" {
		t.Errorf("collector certificate secret %v", srv["secretName"])
	}
	if n, _, _ := unstructured.NestedString(srv, "issuerRef", "name"); n != "errnowatch-ca" {
		t.Errorf("collector certificate issuer %q", n)
	}
	dns, _, _ := unstructured.NestedStringSlice(srv, "dnsNames")
	if !slices.Contains(dns, "errnowatch-collector.errnowatch.svc") || !slices.Contains(dns, "localhost") {
		t.Errorf("dnsNames = %v", dns)
	}
	cli := spec("Certificate", "errnowatch-agent")
	if cli["secretName"] != "errnowatch-agent-tls" {
		t.Errorf("agent certificate secret %v", cli["secretName"])
	}
	if u, _, _ := unstructured.NestedStringSlice(cli, "usages"); !slices.Contains(u, "client auth") {
		t.Errorf("agent certificate usages %v", u)
	}
	// Your own issuer replaces the chart's chain.
	r = render(t, values(t, "tls: {mode: certManager, certManager: {issuerRef: {name: corp-ca, kind: ClusterIssuer}}}"))
	if len(r.all("Issuer")) != 0 {
		t.Error("chart Issuers rendered beside a given issuerRef")
	}
	o, _ := r.find("Certificate", "errnowatch-collector")
	u := decode[unstructured.Unstructured](t, o)
	if k, _, _ := unstructured.NestedString(u.Object, "spec", "issuerRef", "kind"); k != "ClusterIssuer" {
		t.Errorf("issuerRef kind %q", k)
	}
}
