package chart

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/errnowatch/errnowatch/pkg/agent"
	"github.com/errnowatch/errnowatch/pkg/auth"
	"github.com/errnowatch/errnowatch/pkg/collector"
	"github.com/errnowatch/errnowatch/pkg/kube"
	"github.com/errnowatch/errnowatch/pkg/sink"
	"github.com/errnowatch/errnowatch/pkg/store/sqlite"
)

// promBinary returns bin/NAME, which `make prom-tools` builds from the
// Prometheus module (make test depends on it).
func promBinary(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join(Dir(), "..", "..", "bin", name))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s is missing: run `make prom-tools` (make test builds it first)", p)
	}
	return p
}

func run(t *testing.T, dir, bin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(args, " "), err, out)
	}
	return string(out)
}

// ruleGroups is the rendered PrometheusRule's spec as a Prometheus rule
// file, and the names of its alerts.
func ruleGroups(t *testing.T, r *rendered) ([]byte, []string) {
	t.Helper()
	o, ok := r.find("PrometheusRule", "errnowatch")
	if !ok {
		t.Fatalf("no PrometheusRule errnowatch in %v", r.Objects)
	}
	u := decode[unstructured.Unstructured](t, o)
	groups, found, err := unstructured.NestedSlice(u.Object, "spec", "groups")
	if err != nil || !found || len(groups) == 0 {
		t.Fatalf("PrometheusRule spec.groups: %v (found %v)", err, found)
	}
	file, err := yaml.Marshal(map[string]any{"groups": groups})
	if err != nil {
		t.Fatal(err)
	}
	var alerts []string
	for _, g := range groups {
		for _, rule := range g.(map[string]any)["rules"].([]any) {
			rm := rule.(map[string]any)
			name, _ := rm["alert"].(string)
			if name == "" {
				t.Errorf("group %v has a rule without an alert name: %v", g.(map[string]any)["name"], rm)
				continue
			}
			alerts = append(alerts, name)
			labels, _ := rm["labels"].(map[string]any)
			if s := labels["severity"]; s != "critical" && s != "warning" {
				t.Errorf("%s: severity %v, want critical or warning", name, s)
			}
			ann, _ := rm["annotations"].(map[string]any)
			if ann["summary"] == nil || ann["description"] == nil {
				t.Errorf("%s: annotations %v, want summary and description", name, ann)
			}
		}
	}
	return file, alerts
}

const ruleValues = "serviceMonitor: {enabled: true}\nprometheusRule: {enabled: true}"

