package attacks

import (
	"os"
	"testing"
)

func TestMain(m *testing.M) {
	Main()
	os.Exit(m.Run())
}

// TestWorkloads runs every workload, of every set, in a child: each
// checks its own syscalls failed (or, for the benign ones, ran) as
// intended and exits non-zero otherwise.
func TestWorkloads(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("the workloads drop from root to nobody: run the tests as root")
	}
	for _, w := range Extended() {
		t.Run(w.Name, func(t *testing.T) {
			t.Parallel()
			if out, err := w.Command(Scratch(t)).CombinedOutput(); err != nil {
				t.Fatalf("%s (%s): %v\n%s", w.Name, w.Description, err, out)
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
