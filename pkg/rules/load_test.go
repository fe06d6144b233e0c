package rules

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

func TestDefaultPack(t *testing.T) {
	rs, err := Load("../../rules/default.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(rs.Rules) < 10 {
		t.Fatalf("default pack has %d rules, want at least 10", len(rs.Rules))
	}
	for _, r := range rs.Rules {
		if len(r.Tags) == 0 || r.Description == "" {
			t.Errorf("rule %s needs MITRE tags and a description", r.ID)
		}
	}
}

func TestValidationErrors(t *testing.T) {
	const file = `rules:
  - id: bad-syscall
    severity: high
    match:
      syscalls: [opnat, "@fiel", mount]
      errnos: [EACCESS]
    window: 10x
    condition: count >=
  - id: bad-cel-type
    severity: low
    condition: count + "x" > 1
  - id: bad-selector
    severity: medium
    scope:
      pod_selector: "app in (web"
    conditon: count >= 1
  - id: bad-key
    severity: critical
    group_by: cluster
    tags: [t1611]
    condition: syscalls["opnat"] > 1 && errnos["EACCESS"] > 0
  - id: Bad_ID
    severity: urgent
    cooldown: -5s
  - id: no-severity
    match: {syscalls: [file]}
  - id: slow-by-process
    severity: low
    group_by: process
    condition: duration.p99_ns > 1000
`
	_, err := Parse("bad.yaml", []byte(file))
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("want Errors, got %v", err)
	}
	want := []struct {
		line int
		msg  string
	}{
		{5, `bad.yaml:5:18: rule bad-syscall: unknown syscall "opnat" (did you mean "openat"?)`},
		{5, `bad.yaml:5:25: rule bad-syscall: unknown syscall group "@fiel" (did you mean "@file"?)`},
		{6, `bad.yaml:6:16: rule bad-syscall: unknown errno "EACCESS" (did you mean "EACCES"?)`},
		{7, `bad.yaml:7:13: rule bad-syscall: window "10x" is not a duration like 10s, 1m or 500ms`},
		{8, `bad.yaml:8:`},
		{11, `bad.yaml:11:`},
		{15, `bad.yaml:15:21: rule bad-selector: pod_selector "app in (web":`},
		{16, `bad.yaml:16:5: rule bad-selector: unknown field "conditon" in rule (did you mean "condition"?)`},
		{19, `bad.yaml:19:15: rule bad-key: group_by "cluster" is not one of pod, container, process, node`},
		{20, `bad.yaml:20:12: rule bad-key: tag "t1611" is not a MITRE ATT&CK technique id`},
		{21, `bad.yaml:21:`},
		{22, `bad.yaml:22:9: rule id "Bad_ID" must be lowercase`},
		{23, `bad.yaml:23:15: rule Bad_ID: unknown severity "urgent"`},
		{24, `bad.yaml:24:15: rule Bad_ID: cooldown -5s is shorter than 0s`},
		{25, `bad.yaml:25:5: rule no-severity: rule has no severity`},
		{26, `bad.yaml:26:24: rule no-severity: "file" is a syscall group, not a syscall: write "@file"`},
		{27, `bad.yaml:30:16: rule slow-by-process: condition reads duration, but latency histograms are per cgroup`},
	}
	text := err.Error()
	for _, w := range want {
		if !strings.Contains(text, w.msg) {
			t.Errorf("missing error %q", w.msg)
		}
	}
	// CEL problems point into the expression and name the rule.
	for _, re := range []string{
		`bad\.yaml:8:\d+: rule bad-syscall: condition: Syntax error`,
		`bad\.yaml:11:\d+: rule bad-cel-type: condition: found no matching overload for '_\+_'`,
		`bad\.yaml:21:\d+: rule bad-key: condition: syscalls\["opnat"\]: unknown syscall "opnat" \(did you mean "openat"\?\)`,
		`bad\.yaml:21:\d+: rule bad-key: condition: errnos\["EACCESS"\]: unknown errno "EACCESS" \(did you mean "EACCES"\?\)`,
	} {
		if !regexp.MustCompile(re).MatchString(text) {
			t.Errorf("missing error matching %s", re)
		}
	}
	if t.Failed() {
		t.Logf("all errors:\n%s", text)
	}
	// Every error is located.
	for _, e := range errs {
		if e.File != "bad.yaml" || e.Line == 0 {
			t.Errorf("unlocated error %q", e)
		}
	}
}

