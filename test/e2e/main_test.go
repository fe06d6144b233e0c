// Package e2e holds errnowatch's whole-system tests: the Helm chart
// installed on a real single-node cluster (test/e2e/cluster), real workload
// pods making real failing syscalls, alerts read back through the real CLI,
// under faults and load. `make e2e` starts the node, runs them and stops it;
// `go test ./...` without a node skips them.
package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/errnowatch/errnowatch/test/attacks"
	"github.com/errnowatch/errnowatch/test/e2e/cluster"
	"github.com/errnowatch/errnowatch/test/hostbaseline"
)

// env is the node the tests run on and the tools they drive it with.
type env struct {
	node    *cluster.Cluster
	kube    *kubernetes.Clientset
	bin     string // errnowatch, helm
	work    string // values files, tokens, CA
	release string
	ns      string
	// host is the standalone agent watching the node beside the chart's
	// (hostagent_test.go); nil until TestWholeSystem starts it.
	host *hostAgent
}

var e *env

func TestMain(m *testing.M) {
	// Host processes the tests start are this binary run again.
	hostbaseline.Main()
	attacks.Main()
	dir := os.Getenv("ERRNOWATCH_E2E_DIR")
	if dir == "" {
		fmt.Println("e2e: no node (ERRNOWATCH_E2E_DIR unset): skipping the whole-system tests; run make e2e")
		os.Exit(0)
	}
	node, err := cluster.Open(dir, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	kube, err := node.Client()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	work, err := os.MkdirTemp("", "errnowatch-e2e-work-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	bin := os.Getenv("ERRNOWATCH_E2E_BIN")
	if bin == "" {
		bin, _ = filepath.Abs("../../bin")
	}
	e = &env{node: node, kube: kube, bin: bin, work: work, release: "errnowatch", ns: "errnowatch"}
	code := m.Run()
	if code != 0 {
		e.dumpState()
	}
	_ = os.RemoveAll(work)
	os.Exit(code)
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