// The PrometheusRule loads in Prometheus (promtool check rules, with the
// linter's findings fatal), and each of its alerts fires from synthetic
// series in testdata/prometheusrule_test.yaml (promtool test rules).
func TestPrometheusRule(t *testing.T) {
	promtool := promBinary(t, "promtool")
	file, alerts := ruleGroups(t, render(t, values(t, ruleValues)))
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "rules.yaml"), file, 0o644); err != nil {
		t.Fatal(err)
	}
	out := run(t, dir, promtool, "check", "rules", "--lint=all", "--lint-fatal", "rules.yaml")
	if !strings.Contains(out, "SUCCESS: "+itoa(len(alerts))+" rules found") {
		t.Errorf("promtool check rules: %s, want %d rules", out, len(alerts))
	}

	unit := readRepoFile(t, "pkg/chart/testdata/prometheusrule_test.yaml")
	if err := os.WriteFile(filepath.Join(dir, "rules_test.yaml"), unit, 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, dir, promtool, "test", "rules", "rules_test.yaml")

	// Every alert of the render has a case that fires it.
	var tests struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string           `json:"alertname"`
				ExpAlerts []map[string]any `json:"exp_alerts"`
			} `json:"alert_rule_test"`
		} `json:"tests"`
	}
	if err := yaml.Unmarshal(unit, &tests); err != nil {
		t.Fatal(err)
	}
	fired := map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fired[a.Alertname] = true
			}
		}
	}
	for _, a := range alerts {
		if !fired[a] {
			t.Errorf("alert %s has no case in testdata/prometheusrule_test.yaml that fires it", a)
		}
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// The knobs of the PrometheusRule: its labels, labels on every alert,
// thresholds, and the kube-state-metrics alert switched off; nothing is
// rendered by default.
func TestPrometheusRuleValues(t *testing.T) {
	if n := len(render(t, nil).all("PrometheusRule")); n != 0 {
		t.Fatalf("%d PrometheusRules by default, want none", n)
	}
	r := render(t, values(t, `prometheusRule: {enabled: true, labels: {release: prom}, alertLabels: {team: security},
  kubeStateMetrics: false, spoolBacklogSeconds: 42, sinkLagSeconds: 43}`))
	o, _ := r.find("PrometheusRule", "errnowatch")
	u := decode[unstructured.Unstructured](t, o)
	if u.GetLabels()["release"] != "prom" {
		t.Errorf("PrometheusRule labels %v lack release: prom", u.GetLabels())
	}
	file, alerts := ruleGroups(t, r)
	if slices.Contains(alerts, "ErrnowatchAgentNotReady") {
		t.Error("kubeStateMetrics: false still renders the kube-state-metrics alert")
	}
	var f struct {
		Groups []struct {
			Rules []struct {
				Alert  string            `json:"alert"`
				Expr   string            `json:"expr"`
				Labels map[string]string `json:"labels"`
			} `json:"rules"`
		} `json:"groups"`
	}
	if err := yaml.Unmarshal(file, &f); err != nil {
		t.Fatal(err)
	}
	for _, g := range f.Groups {
		for _, rule := range g.Rules {
			if rule.Labels["team"] != "security" {
				t.Errorf("%s labels %v lack alertLabels", rule.Alert, rule.Labels)
			}
			switch rule.Alert {
			case "ErrnowatchSpoolBacklog":
				if !strings.HasSuffix(strings.TrimSpace(rule.Expr), "> 42") {
					t.Errorf("spool backlog expr %q ignores spoolBacklogSeconds", rule.Expr)
				}
			case "ErrnowatchSinkLagging":
				if !strings.HasSuffix(strings.TrimSpace(rule.Expr), "> 43") {
					t.Errorf("sink lag expr %q ignores sinkLagSeconds", rule.Expr)
				}
			}
		}
	}
}

// dashboard renders the dashboard ConfigMap and parses its JSON.
func dashboard(t *testing.T, vals map[string]any) (*corev1.ConfigMap, map[string]any) {
	t.Helper()
	cm := get[corev1.ConfigMap](t, render(t, vals), "ConfigMap", "errnowatch-dashboard")
	raw, ok := cm.Data["errnowatch.json"]
	if !ok || len(cm.Data) != 1 {
		t.Fatalf("dashboard ConfigMap holds %v, want errnowatch.json", keys(cm.Data))
	}
	var d map[string]any
	if err := json.Unmarshal([]byte(raw), &d); err != nil {
		t.Fatalf("dashboard JSON does not parse: %v", err)
	}
	return cm, d
}

// panels flattens the dashboard's panels, rows' nested ones included.
func panels(d map[string]any) []map[string]any {
	var out []map[string]any
	var walk func([]any)
	walk = func(ps []any) {
		for _, p := range ps {
			pm := p.(map[string]any)
			out = append(out, pm)
			if sub, ok := pm["panels"].([]any); ok {
				walk(sub)
			}
		}
	}
	ps, _ := d["panels"].([]any)
	walk(ps)
	return out
}

// The dashboard ConfigMap carries the sidecar's label (configurable), and
// the dashboard parses and covers what the issue lists.
func TestGrafanaDashboard(t *testing.T) {
	if _, ok := render(t, nil).find("ConfigMap", "errnowatch-dashboard"); ok {
		t.Fatal("dashboard rendered by default")
	}
	cm, d := dashboard(t, values(t, "grafana: {dashboard: {enabled: true}}"))
	if cm.Labels["grafana_dashboard"] != "1" {
		t.Errorf("labels %v, want grafana_dashboard: \"1\" for the Grafana sidecar", cm.Labels)
	}
	if d["uid"] != "errnowatch" || d["title"] != "errnowatch" {
		t.Errorf("dashboard uid %v title %v", d["uid"], d["title"])
	}
	var titles []string
	for _, p := range panels(d) {
		titles = append(titles, p["title"].(string))
		if p["type"] == "row" {
			continue
		}
		targets, _ := p["targets"].([]any)
		if len(targets) == 0 {
			t.Errorf("panel %q has no query", p["title"])
		}
		for _, tg := range targets {
			if e, _ := tg.(map[string]any)["expr"].(string); e == "" {
				t.Errorf("panel %q has a target without expr", p["title"])
			}
		}
	}
	for _, want := range []string{"Failures per second by namespace", "Top syscall and errno", "Alerts by rule and severity",
		"Sampled records lost", "Counts map pressure", "Spool backlog", "Alerts ingested", "Sink lag"} {
		if !slices.Contains(titles, want) {
			t.Errorf("dashboard lacks panel %q (has %v)", want, titles)
		}
	}
	cm, _ = dashboard(t, values(t, "grafana: {dashboard: {enabled: true, label: dashboards.example/load, labelValue: \"yes\", annotations: {grafana_folder: Security}}}"))
	if cm.Labels["dashboards.example/load"] != "yes" || cm.Annotations["grafana_folder"] != "Security" {
		t.Errorf("configured label/annotations not applied: %v %v", cm.Labels, cm.Annotations)
	}
}

// queries are every PromQL expression of the rendered rules and dashboard,
// with Grafana's variables replaced by values PromQL parses.
func queries(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	file, _ := ruleGroups(t, render(t, values(t, ruleValues)))
	var f struct {
		Groups []struct {
			Rules []struct {
				Alert, Expr string
			} `json:"rules"`
		} `json:"groups"`
	}
	if err := yaml.Unmarshal(file, &f); err != nil {
		t.Fatal(err)
	}
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			out["rule "+r.Alert] = r.Expr
		}
	}
	_, d := dashboard(t, values(t, "grafana: {dashboard: {enabled: true}}"))
	grafana := strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "6h",
		`"$namespace"`, `".*"`, `"$node"`, `".*"`)
	for _, p := range panels(d) {
		targets, _ := p["targets"].([]any)
		for i, tg := range targets {
			e, _ := tg.(map[string]any)["expr"].(string)
			out["panel "+p["title"].(string)+" #"+itoa(i)] = grafana.Replace(e)
		}
	}
	labelValues := regexp.MustCompile(`^label_values\(([^,]+),\s*\w+\)$`)
	templ, _ := d["templating"].(map[string]any)["list"].([]any)
	for _, v := range templ {
		vm := v.(map[string]any)
		if vm["type"] != "query" {
			continue
		}
		q, _ := vm["query"].(map[string]any)["query"].(string)
		m := labelValues.FindStringSubmatch(q)
		if m == nil {
			t.Errorf("variable %v: query %q is not label_values(SELECTOR, LABEL)", vm["name"], q)
			continue
		}
		out["variable "+vm["name"].(string)] = m[1]
	}
	return out
}

