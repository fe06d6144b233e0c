// Package chart holds the tests of the Helm chart in charts/errnowatch, the
// packaging stage that turns the errnowatch binary into a cluster install:
// the agent DaemonSet, the collector StatefulSet, their RBAC, TLS and rules.
//
// The tests render the chart with the Helm SDK across the value combinations
// in charts/errnowatch/ci, decode every object strictly into its Kubernetes
// type, assert the security posture (capabilities, host paths, users, RBAC
// verbs), lint it as `helm lint --strict` does, check that
// manifests/errnowatch.yaml is the current default render, and create every
// object with a server-side dry run on a real kube-apiserver (envtest).
package chart

import (
	"path/filepath"
	"runtime"
)

// Dir returns the chart's directory, charts/errnowatch of the repository,
// found from this source file so that it works from any working directory.
func Dir() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return filepath.Join("charts", "errnowatch")
	}
	return filepath.Join(filepath.Dir(file), "..", "..", "charts", "errnowatch")
}
