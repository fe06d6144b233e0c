// Package hostbaseline is the benign host activity errnowatch must stay
// quiet about, and the host attacks it must still catch, as processes a
// test starts on the host (outside any pod): a node-exporter-style reader of
// /proc for every pid, as root and as an unprivileged user, and the
// permission-probing attack of test/attacks run from the host.
//
// The processes are the calling test binary run again (as test/attacks
// does): call Main first in TestMain.
package hostbaseline

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// envProcReader names the number of scrapes a re-run test binary makes as
// the /proc reader.
const envProcReader = "ERRNOWATCH_HOSTBASELINE_PROC_READER"

// ExporterComm is the name the benign /proc reader runs under: the process
// name of Prometheus' node_exporter, one of the readers the default rules
// leave out of permission-probing (rules/default.yaml).
const ExporterComm = "node_exporter"

// SweepComm is the name the same reader runs under to show that the
// exclusion is by name only: a /proc sweep by any other process is still
// permission-probing.
const SweepComm = "procsweep"

// Nobody is the unprivileged user the non-root readers run as.
const Nobody = 65534

// Main runs the /proc reader and exits when this process is one; otherwise
// it returns at once.
func Main() {
	v := os.Getenv(envProcReader)
	if v == "" {
		return
	}
	n, err := strconv.Atoi(v)
	if err == nil {
		err = readProc(n)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "hostbaseline: proc reader:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// readProc scrapes /proc as process exporters do (node_exporter's
// processes collector, process-exporter, cadvisor): for every pid, stat,
// status, io, every fd link and the exe link, once a second. As root it
// reads everything. As any other user the kernel denies io, the fd
// directory and the exe link of every process it may not ptrace (EACCES
// from openat and readlinkat): on a node, nearly all of them, hundreds of
// denials a scrape.
func readProc(scrapes int) error {
	var pids, denied int
	for i := range scrapes {
		if i > 0 {
			time.Sleep(time.Second)
		}
		ents, err := os.ReadDir("/proc")
		if err != nil {
			return err
		}
		for _, ent := range ents {
			if _, err := strconv.Atoi(ent.Name()); err != nil {
				continue
			}
			pids++
			dir := filepath.Join("/proc", ent.Name())
			for _, f := range []string{"stat", "status", "io"} {
				if _, err := os.ReadFile(filepath.Join(dir, f)); errors.Is(err, fs.ErrPermission) {
					denied++
				}
			}
			fds, err := os.ReadDir(filepath.Join(dir, "fd"))
			if errors.Is(err, fs.ErrPermission) {
				denied++
			}
			for _, fd := range fds {
				if _, err := os.Readlink(filepath.Join(dir, "fd", fd.Name())); errors.Is(err, fs.ErrPermission) {
					denied++
				}
			}
			if _, err := os.Readlink(filepath.Join(dir, "exe")); errors.Is(err, fs.ErrPermission) {
				denied++
			}
		}
	}
	fmt.Printf("{\"scrapes\":%d,\"pids\":%d,\"denied\":%d,\"uid\":%d}\n", scrapes, pids, denied, os.Getuid())
	return nil
}

// ProcReader returns the /proc reader making scrapes scrapes, one a second,
// as a process named comm running as uid (0: root, keeping the caller's
// capabilities). Its binary is this test binary under the name comm in dir
// (from ExecDir): that sets the kernel's comm, and lets a non-root user run
// it, since go test keeps its binaries in a directory only root may enter.
func ProcReader(dir, comm string, uid uint32, scrapes int) (*exec.Cmd, error) {
	link, err := named(dir, comm)
	if err != nil {
		return nil, fmt.Errorf("proc reader: %w", err)
	}
	cmd := exec.Command(link, "-test.run=^$")
	cmd.Env = append(os.Environ(), envProcReader+"="+strconv.Itoa(scrapes))
	cmd.Dir = "/"
	if uid != 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
	}
	return cmd, nil
}

// ExecDir makes a directory under the system's temporary directory that
// every user may traverse, for ProcReader's binaries. The caller removes it.
func ExecDir() (string, error) {
	dir, err := os.MkdirTemp("", "errnowatch-hostbaseline-")
	if err != nil {
		return "", err
	}
	return dir, os.Chmod(dir, 0o755)
}

// named puts this binary in dir under name: a hard link, or a copy when the
// directory is on another file system.
func named(dir, name string) (string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", err
	}
	p := filepath.Join(dir, name)
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	if err := os.Link(self, p); err == nil {
		return p, os.Chmod(p, 0o755)
	}
	data, err := os.ReadFile(self)
	if err != nil {
		return "", err
	}
	return p, os.WriteFile(p, data, 0o755)
}
