package importgraph

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/errnowatch/errnowatch/"

// vocabulary is what every stage may speak: the Go and wire models of an
// alert, the store's types and role interfaces, the syscall tables, and
// their conversion. These import only each other, never a stage.
var vocabulary = []string{
	"api/errnowatch/v1",
	"pkg/alert",
	"pkg/syscalls",
	"pkg/store", // the package alone: types and role interfaces, no driver
	"pkg/alertpb",
	"pkg/alertpb/querypb", // the query API's conversion of the store's types
}

// stages is the order data flows in, earliest first: a package may import
// the vocabulary and packages of its own or an earlier stage. A path names
// the package and the packages below it (a longer match wins).
var stages = [][]string{
	{"pkg/ops"},              // /metrics, /healthz, /readyz of any process
	{"pkg/sensor"},           // kernel → counts and records
	{"pkg/cgroup"},           // cgroup ids → paths
	{"pkg/kube"},             // the node's pods
	{"pkg/enrich"},           // cgroup → pod
	{"pkg/rules"},            // windows → alerts
	{"pkg/pipeline"},         // the node's stages built once
	{"pkg/delivery"},         // spool → sender
	{"pkg/collector/client"}, // dialing a collector
	{"pkg/agent"},            // the node agent's wiring
	{"pkg/auth"},             // who may publish and read
	{"pkg/store/sqlite", "pkg/store/postgres", "pkg/store/storetest"},
	{"pkg/alertfmt"},       // alerts as people and SIEMs read them
	{"pkg/sink", "pkg/ui"}, // destinations and the web UI: readers of the store
	{"pkg/collector"},      // ingest, queries, streams; serves the UI beside its API
	{"pkg/collector/embedded", "pkg/collector/collectortest", "pkg/console"},
	{"cmd", "internal", "hack", "test", "tools", "pkg/chart"},
}

// noClient lists packages that must not import a client package: the
// collector answers its clients and does not dial itself.
var noClient = map[string][]string{
	"pkg/collector":          {"pkg/collector/client"},
	"pkg/collector/embedded": {"pkg/collector/client"},
}

// rank returns a package's stage, -1 for the vocabulary, and whether it has
// one at all.
func rank(pkg string) (int, bool) {
	for _, v := range vocabulary {
		if pkg == v {
			return -1, true
		}
	}
	best, bestLen := 0, -1
	for i, st := range stages {
		for _, p := range st {
			if (pkg == p || strings.HasPrefix(pkg, p+"/")) && len(p) > bestLen {
				best, bestLen = i, len(p)
			}
		}
	}
	return best, bestLen >= 0
}

type listed struct {
	ImportPath string
	Imports    []string
}

func goList(t *testing.T) []listed {
	t.Helper()
	cmd := exec.Command("go", "list", "-json", "../../...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	var pkgs []listed
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p listed
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decode go list: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

// TestStagesFlowOneWay: no package imports a later stage (the vocabulary
// imports no stage at all), every package has a stage, and no package
// imports a client it must not.
func TestStagesFlowOneWay(t *testing.T) {
	pkgs := goList(t)
	if len(pkgs) < 20 {
		t.Fatalf("go list found only %d packages", len(pkgs))
	}
	for _, p := range pkgs {
		from, ok := strings.CutPrefix(p.ImportPath, module)
		if !ok {
			continue
		}
		rf, known := rank(from)
		if !known {
			t.Errorf("%s has no stage: add it to stages (or vocabulary) in internal/importgraph", from)
			continue
		}
		for _, imp := range p.Imports {
			to, ok := strings.CutPrefix(imp, module)
			if !ok {
				continue
			}
			rt, known := rank(to)
			if !known {
				continue // reported as a package of its own
			}
			switch {
			case rf == -1 && rt != -1:
				t.Errorf("vocabulary package %s imports the stage %s", from, to)
			case rt > rf:
				t.Errorf("%s (stage %d) imports %s of a later stage (%d)", from, rf, to, rt)
			}
			for _, c := range noClient[from] {
				if to == c {
					t.Errorf("%s imports %s: take the shared vocabulary from pkg/alertpb instead", from, to)
				}
			}
		}
	}
}

// TestRankCatchesViolations checks the checker on edges the tree must never
// have again.
func TestRankCatchesViolations(t *testing.T) {
	for _, e := range [][2]string{
		{"pkg/delivery", "pkg/collector/client"},
		{"pkg/agent", "pkg/store/sqlite"},
		{"pkg/agent", "pkg/collector"},
		{"pkg/enrich", "pkg/rules"},
		{"pkg/sensor", "pkg/enrich"},
	} {
		rf, _ := rank(e[0])
		rt, _ := rank(e[1])
		if rt <= rf {
			t.Errorf("%s → %s is not seen as importing a later stage (%d → %d)", e[0], e[1], rf, rt)
		}
	}
	if r, _ := rank("pkg/store"); r != -1 {
		t.Errorf("pkg/store is not vocabulary")
	}
	if r, _ := rank("pkg/store/sqlite"); r == -1 {
		t.Errorf("pkg/store/sqlite is seen as vocabulary")
	}
}
