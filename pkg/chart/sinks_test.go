package chart

import (
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/engine"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/errnowatch/errnowatch/pkg/sink"
)

// TestSinksRenderAConfigTheCollectorAccepts renders ci/sinks-values.yaml
// and parses the sinks file with the collector's own parser: the chart
// writes nothing the collector would refuse, mounts each Secret where the
// file names it, and keeps secret values out of the ConfigMap.
func TestSinksRenderAConfigTheCollectorAccepts(t *testing.T) {
	r := render(t, valuesFile(t, "sinks"))
	cm := get[corev1.ConfigMap](t, r, "ConfigMap", "errnowatch-sinks")
	cfg, err := sink.ParseConfig(strings.NewReader(cm.Data["sinks.yaml"]))
	if err != nil {
		t.Fatalf("the collector refuses the rendered sinks file: %v\n%s", err, cm.Data["sinks.yaml"])
	}
	if len(cfg.Sinks) != 3 || cfg.Sinks[0].Chat.Throttle.Minutes() != 30 {
		t.Fatalf("parsed %+v", cfg.Sinks)
	}
	ss := get[appsv1.StatefulSet](t, r, "StatefulSet", "errnowatch-collector")
	c := ss.Spec.Template.Spec.Containers[0]
	if !slices.Contains(c.Args, "--sinks-config=/etc/errnowatch/sinks/sinks.yaml") {
		t.Errorf("collector args %v lack --sinks-config", c.Args)
	}
	mounts := map[string]string{}
	for _, m := range c.VolumeMounts {
		if !m.ReadOnly && strings.Contains(m.MountPath, "sink") {
			t.Errorf("%s is mounted writable", m.MountPath)
		}
		mounts[m.Name] = m.MountPath
	}
	if mounts["sink-secret-slack"] != "/etc/errnowatch/sink-secrets/slack" || mounts["sinks"] != "/etc/errnowatch/sinks" {
		t.Errorf("mounts %v", mounts)
	}
	var env *corev1.EnvVar
	for i := range c.Env {
		if c.Env[i].Name == "SPLUNK_HEC_TOKEN" {
			env = &c.Env[i]
		}
	}
	if env == nil || env.ValueFrom == nil || env.ValueFrom.SecretKeyRef == nil || env.Value != "" {
		t.Errorf("SPLUNK_HEC_TOKEN = %+v, want from a secretKeyRef", env)
	}
	if ss.Spec.Template.Annotations["checksum/sinks"] == "" {
		t.Errorf("no checksum/sinks annotation: a changed sinks list would not restart the collector")
	}

	// Without sinks nothing of them renders.
	r = render(t, values(t, ""))
	if _, ok := r.find("ConfigMap", "errnowatch-sinks"); ok {
		t.Errorf("a sinks ConfigMap without sinks")
	}
}

func TestSinksRefuseABadSecretName(t *testing.T) {
	_, err := renderWith(loadChart(t), engine.Engine{}, values(t, `
sinks:
  destinations: [{name: a, type: webhook, webhook: {url: "https://x.example"}}]
  secretMounts: ["../etc"]
`))
	if err == nil || !strings.Contains(err.Error(), "sinks.secretMounts") {
		t.Fatalf("err = %v, want one naming sinks.secretMounts", err)
	}
}
