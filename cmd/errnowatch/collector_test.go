package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestPostgresAddressStaysSecret: a postgres address (with its password) is
// refused on the command line, read from a file or the environment, and
// never repeated in an error; without sslmode it asks for verify-full.
func TestPostgresAddressStaysSecret(t *testing.T) {
	const secret = "s3cr3t-pw"
	addr := "postgres://ew:" + secret + "@127.0.0.1:1/alerts"
	run := func(env []string, args ...string) string {
		cmd := exec.Command(binary, append([]string{"collector", "--listen", "", "--auth", "none",
			"--unix-socket", filepath.Join(t.TempDir(), "run", "c.sock"), "--metrics-address", "", "--health-address", ""}, args...)...)
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		if err == nil {
			t.Fatalf("collector %v started with an unreachable postgres", args)
		}
		if strings.Contains(string(out), secret) {
			t.Fatalf("collector %v printed the password:\n%s", args, out)
		}
		return string(out)
	}
	if out := run(nil, "--store", addr); !strings.Contains(out, "--store takes only sqlite:PATH") {
		t.Fatalf("postgres address in --store: %s", out)
	}
	file := filepath.Join(t.TempDir(), "store")
	if err := os.WriteFile(file, []byte(addr+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out := run(nil, "--store-file", file); !strings.Contains(out, "postgres") {
		t.Fatalf("postgres address in --store-file: %s", out)
	}
	if out := run([]string{storeEnv + "=" + addr}); !strings.Contains(out, "postgres") {
		t.Fatalf("postgres address in $%s: %s", storeEnv, out)
	}

	for in, want := range map[string]string{
		"postgres://u@h/db":                    "postgres://u@h/db?sslmode=verify-full",
		"postgres://u@h/db?sslmode=disable":    "postgres://u@h/db?sslmode=disable",
		"postgres://u@h/db?application_name=x": "postgres://u@h/db?application_name=x&sslmode=verify-full",
	} {
		if got, err := verifyFull(in); err != nil || got != want {
			t.Errorf("verifyFull(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := verifyFull("postgres://u:" + secret + "@h:port/db"); err == nil || strings.Contains(err.Error(), secret) {
		t.Errorf("malformed address: %v, want an error without the password", err)
	}
}
