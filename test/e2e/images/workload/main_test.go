package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
	"golang.org/x/sys/unix"

	"github.com/errnowatch/errnowatch/pkg/cgroup"
	"github.com/errnowatch/errnowatch/pkg/cgroup/cgrouptest"
	"github.com/errnowatch/errnowatch/pkg/sensor"
)

// envArgs carries a child's command line: the test binary started again
// runs the workload program instead of the tests.
const envArgs = "ERRNOWATCH_WORKLOAD_ARGS"

func TestMain(m *testing.M) {
	if args := os.Getenv(envArgs); args != "" {
		os.Exit(runUntilSignal(strings.Fields(args)))
	}
	os.Exit(m.Run())
}

// TestCountsMatchKernel runs fail-load and burst in a cgroup of their own
// under the kernel sensor: the count each reports must be exactly what the
// kernel counted for its (syscall, errno) in that cgroup, or the e2e tests
// comparing it with the agent's counts would compare with a wrong number.
func TestCountsMatchKernel(t *testing.T) {
	s, err := sensor.Load(sensor.Config{Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatalf("load sensor: %v", err)
	}
	defer s.Close()
	for _, tc := range []struct {
		name string
		args string
		nr   int32
	}{
		{"fail-load faccessat", "fail-load --threads 2 --duration 500ms", unix.SYS_FACCESSAT},
		{"burst openat", "burst --count 20000 --syscall openat", unix.SYS_OPENAT},
		{"burst close", "burst --count 20000 --syscall close", unix.SYS_CLOSE},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cg := cgrouptest.New(t, cgrouptest.KubeletPath(cgroup.DriverCgroupfs, cgroup.RuntimeContainerd,
				cgroup.QoSBestEffort, cgrouptest.PodUID(), cgrouptest.ContainerID()))
			if err := s.SetFilter(sensor.Filter{IncludeCgroups: []uint64{cg.ID}}); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Drain(); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), envArgs+"="+tc.args)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cg.Run(cmd); err != nil {
				t.Fatalf("workload %s: %v\n%s", tc.args, err, stderr.String())
			}
			var res Result
			if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
				t.Fatalf("result %q: %v", stdout.String(), err)
			}
			iv, err := s.Drain()
			if err != nil {
				t.Fatal(err)
			}
			var kernel uint64
			for _, c := range iv.Counts {
				if c.CgroupID == cg.ID && c.Syscall == tc.nr && !c.Compat && unix.ErrnoName(unix.Errno(c.Errno)) == res.Errno {
					kernel += c.Count
				}
			}
			if st := iv.Stats; st.MapFull != 0 {
				t.Fatalf("sensor map full (%+v): counts incomplete", st)
			}
			t.Logf("%s: %d %s %s at %.0f/s", tc.args, res.Count, res.Syscall, res.Errno, res.PerSec)
			if res.Count == 0 || res.Other != 0 || kernel != res.Count {
				t.Errorf("%s reported %d %s (%d other), the kernel counted %d", res.Syscall, res.Count, res.Errno,
					res.Other, kernel)
			}
		})
	}
}

// TestSleepStopsOnSIGTERM checks the churn pods' mode ends cleanly when the
// kubelet stops the container, and that --then-sleep does the same after
// a workload.
func TestSleepStopsOnSIGTERM(t *testing.T) {
	for _, args := range []string{"sleep", "burst --count 10 --then-sleep"} {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), envArgs+"="+args)
		var stdout bytes.Buffer
		cmd.Stdout = &stdout
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			t.Fatalf("%s ended before SIGTERM: %v", args, err)
		case <-time.After(300 * time.Millisecond):
		}
		if err := cmd.Process.Signal(unix.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Errorf("%s after SIGTERM: %v", args, err)
		}
		if args != "sleep" && !strings.Contains(stdout.String(), `"count":10`) {
			t.Errorf("%s printed %q before sleeping", args, stdout.String())
		}
	}
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{nil, {"nope"}, {"attack"}, {"attack", "benign-shell"}, {"benign", "network-scan"},
		{"run", "no-such-workload"}, {"burst"}, {"fail-load", "--syscall", "read"}, {"fail-load", "--threads", "0"}} {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), args, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "usage") {
			t.Errorf("%q: exit %d, stderr %q; want 2 and the usage", args, code, stderr.String())
		}
	}
}
