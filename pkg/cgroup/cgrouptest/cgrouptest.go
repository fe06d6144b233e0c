// Package cgrouptest makes real cgroup v2 cgroups shaped like kubelet's for
// tests, runs processes inside them from their first instruction, and removes
// them when the test ends. Tests that use it need root and a cgroup2 mount,
// which this project's machines have; it fails (not skips) without them.
package cgrouptest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/errnowatch/errnowatch/pkg/cgroup"
	"golang.org/x/sys/unix"
)

// Dir is a cgroup made for a test.
type Dir struct {
	// Mount is the cgroup v2 mount point.
	Mount string
	// Path is the cgroup's directory.
	Path string
	// Rel is the cgroup's path as /proc/<pid>/cgroup shows it.
	Rel string
	// ID is the cgroup's id, as bpf_get_current_cgroup_id returns it.
	ID uint64

	t testing.TB
}

// Mount returns the cgroup v2 mount point, failing the test without one.
func Mount(t testing.TB) string {
	t.Helper()
	m, err := cgroup.FindV2Mount()
	if err != nil {
		t.Fatalf("cgrouptest: %v", err)
	}
	return m
}

// New makes the cgroup rel (e.g. "kubepods/besteffort/pod<uid>/<id>", see
// KubeletPath) below a fresh "errnowatch-test-<random>" cgroup at the top of
// the hierarchy, so that tests never touch each other's or the host's
// cgroups. When the test ends it kills whatever runs in the tree and removes
// it.
func New(t testing.TB, rel string) *Dir {
	t.Helper()
	mount := Mount(t)
	top := filepath.Join(mount, "errnowatch-test-"+randHex(6))
	if err := os.Mkdir(top, 0o755); err != nil {
		t.Fatalf("cgrouptest: make test cgroup: %v", err)
	}
	t.Cleanup(func() {
		if err := remove(top); err != nil {
			t.Errorf("cgrouptest: %v", err)
		}
	})
	root := &Dir{Mount: mount, Path: top, t: t}
	root.fill()
	return root.Mkdir(rel)
}

// Mkdir makes the cgroup rel below d, and any missing parents. The test's
// cleanup of the tree that New made removes it.
func (d *Dir) Mkdir(rel string) *Dir {
	d.t.Helper()
	p := filepath.Join(d.Path, filepath.Clean("/"+rel))
	if err := os.MkdirAll(p, 0o755); err != nil {
		d.t.Fatalf("cgrouptest: make cgroup: %v", err)
	}
	c := &Dir{Mount: d.Mount, Path: p, t: d.t}
	c.fill()
	return c
}

func (d *Dir) fill() {
	d.t.Helper()
	d.Rel = "/" + strings.TrimPrefix(strings.TrimPrefix(d.Path, d.Mount), "/")
	id, err := cgroup.ID(d.Path)
	if err != nil {
		d.t.Fatalf("cgrouptest: %v", err)
	}
	d.ID = id
}

var (
	intoCgroupOnce sync.Once
	intoCgroupErr  error
)

// Start starts cmd inside d. It uses clone3's CLONE_INTO_CGROUP (through
// SysProcAttr.UseCgroupFD), so the child is in d from its first instruction
// and every syscall it makes is attributed to d; on kernels without it (before
// 5.7) the child is moved in through cgroup.procs right after it starts, so
// its first syscalls count elsewhere. The caller waits for cmd; the cleanup
// kills it if it still runs.
func (d *Dir) Start(cmd *exec.Cmd) error {
	d.t.Helper()
	intoCgroupOnce.Do(func() { intoCgroupErr = probeIntoCgroup(d.Path) })
	if intoCgroupErr != nil {
		if err := cmd.Start(); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(d.Path, "cgroup.procs"), []byte(strconv.Itoa(cmd.Process.Pid)), 0); err != nil {
			_ = cmd.Process.Kill()
			return fmt.Errorf("move %d into %s: %w", cmd.Process.Pid, d.Rel, err)
		}
		return nil
	}
	f, err := os.Open(d.Path)
	if err != nil {
		return fmt.Errorf("open cgroup: %w", err)
	}
	// The child has its own reference once it runs.
	defer f.Close()
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.UseCgroupFD = true
	cmd.SysProcAttr.CgroupFD = int(f.Fd())
	return cmd.Start()
}

// Run starts cmd inside d like Start and waits for it.
func (d *Dir) Run(cmd *exec.Cmd) error {
	d.t.Helper()
	if err := d.Start(cmd); err != nil {
		return err
	}
	return cmd.Wait()
}