// Series that come from elsewhere than errnowatch, which the rules and
// dashboard may name.
var externalMetrics = map[string]string{
	"up": "Prometheus, per scrape target",
	"kube_daemonset_status_desired_number_scheduled": "kube-state-metrics",
	"kube_daemonset_status_number_ready":             "kube-state-metrics",
}

// Every query in the PrometheusRule and the dashboard parses (the
// Prometheus module's parser, bin/promql-metrics) and names only metrics
// the agent or the collector really export: the agent's are gathered from
// its registry after it ran here on the kernel, the collector's are the
// descriptors of every collector its code registers.
func TestQueriesNameExportedMetrics(t *testing.T) {
	bin := promBinary(t, "promql-metrics")
	qs := queries(t)
	var names []string
	for k := range qs {
		names = append(names, k)
	}
	sort.Strings(names)
	exprs := make([]string, len(names))
	for i, k := range names {
		exprs[i] = qs[k]
	}
	in, _ := json.Marshal(exprs)
	cmd := exec.Command(bin)
	cmd.Stdin = bytes.NewReader(in)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("promql-metrics: %v", err)
	}
	var results []struct {
		Metrics []string `json:"metrics"`
		Error   string   `json:"error"`
	}
	if err := json.Unmarshal(out, &results); err != nil || len(results) != len(exprs) {
		t.Fatalf("promql-metrics answered %q (%v)", out, err)
	}

	exported := exportedMetrics(t)
	used := map[string]bool{}
	for i, r := range results {
		if r.Error != "" {
			t.Errorf("%s: %q does not parse: %s", names[i], exprs[i], r.Error)
			continue
		}
		if len(r.Metrics) == 0 {
			t.Errorf("%s: %q names no metric", names[i], exprs[i])
		}
		for _, m := range r.Metrics {
			used[m] = true
			if !exported[m] && externalMetrics[m] == "" {
				t.Errorf("%s names %s, which neither the agent nor the collector exports", names[i], m)
			}
		}
	}
	// The lists above hold nothing the queries no longer need.
	for m := range externalMetrics {
		if !used[m] {
			t.Errorf("externalMetrics lists %s, which no query uses", m)
		}
	}
	t.Logf("%d queries name %d metrics; the agent and collector export %d", len(exprs), len(used), len(exported))
}

