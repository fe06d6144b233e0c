// Command pause is the e2e cluster's pod sandbox program: what the kubelet's
// pause image runs. It holds the pod's namespaces open by doing nothing, as
// PID 1 of a shared PID namespace reaps the orphans that are re-parented to
// it, and exits 0 on SIGINT or SIGTERM.
package main

import (
	"os"
	"os/signal"

	"golang.org/x/sys/unix"
)

func main() {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, unix.SIGINT, unix.SIGTERM, unix.SIGCHLD)
	for s := range sigs {
		if s != unix.SIGCHLD {
			os.Exit(0)
		}
		// One SIGCHLD may stand for several exits: reap all that are
		// ready, without blocking on children still running.
		for {
			var ws unix.WaitStatus
			pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
