package images

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"golang.org/x/sys/unix"

	"github.com/errnowatch/errnowatch/test/attacks"
)

// TestWorkloadsInImage runs every workload of test/attacks in the workload
// image's filesystem, in a container as a pod runs it: runc with the
// namespaces, mounts and capabilities containerd's CRI gives a container
// with no securityContext (root, default capabilities, no seccomp). Each
// must report ok and exit 0.
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

	for _, w := range attacks.All() {
		t.Run(w.Name, func(t *testing.T) {
			id := fmt.Sprintf("errnowatch-images-test-%d-%s", os.Getpid(), w.Name)
			writeSpec(t, bundle, []string{WorkloadPath, "run", w.Name})
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
		})
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
func writeSpec(t *testing.T, bundle string, args []string) {
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
			"namespaces": ns("pid", "ipc", "uts", "mount", "network"),
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
