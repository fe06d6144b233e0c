package cgroup_test

import (
	"errors"
	"io/fs"
	"os/exec"
	"testing"

	"github.com/errnowatch/errnowatch/pkg/cgroup"
	"github.com/errnowatch/errnowatch/pkg/cgroup/cgrouptest"
)

func TestDescribe(t *testing.T) {
	podUID, id := cgrouptest.PodUID(), cgrouptest.ContainerID()
	d := cgrouptest.New(t, cgrouptest.KubeletPath("cgroupfs", "crio", "besteffort", podUID, id))
	want := container(d.Rel, "cgroupfs", "crio", "besteffort", podUID, id)

	for _, tc := range []struct{ arg, mount string }{
		{d.Rel, ""},
		{d.Path, ""},
		{d.Path, d.Mount},
		{"0::" + d.Rel, ""},
		{"4:memory:/elsewhere\n0::" + d.Rel + "\n", ""},
	} {
		info, cgID, err := cgroup.Describe(tc.arg, tc.mount)
		if err != nil || info != want || cgID != d.ID {
			t.Errorf("Describe(%q, %q) = %+v, %d, %v; want %+v, %d", tc.arg, tc.mount, info, cgID, err, want, d.ID)
		}
	}

	sleep := exec.Command("sleep", "60")
	if err := d.Start(sleep); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sleep.Process.Kill(); _ = sleep.Wait() }()
	info, cgID, err := cgroup.DescribePID(sleep.Process.Pid, "")
	if err != nil || info != want || cgID != d.ID {
		t.Errorf("DescribePID(%d) = %+v, %d, %v; want %+v, %d", sleep.Process.Pid, info, cgID, err, want, d.ID)
	}
}

func TestDescribeErrors(t *testing.T) {
	podUID, id := cgrouptest.PodUID(), cgrouptest.ContainerID()
	p := "/" + cgrouptest.KubeletPath("systemd", "containerd", "guaranteed", podUID, id)
	info, _, err := cgroup.Describe(p, "")
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Describe of a cgroup not on this host: error %v, want ErrNotExist", err)
	}
	if info != container(p, "systemd", "containerd", "guaranteed", podUID, id) {
		t.Errorf("Describe of a cgroup not on this host still parses it: got %+v", info)
	}
	if _, _, err := cgroup.Describe("  ", ""); err == nil {
		t.Error("Describe of an empty path succeeded")
	}
	if _, _, err := cgroup.DescribePID(1<<30, ""); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("DescribePID of no process: error %v, want ErrNotExist", err)
	}
}
