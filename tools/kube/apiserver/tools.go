//go:build tools

// Package tools pins the kube-apiserver main package so that `go mod tidy`
// keeps its dependencies. Build with:
//
//	go build -o bin/kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
)
