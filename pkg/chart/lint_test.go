package chart

import (
	"testing"

	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
)

// helm lint --strict for each value combination, as `make chart-lint` runs
// it: a warning fails too.
func TestHelmLintStrict(t *testing.T) {
	for _, name := range combinations(t) {
		t.Run(name, func(t *testing.T) {
			l := lint.AllWithKubeVersionAndSchemaValidation(Dir(), valuesFile(t, name), releaseNamespace, nil, false)
			for _, m := range l.Messages {
				if m.Severity >= support.WarningSev {
					t.Error(m)
				}
			}
			if len(l.Messages) == 0 {
				// The linter always says something (at least "icon is
				// recommended"); silence means it did not run.
				t.Error("lint produced no messages at all")
			}
		})
	}
}
