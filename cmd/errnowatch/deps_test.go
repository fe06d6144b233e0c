package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestBinaryLinksNoClientset: the binary talks to Kubernetes through
// kube.Client alone. Linking client-go's clientset (or anything that pulls
// in its scheme) registers every built-in API type at start-up, which cost
// the agent about 15 MiB of its start-up peak and 37 MB of binary.
func TestBinaryLinksNoClientset(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v: %s", err, out)
	}
	for _, p := range strings.Fields(string(out)) {
		if p == "k8s.io/client-go/kubernetes" || p == "k8s.io/client-go/kubernetes/scheme" ||
			strings.HasPrefix(p, "k8s.io/client-go/informers") {
			t.Errorf("the binary links %s; use pkg/kube's Client instead (see its doc comment)", p)
		}
	}
}
