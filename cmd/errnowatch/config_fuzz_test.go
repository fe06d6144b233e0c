package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// FuzzAgentConfigFile feeds arbitrary --config files to the agent's
// command. applyConfigFile must never panic; it either sets exactly the
// flags the file names or says what is wrong with the file, naming it.
// Seeds are in testdata/fuzz/FuzzAgentConfigFile.
func FuzzAgentConfigFile(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "agent.yaml")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := newAgentCmd(&globalFlags{})
		err := applyConfigFile(cmd.Flags(), path)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "--config "+path) {
				t.Fatalf("error %q does not name the file", err)
			}
			return
		}
		var values map[string]any
		if err := yaml.Unmarshal(data, &values); err != nil {
			t.Fatalf("applied a file that does not parse: %v", err)
		}
		for k := range values {
			if fl := cmd.Flags().Lookup(k); fl == nil || !fl.Changed {
				t.Fatalf("key %q was accepted but set no flag", k)
			}
		}
	})
}

func TestConfigFileBound(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.yaml")
	big := "node-name: " + strings.Repeat("x", maxConfigFileBytes) + "\n"
	if err := os.WriteFile(path, []byte(big), 0o600); err != nil {
		t.Fatal(err)
	}
	err := applyConfigFile(newAgentCmd(&globalFlags{}).Flags(), path)
	if err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("a config file over the bound: %v", err)
	}
}
