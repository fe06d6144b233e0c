package attacks

import (
	"bytes"
	"os"
	"testing"

	"github.com/errnowatch/errnowatch/pkg/cgroup/cgrouptest"
)

func TestMain(m *testing.M) {
	Main()
	os.Exit(m.Run())
}

// TestWorkloads runs every workload, of every set, in a child: each
// checks its own syscalls failed (or, for the benign ones, ran) as
// intended and exits non-zero otherwise. Each child runs in a cgroup of
// its own (cgrouptest), not in the host's: an agent watching the host
// while the suite runs (test/hostbaseline) then sees these attacks apart
// from the node's daemons, under the cgroups tests make.
func TestWorkloads(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("the workloads drop from root to nobody: run the tests as root")
	}
	for _, w := range Extended() {
		t.Run(w.Name, func(t *testing.T) {
			t.Parallel()
			cmd := w.Command(Scratch(t))
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cgrouptest.New(t, w.Name).Run(cmd); err != nil {
				t.Fatalf("%s (%s): %v\n%s", w.Name, w.Description, err, out.String())
			}
		})
	}
}

func TestLookup(t *testing.T) {
	w, ok := Lookup("network-scan")
	if !ok || w.Rule != "network-scan" || w.Benign() {
		t.Errorf("Lookup(network-scan) = %+v, %v", w, ok)
	}
	if _, ok := Lookup("nope"); ok {
		t.Error("Lookup(nope) found something")
	}
}
