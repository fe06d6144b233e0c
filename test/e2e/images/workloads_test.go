package images

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"go.uber.org/zap/zaptest"
	"golang.org/x/sys/unix"

	"github.com/errnowatch/errnowatch/pkg/cgroup/cgrouptest"
	"github.com/errnowatch/errnowatch/pkg/enrich"
	"github.com/errnowatch/errnowatch/pkg/rules"
	"github.com/errnowatch/errnowatch/pkg/sensor"
	"github.com/errnowatch/errnowatch/test/attacks"
)

// TestWorkloadsInImage runs every workload of test/attacks in the workload
// image's filesystem, in a container as a pod runs it: runc with the
// namespaces, mounts and capabilities containerd's CRI gives a container
// with no securityContext (root, default capabilities, no seccomp). Each
// must report ok and exit 0, and, seen by the kernel sensor in its
// container's cgroup, fire its default-pack rule and no other (a benign
// one none), as pkg/rules checks for the workloads run on the host.
func TestWorkloadsInImage(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("running containers needs root")
	}
	runc, err := exec.LookPath("runc")
	if err != nil {
		t.Skip("runc is not installed (apt-get install runc; containerd brings it)")
	}
	img := load(t, buildAll(t), Workload)
	dir := t.TempDir()
	// runc's state would otherwise go under /run/runc, shared with the
	// node's containerd.
	state, bundle := filepath.Join(dir, "state"), filepath.Join(dir, "bundle")
	rootfs := filepath.Join(bundle, "rootfs")
	if err := os.MkdirAll(rootfs, 0o755); err != nil {
		t.Fatal(err)
	}
	extract(t, mutate.Extract(img), rootfs)

	rs, err := rules.Load(filepath.Join(repoRoot(t), "rules", "default.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	log := zaptest.NewLogger(t)
	s, err := sensor.Load(sensor.Config{Logger: log})
	if err != nil {
		t.Fatalf("load sensor: %v", err)
	}
	defer s.Close()

	for _, w := range attacks.All() {
		t.Run(w.Name, func(t *testing.T) {
			id := fmt.Sprintf("errnowatch-images-test-%d-%s", os.Getpid(), w.Name)
			// runc joins the cgroup v2 directory that already exists
			// (and makes the v1 ones beside it): its id is known before
			// the container starts.
			cg := cgrouptest.New(t, "container")
			t.Cleanup(func() { removeV1(t, cg.Rel) })
			if err := s.SetFilter(sensor.Filter{IncludeCgroups: []uint64{cg.ID}}); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Drain(); err != nil {
				t.Fatal(err)
			}
			writeSpec(t, bundle, cg.Rel, []string{WorkloadPath, "run", w.Name})
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, runc, "--root", state, "run", "--bundle", bundle, id)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			// A container left by a failed run would keep its cgroup.
			_ = exec.Command(runc, "--root", state, "delete", "--force", id).Run()
			if err != nil {
				t.Fatalf("%s (%s) in the workload image: %v\nstdout: %s\nstderr: %s",
					w.Name, w.Description, err, stdout.String(), stderr.String())
			}
			var res struct {
				Workload string `json:"workload"`
				OK       bool   `json:"ok"`
			}
			if err := json.Unmarshal(bytes.TrimSpace(stdout.Bytes()), &res); err != nil || res.Workload != w.Name || !res.OK {
				t.Errorf("%s printed %q (%v), want one ok line", w.Name, stdout.String(), err)
			}

			eng := rules.NewEngine(rs, rules.Config{Interval: time.Second, Node: "test-node", Logger: log})
			meta := &enrich.Meta{Node: "test-node", Namespace: "e2e", Pod: w.Name, Container: "workload",
				CgroupPath: cg.Rel}
			b, total := drainBatch(t, s, cg.ID, meta)
			t.Logf("%s: %d failures counted", w.Name, total)
			fired := map[string]bool{}
			for _, a := range append(eng.Process(b), eng.Flush()...) {
				fired[a.RuleID] = true
				t.Logf("%s: %s", a.RuleID, a.Message)
			}
			var want []string
			if !w.Benign() {
				want = []string{w.Rule}
			}
			if ids := slices.Sorted(maps.Keys(fired)); !slices.Equal(ids, want) {
				t.Errorf("%s in the workload image: %d failures fired %v, want %v", w.Name, total, ids, want)
			}
		})
	}
}

// drainBatch drains the sensor into a batch of the cgroup's counts and
// records, and the number of failures counted.
func drainBatch(t *testing.T, s *sensor.Sensor, cgroupID uint64, meta *enrich.Meta) (*enrich.Batch, uint64) {
	t.Helper()
	iv, err := s.Drain()
	if err != nil {
		t.Fatalf("drain: %v", err)
	}
	b := &enrich.Batch{Interval: iv}
	var total uint64
	for _, c := range iv.Counts {
		if c.CgroupID == cgroupID {
			b.Counts = append(b.Counts, enrich.Count{Count: c, Meta: meta})
			total += c.Count
		}
	}
	for {
		select {
		case r := <-s.Records():
			if r.CgroupID == cgroupID {
				b.Records = append(b.Records, enrich.Record{Record: r, Meta: meta})
			}
		default:
			return b, total
		}
	}
}

