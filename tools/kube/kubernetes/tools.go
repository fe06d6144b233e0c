//go:build tools

// Package tools pins the Kubernetes main packages errnowatch's tests run, so
// that `go mod tidy` keeps their dependencies: kube-apiserver for envtest,
// and the rest of a single-node cluster for the whole-system tests
// (test/e2e). Built by mk/kube.mk, e.g.
//
//	go build -o bin/kubelet k8s.io/kubernetes/cmd/kubelet
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