// probeIntoCgroup tells whether clone3 can start a child in a cgroup: it
// returns an error only when the kernel lacks the feature, not when the probe
// fails for another reason (which Start will then report itself).
func probeIntoCgroup(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return nil
	}
	defer f.Close()
	// Any program that exits at once will do; the test binary itself,
	// asked to run no tests, is there when true(1) is not.
	cmd := exec.Command("true")
	if _, err := exec.LookPath("true"); err != nil {
		self, err := os.Executable()
		if err != nil {
			return nil
		}
		cmd = exec.Command(self, "-test.run=^$")
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(f.Fd())}
	err = cmd.Run()
	if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.E2BIG) {
		return err
	}
	return nil
}

// Procs returns the pids in d itself (not its children).
func (d *Dir) Procs() []int {
	d.t.Helper()
	b, err := os.ReadFile(filepath.Join(d.Path, "cgroup.procs"))
	if err != nil {
		d.t.Fatalf("cgrouptest: %v", err)
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			d.t.Fatalf("cgrouptest: cgroup.procs of %s: %v", d.Rel, err)
		}
		pids = append(pids, pid)
	}
	return pids
}

// Remove kills what runs in d and below, and removes d and its children, as
// the cleanup would. It is for tests of what happens when a cgroup goes away.
func (d *Dir) Remove() {
	d.t.Helper()
	if err := remove(d.Path); err != nil {
		d.t.Fatalf("cgrouptest: %v", err)
	}
}

// remove empties and removes the cgroup tree at top, children first.
func remove(top string) error {
	if _, err := os.Stat(top); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	// cgroup.kill (5.14+) kills the whole subtree at once; older kernels
	// get a kill per listed process.
	if err := os.WriteFile(filepath.Join(top, "cgroup.kill"), []byte("1"), 0); err != nil {
		killAll(top)
	}
	var dirs []string
	_ = filepath.WalkDir(top, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
	// Killed tasks leave their cgroup asynchronously, so rmdir can say
	// EBUSY for a moment.
	deadline := time.Now().Add(10 * time.Second)
	for _, dir := range dirs {
		for {
			err := unix.Rmdir(dir)
			if err == nil || errors.Is(err, unix.ENOENT) {
				break
			}
			if !errors.Is(err, unix.EBUSY) || time.Now().After(deadline) {
				return fmt.Errorf("remove test cgroup %s: %w", dir, err)
			}
			killAll(dir)
			time.Sleep(10 * time.Millisecond)
		}
	}
	return nil
}

func killAll(top string) {
	_ = filepath.WalkDir(top, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.Name() != "cgroup.procs" {
			return nil
		}
		b, _ := os.ReadFile(p)
		for _, f := range bytes.Fields(b) {
			if pid, err := strconv.Atoi(string(f)); err == nil {
				_ = unix.Kill(pid, unix.SIGKILL)
			}
		}
		return nil
	})
}

// PodUID returns a random pod UID in the API's form.
func PodUID() string {
	h := randHex(16)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// ContainerID returns a random 64-hex container id.
func ContainerID() string { return randHex(32) }

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// KubeletPath returns the cgroup path (without a leading slash) that kubelet
// and the runtime give a container: driver "systemd" or "cgroupfs", runtime
// "containerd", "crio" or "docker", qos "guaranteed", "burstable" or
// "besteffort". An empty containerID gives the pod's cgroup.
func KubeletPath(driver, runtime, qos, podUID, containerID string) string {
	if driver == cgroup.DriverSystemd {
		slice := "kubepods"
		p := "kubepods.slice"
		if qos != cgroup.QoSGuaranteed {
			slice += "-" + qos
			p += "/" + slice + ".slice"
		}
		p += "/" + slice + "-pod" + strings.ReplaceAll(podUID, "-", "_") + ".slice"
		if containerID == "" {
			return p
		}
		prefix := map[string]string{
			cgroup.RuntimeContainerd: "cri-containerd",
			cgroup.RuntimeCRIO:       "crio",
			cgroup.RuntimeDocker:     "docker",
		}[runtime]
		return p + "/" + prefix + "-" + containerID + ".scope"
	}
	p := "kubepods"
	if qos != cgroup.QoSGuaranteed {
		p += "/" + qos
	}
	p += "/pod" + podUID
	if containerID == "" {
		return p
	}
	if runtime == cgroup.RuntimeCRIO {
		return p + "/crio-" + containerID
	}
	return p + "/" + containerID
}
