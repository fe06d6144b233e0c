package chart

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/errnowatch/errnowatch/pkg/rules"
)

// The chart ships the repository's default pack byte for byte (make
// chart-rules copies it; this fails when someone edits one copy only).
func TestChartRulesMatchRepository(t *testing.T) {
	repo := readRepoFile(t, "rules/default.yaml")
	chartCopy, err := os.ReadFile(filepath.Join(Dir(), "rules", "default.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(repo, chartCopy) {
		t.Fatal("charts/errnowatch/rules/default.yaml differs from rules/default.yaml: run `make chart-rules`")
	}
	cm := get[corev1.ConfigMap](t, render(t, nil), "ConfigMap", "errnowatch-rules")
	if cm.Data["default.yaml"] != string(repo) {
		t.Error("the rules ConfigMap does not carry rules/default.yaml verbatim")
	}
	if _, ok := cm.Data["extra.yaml"]; ok {
		t.Error("extra.yaml rendered without rules.extra")
	}
}

// The ConfigMap, written out the way the kubelet mounts it, loads with the
// agent's own rule loader: the default pack plus the user's extra rules.
func TestRulesConfigMapLoadsInTheRuleEngine(t *testing.T) {
	cm := get[corev1.ConfigMap](t, render(t, valuesFile(t, "scope")), "ConfigMap", "errnowatch-rules")
	dir := t.TempDir()
	for name, data := range cm.Data {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	rs, err := rules.Load(dir)
	if err != nil {
		t.Fatalf("rules from the ConfigMap do not load: %v", err)
	}
	if rs.Rule("shop-secret-probing") == nil {
		t.Error("the extra rule is missing")
	}
	def, err := rules.Parse("default.yaml", readRepoFile(t, "rules/default.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(rs.Rules), len(def.Rules)+1; got != want {
		t.Errorf("%d rules loaded, want the %d default ones plus 1", got, len(def.Rules))
	}
}
