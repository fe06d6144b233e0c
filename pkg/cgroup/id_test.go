package cgroup_test

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/errnowatch/errnowatch/pkg/cgroup"
	"github.com/errnowatch/errnowatch/pkg/cgroup/cgrouptest"
	"golang.org/x/sys/unix"
)

func TestFindV2Mount(t *testing.T) {
	m, err := cgroup.FindV2Mount()
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(m, &st); err != nil {
		t.Fatal(err)
	}
	if st.Type != unix.CGROUP2_SUPER_MAGIC {
		t.Fatalf("FindV2Mount() = %s, which is not a cgroup2 mount (statfs type %#x)", m, st.Type)
	}
}

// TestIDIsKernelID checks that ID gives the id the kernel gives BPF programs
// (bpf_get_current_cgroup_id) for a process in the cgroup, and the one that
// /proc/<pid>/cgroup names.
func TestIDIsKernelID(t *testing.T) {
	d := cgrouptest.New(t, cgrouptest.KubeletPath("systemd", "containerd", "burstable", cgrouptest.PodUID(), cgrouptest.ContainerID()))
	id, err := cgroup.ID(d.Path)
	if err != nil {
		t.Fatal(err)
	}
	if id != d.ID || id == 0 {
		t.Fatalf("ID(%s) = %d, cgrouptest says %d", d.Path, id, d.ID)
	}
	// st_ino is the same number on 64-bit kernels.
	var st unix.Stat_t
	if err := unix.Stat(d.Path, &st); err != nil {
		t.Fatal(err)
	}
	if st.Ino != id {
		t.Errorf("st_ino of %s = %d, handle id %d", d.Path, st.Ino, id)
	}

	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=bpf-cgroup-id")
	var out, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := d.Run(cmd); err != nil {
		t.Fatalf("helper in %s: %v: %s", d.Rel, err, stderr.String())
	}
	kernelID, err := strconv.ParseUint(strings.TrimSpace(out.String()), 10, 64)
	if err != nil {
		t.Fatalf("helper output %q: %v", out.String(), err)
	}
	if kernelID != id {
		t.Errorf("bpf_get_current_cgroup_id in %s = %d, ID = %d", d.Rel, kernelID, id)
	}

	sleep := exec.Command("sleep", "60")
	if err := d.Start(sleep); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sleep.Process.Kill(); _ = sleep.Wait() }()
	p, err := cgroup.PIDPath(sleep.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if p != d.Rel {
		t.Fatalf("/proc/%d/cgroup says %s, started in %s", sleep.Process.Pid, p, d.Rel)
	}
	if got := d.Procs(); len(got) != 1 || got[0] != sleep.Process.Pid {
		t.Errorf("cgroup.procs of %s = %v, want [%d]", d.Rel, got, sleep.Process.Pid)
	}
	byPath, err := cgroup.ID(filepath.Join(d.Mount, p))
	if err != nil || byPath != id {
		t.Errorf("ID of the path in /proc/%d/cgroup = %d, %v; want %d", sleep.Process.Pid, byPath, err, id)
	}
}

func TestIDErrors(t *testing.T) {
	if _, err := cgroup.ID("/proc"); !errors.Is(err, cgroup.ErrNotCgroup) {
		t.Errorf("ID(/proc) error = %v, want ErrNotCgroup", err)
	}
	if _, err := cgroup.ID(filepath.Join(cgrouptest.Mount(t), "errnowatch-no-such-cgroup")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ID of a missing cgroup: error = %v, want ErrNotExist", err)
	}
}