// exportedMetrics are the metric names the agent and the collector export.
func exportedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	for _, n := range agentMetrics(t) {
		names[n] = true
	}
	for _, n := range collectorMetrics(t) {
		names[n] = true
	}
	return names
}

// agentMetrics runs the agent as the chart does (kernel program attached,
// the repository's rules, per-pod metrics on) but without Kubernetes, makes
// a child process fail syscalls, and gathers its registry once failures and
// a rule's evaluation errors are counted.
func agentMetrics(t *testing.T) []string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("the agent needs root to load its kernel program (tests run as root: make test)")
	}
	// The repository's rules, and one whose condition fails at run time
	// (a label no process has), so the per-rule error series exists too.
	rules := t.TempDir()
	for name, body := range map[string][]byte{
		"default.yaml": readRepoFile(t, "rules/default.yaml"),
		"broken.yaml": []byte("rules:\n  - id: chart-test-eval-error\n    severity: low\n" +
			"    condition: count >= 1 && labels[\"errnowatch-chart-test\"] == \"x\"\n"),
	} {
		if err := os.WriteFile(filepath.Join(rules, name), body, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	a, err := agent.New(ctx, agent.Config{
		NoKubernetes: true,
		Rules:        []string{rules},
		SpoolDir:     t.TempDir(),
		Interval:     100 * time.Millisecond,
		PodMetrics:   agent.PodMetrics{Enabled: true},
		Logger:       zap.NewNop(),
	})
	if err != nil {
		cancel()
		t.Fatalf("start the agent: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent: %v", err)
		}
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		// The agent does not count its own process: a child fails.
		_ = exec.Command("/bin/sh", "-c", "exec 3</nonexistent/errnowatch-chart-test").Run()
		time.Sleep(200 * time.Millisecond)
		mfs, err := a.Registry().Gather()
		if err != nil {
			t.Fatalf("gather the agent's metrics: %v", err)
		}
		var out []string
		counted := false
		for _, mf := range mfs {
			out = append(out, mf.GetName())
			counted = counted || mf.GetName() == "errnowatch_pod_failures_total" && len(mf.GetMetric()) > 1
		}
		if counted && slices.Contains(out, "errnowatch_failures_total") && slices.Contains(out, "errnowatch_rules_evaluation_errors_total") {
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("no failures counted in 30s; the agent exported %v", out)
		}
	}
}

// collectorMetrics are the names of every metric descriptor the collector's
// code registers (its own counters and the Kubernetes authenticator's), as
// cmd/errnowatch wires them, whether or not a series exists yet.
func collectorMetrics(t *testing.T) []string {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "alerts.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	reg := &describing{Registry: prometheus.NewPedanticRegistry()}
	cs, err := kube.NewClient(&rest.Config{Host: "https://127.0.0.1:1"}) // never called: no identity is checked here
	if err != nil {
		t.Fatal(err)
	}
	k := auth.NewKubernetes(cs, auth.Options{Registerer: reg})
	srv, err := collector.New(collector.Config{Store: st, Registerer: reg, Authenticator: k, Authorizer: k, Nodes: k})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	sink.NewMetrics(reg) // what --sinks-config registers beside the collector's
	if _, err := reg.Gather(); err != nil {
		t.Fatalf("the collector's registry does not gather: %v", err)
	}
	if len(reg.names) == 0 {
		t.Fatal("the collector registered no metrics")
	}
	return reg.names
}

// describing is a registry that also records the name of every descriptor
// registered with it, so vectors without series yet are known too.
type describing struct {
	*prometheus.Registry
	names []string
}

var fqName = regexp.MustCompile(`fqName: "([^"]+)"`)

func (d *describing) Register(c prometheus.Collector) error {
	if err := d.Registry.Register(c); err != nil {
		return err
	}
	ch := make(chan *prometheus.Desc)
	go func() { c.Describe(ch); close(ch) }()
	for desc := range ch {
		// Desc has no accessor for its name; its String() has carried it
		// as fqName: "..." in every client_golang release.
		if m := fqName.FindStringSubmatch(desc.String()); m != nil {
			d.names = append(d.names, m[1])
		}
	}
	return nil
}

func (d *describing) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := d.Register(c); err != nil {
			panic(err)
		}
	}
}
