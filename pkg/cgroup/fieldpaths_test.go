package cgroup_test

import (
	"bufio"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/errnowatch/errnowatch/pkg/cgroup"
)

// fieldPath is one row of testdata/field-paths.tsv: a cgroup path quoted in
// another project's fixtures or in a public bug report, and what it says.
type fieldPath struct {
	line                                  int
	in                                    string
	pod, id, runtime, driver, qos, layout string
	source                                string
}

func fieldPaths(tb testing.TB) []fieldPath {
	tb.Helper()
	f, err := os.Open("testdata/field-paths.tsv")
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var out []fieldPath
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		col := strings.Split(line, "\t")
		if len(col) != 8 {
			tb.Fatalf("field-paths.tsv:%d: %d columns, want 8", n, len(col))
		}
		for i := 1; i < 6; i++ {
			if col[i] == "-" {
				col[i] = ""
			}
		}
		if col[7] == "" {
			tb.Fatalf("field-paths.tsv:%d: no source", n)
		}
		out = append(out, fieldPath{
			line: n, in: strings.ReplaceAll(col[0], `\n`, "\n"),
			pod: col[1], id: col[2], runtime: col[3], driver: col[4], qos: col[5], layout: col[6], source: col[7],
		})
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	return out
}

// TestFieldPaths parses every path of the field corpus: each must give the
// pod UID and container ID (or no container, for sandboxes, conmon and
// pod-level cgroups) that the path holds.
func TestFieldPaths(t *testing.T) {
	rows := fieldPaths(t)
	if len(rows) < 80 {
		t.Fatalf("the field corpus has %d paths, want at least 80", len(rows))
	}
	// Every platform, runtime and hierarchy the corpus must cover (issue
	// 14) names itself in at least one row's layout column.
	for _, want := range []string{"GKE", "EKS", "Fargate", "AKS", "kind", "minikube", "k3s", "RKE2", "OpenShift",
		"kubeadm", "containerd", "CRI-O", "conmon", "Docker", "Kata", "gVisor", "v1", "v2", "hybrid"} {
		if !slices.ContainsFunc(rows, func(r fieldPath) bool { return strings.Contains(r.layout, want) }) {
			t.Errorf("the field corpus has no path of %s: add one, with its source", want)
		}
	}
	for _, r := range rows {
		got := cgroup.Parse(r.in)
		want := cgroup.Info{
			Path: got.Path, Driver: r.driver, Runtime: r.runtime, QoS: r.qos, PodUID: r.pod, ContainerID: r.id,
			IsContainer: r.id != "", InPod: r.pod != "",
		}
		if got != want {
			t.Errorf("field-paths.tsv:%d (%s, %s):\nParse(%q)\n got %+v\nwant %+v", r.line, r.layout, r.source, r.in, got, want)
		}
		if again := cgroup.Parse(got.Path); again != got {
			t.Errorf("field-paths.tsv:%d: Parse of its Path %q = %+v, want %+v", r.line, got.Path, again, got)
		}
	}
}
