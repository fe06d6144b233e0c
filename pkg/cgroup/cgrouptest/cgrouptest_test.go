package cgrouptest_test

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/errnowatch/errnowatch/pkg/cgroup/cgrouptest"
)

// TestStartInCgroup checks that a child is in the cgroup when it first looks,
// which moving it in after it started would not guarantee.
func TestStartInCgroup(t *testing.T) {
	d := cgrouptest.New(t, cgrouptest.KubeletPath("cgroupfs", "containerd", "besteffort", cgrouptest.PodUID(), cgrouptest.ContainerID()))
	out, err := runOutput(d, exec.Command("cat", "/proc/self/cgroup"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "0::"+d.Rel+"\n") {
		t.Fatalf("child started in %s says it is in:\n%s", d.Rel, out)
	}
}

func runOutput(d *cgrouptest.Dir, cmd *exec.Cmd) (string, error) {
	var b strings.Builder
	cmd.Stdout = &b
	err := d.Run(cmd)
	return b.String(), err
}

// TestCleanup checks that a test's cgroups, and what runs in them, are gone
// when it ends.
func TestCleanup(t *testing.T) {
	var top string
	var sleep *exec.Cmd
	t.Run("make", func(t *testing.T) {
		d := cgrouptest.New(t, "kubepods/pod"+cgrouptest.PodUID())
		// The errnowatch-test-<random> cgroup that New made.
		top = filepath.Join(d.Mount, strings.Split(d.Rel, "/")[1])
		sleep = exec.Command("sleep", "600")
		if err := d.Start(sleep); err != nil {
			t.Fatal(err)
		}
		if procs := d.Procs(); len(procs) != 1 || procs[0] != sleep.Process.Pid {
			t.Fatalf("procs of %s = %v, want [%d]", d.Rel, procs, sleep.Process.Pid)
		}
	})
	if _, err := os.Stat(top); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("test cgroup %s still there after the test: %v", top, err)
	}
	err := sleep.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != -1 {
		t.Errorf("sleep in the removed cgroup: %v, want killed", err)
	}
}
