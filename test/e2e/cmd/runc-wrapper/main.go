// Command runc-wrapper is containerd's runc on the e2e node: it raises
// negative oomScoreAdj in the OCI bundle to 0 and runs the real runc (see
// package runcwrap for why).
package main

import (
	"fmt"
	"os"

	"github.com/errnowatch/errnowatch/test/e2e/runcwrap"
)

func main() {
	if err := runcwrap.RuncWrapper(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
