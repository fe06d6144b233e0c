package chart

import (
	"crypto/x509"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
)

// TestCAIsPublishedWithoutTheKey: in auto TLS mode the CA is a ConfigMap,
// the same CA as the collector's Secret, and the agents mount the
// ConfigMap, not the Secret that holds the collector's key.
func TestCAIsPublishedWithoutTheKey(t *testing.T) {
	r := render(t, nil)
	cm := get[corev1.ConfigMap](t, r, "ConfigMap", "errnowatch-collector-ca")
	server := get[corev1.Secret](t, r, "Secret", "errnowatch-collector-tls")
	if cm.Data["ca.crt"] != string(server.Data["ca.crt"]) || len(cm.Data) != 1 || len(cm.BinaryData) != 0 {
		t.Fatalf("CA ConfigMap holds %v, want exactly the collector Secret's ca.crt", keys(cm.Data))
	}
	if !x509.NewCertPool().AppendCertsFromPEM([]byte(cm.Data["ca.crt"])) {
		t.Fatal("CA ConfigMap's ca.crt holds no certificate")
	}
	ds, _ := agentDaemonSet(t, r)
	for _, v := range ds.Spec.Template.Spec.Volumes {
		if v.Name != "tls" {
			continue
		}
		for _, src := range v.Projected.Sources {
			if src.Secret != nil && src.Secret.Name == "errnowatch-collector-tls" {
				t.Errorf("agent mounts the collector's Secret %s", src.Secret.Name)
			}
		}
		if src := v.Projected.Sources[0]; src.ConfigMap == nil || src.ConfigMap.Name != "errnowatch-collector-ca" {
			t.Errorf("agent's CA comes from %+v, want ConfigMap errnowatch-collector-ca", src)
		}
	}
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// TestCollectorMayGetAgentPodsOnly: to bind publishers to nodes on API
// servers that name only the pod in tokens, the collector gets pods of its
// own namespace, and nothing more.
func TestCollectorMayGetAgentPodsOnly(t *testing.T) {
	r := render(t, nil)
	role := get[rbacv1.Role](t, r, "Role", "errnowatch-collector")
	want := []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get"}}}
	if len(role.Rules) != 1 || !slices.Equal(role.Rules[0].Verbs, want[0].Verbs) || !slices.Equal(role.Rules[0].Resources, want[0].Resources) ||
		!slices.Equal(role.Rules[0].APIGroups, want[0].APIGroups) || role.Namespace != "errnowatch" {
		t.Fatalf("collector Role %s/%s rules %+v, want only get pods", role.Namespace, role.Name, role.Rules)
	}
	rb := get[rbacv1.RoleBinding](t, r, "RoleBinding", "errnowatch-collector")
	if rb.RoleRef.Name != "errnowatch-collector" || len(rb.Subjects) != 1 || rb.Subjects[0].Name != "errnowatch-collector" {
		t.Fatalf("collector RoleBinding %+v", rb)
	}
}

// TestPostgresAddressIsNeverAnArgument: the collector's arguments are in
// every node user's process list; the address (with its password) comes
// from the environment.
func TestPostgresAddressIsNeverAnArgument(t *testing.T) {
	r := render(t, values(t, "collector: {store: {type: postgres, postgres: {existingSecret: pg}}}"))
	ss := get[appsv1.StatefulSet](t, r, "StatefulSet", "errnowatch-collector")
	c := ss.Spec.Template.Spec.Containers[0]
	for _, a := range c.Args {
		if strings.HasPrefix(a, "--store") || strings.Contains(a, "ERRNOWATCH_STORE") {
			t.Errorf("collector argument %q names the store", a)
		}
	}
	var env *corev1.EnvVar
	for i := range c.Env {
		if c.Env[i].Name == "ERRNOWATCH_STORE" {
			env = &c.Env[i]
		}
	}
	if env == nil || env.ValueFrom == nil || env.ValueFrom.SecretKeyRef == nil || env.ValueFrom.SecretKeyRef.Name != "pg" {
		t.Fatalf("ERRNOWATCH_STORE = %+v, want from Secret pg", env)
	}
}