// removeV1 removes the cgroup v1 directories runc made for rel and its
// parents, up to the top, on a machine that has v1 hierarchies too.
func removeV1(t *testing.T, rel string) {
	t.Helper()
	v2 := cgrouptest.Mount(t)
	mounts, _ := filepath.Glob("/sys/fs/cgroup/*")
	for _, m := range mounts {
		if m == v2 {
			continue
		}
		for p := filepath.Join(m, rel); p != m && strings.HasPrefix(p, m+"/"); p = filepath.Dir(p) {
			if err := unix.Rmdir(p); err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.ENOTDIR) {
				t.Logf("remove cgroup %s: %v", p, err)
				break
			}
		}
	}
}

// extract writes a flattened image filesystem to dir, with its modes and
// owners.
func extract(t *testing.T, rc io.ReadCloser, dir string) {
	t.Helper()
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatalf("read image filesystem: %v", err)
		}
		p := filepath.Join(dir, filepath.Clean("/"+h.Name))
		switch h.Typeflag {
		case tar.TypeDir:
			err = os.MkdirAll(p, 0o755)
		case tar.TypeReg:
			var f *os.File
			if f, err = os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600); err == nil {
				_, err = io.Copy(f, tr)
				err = errors.Join(err, f.Close())
			}
		case tar.TypeSymlink:
			err = os.Symlink(h.Linkname, p)
		default:
			t.Fatalf("%s: unexpected entry type %c", h.Name, h.Typeflag)
		}
		if err == nil {
			err = os.Lchown(p, h.Uid, h.Gid)
		}
		if err == nil && h.Typeflag != tar.TypeSymlink {
			// unix.Chmod: os.Chmod would drop the sticky bit of /tmp.
			err = unix.Chmod(p, uint32(h.Mode&0o7777))
		}
		if err != nil {
			t.Fatalf("extract %s: %v", h.Name, err)
		}
	}
}

// containerdCaps are the capabilities containerd gives a container that
// asks for none.
var containerdCaps = []string{"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
	"CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
	"CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"}

// writeSpec writes the OCI runtime config of a pod container running args:
// containerd's defaults, and the kubelet's /etc/hostname, /etc/hosts and
// /etc/resolv.conf bind mounts.
func writeSpec(t *testing.T, bundle, cgroupsPath string, args []string) {
	t.Helper()
	type mount struct {
		Destination string   `json:"destination"`
		Type        string   `json:"type"`
		Source      string   `json:"source"`
		Options     []string `json:"options,omitempty"`
	}
	mounts := []mount{
		{"/proc", "proc", "proc", []string{"nosuid", "noexec", "nodev"}},
		{"/dev", "tmpfs", "tmpfs", []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{"/dev/pts", "devpts", "devpts", []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
		{"/dev/shm", "tmpfs", "shm", []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
		{"/dev/mqueue", "mqueue", "mqueue", []string{"nosuid", "noexec", "nodev"}},
		{"/sys", "sysfs", "sysfs", []string{"nosuid", "noexec", "nodev", "ro"}},
	}
	for _, f := range []string{"/etc/hostname", "/etc/hosts", "/etc/resolv.conf"} {
		if _, err := os.Stat(f); err == nil {
			mounts = append(mounts, mount{f, "bind", f, []string{"rbind", "ro"}})
		}
	}
	ns := func(types ...string) []map[string]string {
		var out []map[string]string
		for _, typ := range types {
			out = append(out, map[string]string{"type": typ})
		}
		return out
	}
	spec := map[string]any{
		"ociVersion": "1.0.2",
		"process": map[string]any{
			"terminal": false,
			"user":     map[string]int{"uid": 0, "gid": 0},
			"args":     args,
			"env":      []string{defaultPath, "HOSTNAME=workload"},
			"cwd":      "/",
			"capabilities": map[string][]string{
				"bounding": containerdCaps, "effective": containerdCaps, "permitted": containerdCaps,
			},
			"rlimits": []map[string]any{{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}},
		},
		"root":     map[string]any{"path": "rootfs"},
		"hostname": "workload",
		"mounts":   mounts,
		"linux": map[string]any{
			"cgroupsPath": cgroupsPath,
			"namespaces":  ns("pid", "ipc", "uts", "mount", "network"),
			"maskedPaths": []string{"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
				"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"},
			"readonlyPaths": []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"},
		},
	}
	data, err := json.MarshalIndent(spec, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
}
