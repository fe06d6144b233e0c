package syscalls

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestGeneratedUpToDate regenerates the tables and compares them with the
// committed file, so a golang.org/x/sys bump without `go generate` fails here
// as well as in make verify.
func TestGeneratedUpToDate(t *testing.T) {
	out := filepath.Join(t.TempDir(), "zsyscalls.go")
	cmd := exec.Command("go", "run", "../../hack/gensyscalls", "-o", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gensyscalls: %v\n%s", err, b)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile("zsyscalls.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Error("zsyscalls.go is stale; run: go generate ./pkg/syscalls")
	}
}

// TestArgsGeneratedUpToDate does the same for the argument signatures,
// which come from the committed snapshot hack/genargs/signatures.txt.
func TestArgsGeneratedUpToDate(t *testing.T) {
	out := filepath.Join(t.TempDir(), "zargs.go")
	cmd := exec.Command("go", "run", "../../hack/genargs", "-o", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("genargs: %v\n%s", err, b)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile("zargs.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Error("zargs.go is stale; run: go generate ./pkg/syscalls")
	}
}