func TestValidationCELColumn(t *testing.T) {
	_, err := Parse("c.yaml", []byte("rules:\n  - id: r\n    severity: low\n    condition: count >= 1 && bogus > 2\n"))
	if err == nil || !strings.Contains(err.Error(), "c.yaml:4:30: rule r: condition: undeclared reference to 'bogus'") {
		t.Errorf("got %v", err)
	}
	_, err = Parse("c.yaml", []byte("rules:\n  - id: r\n    severity: low\n    condition: |\n      count >= 1 &&\n        bogus > 2\n"))
	if err == nil || err.Error() != "c.yaml:6: rule r: condition: undeclared reference to 'bogus'" {
		t.Errorf("block scalar: got %v", err)
	}
}

func TestYAMLSyntaxError(t *testing.T) {
	_, err := Parse("s.yaml", []byte("rules:\n  - id: a\n    severity: [low\n"))
	var errs Errors
	if !errors.As(err, &errs) || errs[0].File != "s.yaml" || errs[0].Line == 0 {
		t.Fatalf("want a located syntax error, got %v", err)
	}
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func rule(id, cond string) string {
	return "  - id: " + id + "\n    severity: low\n    match: {syscalls: [openat]}\n    condition: " + cond + "\n"
}

func TestDuplicateIDsAcrossFiles(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.yaml"), "rules:\n"+rule("dup", "count >= 1"))
	writeFile(t, filepath.Join(dir, "b.yml"), "rules:\n"+rule("ok", "count >= 1")+rule("dup", "count >= 2"))
	_, err := Load(dir)
	want := filepath.Join(dir, "b.yml") + ":6:5: rule dup: duplicate rule id (first defined at " + filepath.Join(dir, "a.yaml") + ":2)"
	if err == nil || err.Error() != want {
		t.Errorf("got  %v\nwant %s", err, want)
	}
}

// configMap lays out dir the way the kubelet mounts a ConfigMap: the data in
// a timestamped directory, "..data" pointing at it, and each key a symlink
// through "..data". It returns a function that swaps in new contents the
// way the kubelet updates a mount.
func configMap(t *testing.T, dir string, files map[string]string) func(map[string]string) {
	t.Helper()
	gen := 0
	write := func(files map[string]string) {
		gen++
		ts := filepath.Join(dir, "..2026_03_01_12_00_0"+string(rune('0'+gen))+".000000001")
		for name, data := range files {
			writeFile(t, filepath.Join(ts, name), data)
		}
		tmp := filepath.Join(dir, "..data_tmp")
		if err := os.Symlink(filepath.Base(ts), tmp); err != nil {
			t.Fatal(err)
		}
		old, _ := os.Readlink(filepath.Join(dir, "..data"))
		if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
		if old != "" {
			if err := os.RemoveAll(filepath.Join(dir, old)); err != nil {
				t.Fatal(err)
			}
		}
		for name := range files {
			link := filepath.Join(dir, name)
			if _, err := os.Lstat(link); err != nil {
				if err := os.Symlink(filepath.Join("..data", name), link); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	write(files)
	return write
}

func TestLoadConfigMapMount(t *testing.T) {
	dir := t.TempDir()
	configMap(t, dir, map[string]string{"pack.yaml": "rules:\n" + rule("from-configmap", "count >= 1")})
	// Neither hidden files nor other extensions are rule files.
	writeFile(t, filepath.Join(dir, ".hidden.yaml"), "not: [valid")
	writeFile(t, filepath.Join(dir, "README.md"), "# rules")
	rs, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs.Rules) != 1 || rs.Rules[0].ID != "from-configmap" {
		t.Fatalf("rules %v", rs.Rules)
	}
	if !slices.Equal(rs.Files, []string{filepath.Join(dir, "pack.yaml")}) {
		t.Errorf("files %v", rs.Files)
	}
}

func TestLoadErrors(t *testing.T) {
	if _, err := Load(); err == nil {
		t.Error("no path: want an error")
	}
	dir := t.TempDir()
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "no *.yaml or *.yml rule files") {
		t.Errorf("empty dir: %v", err)
	}
	if _, err := Load(filepath.Join(dir, "missing.yaml")); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing file: %v", err)
	}
	writeFile(t, filepath.Join(dir, "empty.yaml"), "")
	if _, err := Load(filepath.Join(dir, "empty.yaml")); err == nil || !strings.Contains(err.Error(), "file is empty") {
		t.Errorf("empty file: %v", err)
	}
}

func TestDisabledRule(t *testing.T) {
	rs := mustParse(t, "rules:\n"+rule("on", "count >= 1")+rule("off", "count >= 1")+"    enabled: false\n")
	if len(rs.Rules) != 1 || rs.Rules[0].ID != "on" {
		t.Errorf("rules %v", rs.Rules)
	}
}
