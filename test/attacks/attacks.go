// Package attacks makes, for real, the failing syscalls of the attack
// patterns the default rule pack (rules/default.yaml) looks for, and of
// benign workloads that fail a lot for good reasons (shells searching PATH,
// package managers and compilers probing for files, clients retrying,
// daemons probing optional features). The rule pack tests run each workload
// under the kernel sensor and check that exactly its rule fires, and that
// the benign ones fire nothing.
//
// A workload runs in a child process: the test binary started again with
// ERRNOWATCH_ATTACK naming the workload, so that it can drop root, lower its
// limits or install a seccomp filter without touching the test, and so that
// the test can start it in a cgroup of its own. The test's TestMain calls
// Main first; in a workload child Main runs the workload and exits.
//
// Workloads check that their syscalls fail the way they are meant to and
// exit non-zero when they do not (a kernel that lets nobody mount, a PATH
// that has the "missing" tools), so a pack test never passes on a workload
// that did nothing.
package attacks

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// Environment of a workload child.
const (
	envName    = "ERRNOWATCH_ATTACK"
	envScratch = "ERRNOWATCH_ATTACK_DIR"
)

// Workload is one pattern of failing syscalls.
type Workload struct {
	Name string
	// Rule is the default-pack rule the workload must trigger, and the
	// only one; empty for a benign workload, which must trigger none.
	Rule        string
	Description string
	run         func(scratch string) error
}

// Benign reports whether the workload is a benign one.
func (w Workload) Benign() bool { return w.Rule == "" }

var workloads = []Workload{
	{"permission-probing", "permission-probing",
		"as nobody, open 40 files of mode 000 and a few root-only paths", permissionProbing},
	{"container-escape", "container-escape-attempt",
		"as nobody, unshare, mount, umount2, setns, pivot_root, ptrace, init_module, finit_module, kexec_load, bpf, perf_event_open",
		containerEscape},
	{"privilege-escalation", "privilege-escalation-attempt",
		"as nobody, setuid(0), setgid(0), setresuid, setresgid, setgroups and capset", privilegeEscalation},
	{"binary-discovery", "binary-discovery",
		"execve every PATH directory for 30+ attack tools that are not installed", binaryDiscovery},
	{"network-scan", "network-scan", "connect to 60 closed ports on 127.0.0.1", networkScan},
	{"raw-socket", "raw-socket-attempt", "as nobody, open raw IP and packet sockets", rawSocket},
	{"fd-exhaustion", "fd-exhaustion", "with RLIMIT_NOFILE at 32, open /dev/null 100 times", fdExhaustion},
	{"process-exhaustion", "process-exhaustion",
		"as nobody with RLIMIT_NPROC below its thread count, fork 30 times", processExhaustion},
	{"seccomp-denied", "seccomp-denied",
		"under a seccomp filter returning EPERM, call io_uring_setup, userfaultfd, kcmp, syslog, acct, swapon",
		seccompDenied},
	{"clock-tampering", "clock-tampering",
		"as nobody, clock_settime, settimeofday, adjtimex and clock_adjtime to the current time", clockTampering},
	{"keyring-probing", "keyring-probing",
		"as nobody, lock a key of its own (perm 0) and read, describe, update and chown it", keyringProbing},

	{"benign-shell", "",
		"a /bin/sh script (dash or busybox) running 30 commands and looking up absent tools through PATH, and a bash login shell when bash is installed",
		benignShell},
	{"benign-package-manager", "",
		"dpkg-style stat/open/access storm over installed files, or without dpkg the system's files in several passes (thousands of ENOENT), and real dpkg-query when installed",
		benignPackageManager},
	{"benign-compiler", "",
		"include-path search for up to 350 headers (libc's failing everywhere when not installed), and a real gcc compile when gcc is installed",
		benignCompiler},
	{"benign-daemon", "",
		"service start-up: client retries, non-blocking I/O, a ping fallback, one setgroups and one sandbox unshare as nobody",
		benignDaemon},
}

// All returns every workload, attacks first.
func All() []Workload { return slices.Clone(workloads) }

// Lookup returns the named workload.
func Lookup(name string) (Workload, bool) {
	for _, w := range workloads {
		if w.Name == name {
			return w, true
		}
	}
	return Workload{}, false
}

// Command returns the command that runs w in a child process: this binary
// again, told to run no tests, with the workload named in its environment.
// scratch is a directory the workload may write to; it must exist and be
// traversable by nobody (mode 0755 on every parent) for the workloads that
// drop to nobody.
func (w Workload) Command(scratch string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envName+"="+w.Name, envScratch+"="+scratch)
	return cmd
}

// Run runs w in this process. It may drop root, lower limits or install a
// seccomp filter for good, so the process should exit (or only idle) after
// it: Command runs it in a child, the e2e workload image as a container's
// only job. scratch is as for Command.
func (w Workload) Run(scratch string) error { return w.run(scratch) }

// ErrUnknown is returned by Run for a name no workload has.
var ErrUnknown = errors.New("unknown workload")

// Run runs the named workload in this process, as Workload.Run does.
func Run(name, scratch string) error {
	w, ok := Lookup(name)
	if !ok {
		return fmt.Errorf("%w %q", ErrUnknown, name)
	}
	return w.Run(scratch)
}

// Main runs the workload named in the environment and exits, when this
// process is a workload child; otherwise it returns at once. Call it first
// in TestMain, before anything else the test binary does.
func Main() {
	name := os.Getenv(envName)
	if name == "" {
		return
	}
	if err := Run(name, os.Getenv(envScratch)); err != nil {
		fmt.Fprintf(os.Stderr, "attacks: %s: %v\n", name, err)
		if errors.Is(err, ErrUnknown) {
			os.Exit(2)
		}
		os.Exit(1)
	}
	os.Exit(0)
}

// nobody is the unprivileged user the attacks run as.
const nobody = 65534

// dropToNobody gives up root for good: supplementary groups, gid, then uid;
// a uid change from 0 clears every capability. Go applies these to all
// threads.
func dropToNobody() error {
	if err := syscall.Setgroups(nil); err != nil {
		return fmt.Errorf("drop groups: %w", err)
	}
	if err := syscall.Setgid(nobody); err != nil {
		return fmt.Errorf("setgid nobody: %w", err)
	}
	if err := syscall.Setuid(nobody); err != nil {
		return fmt.Errorf("setuid nobody: %w", err)
	}
	var hdr = unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capget: %w", err)
	}
	if os.Geteuid() != nobody || data[0].Effective != 0 || data[0].Permitted != 0 {
		return fmt.Errorf("still privileged after dropping to nobody (euid %d, caps %#x)", os.Geteuid(), data[0].Effective)
	}
	return nil
}

// expectFail collects the outcome of syscalls that must fail with one of
// the given errnos.
type expectFail struct {
	errs []string
}

func (x *expectFail) check(what string, err error, want ...unix.Errno) {
	var e unix.Errno
	if !errors.As(err, &e) || !slices.Contains(want, e) {
		x.errs = append(x.errs, fmt.Sprintf("%s: got %v, want %v", what, err, want))
	}
}

func (x *expectFail) err() error {
	if len(x.errs) == 0 {
		return nil
	}
	return errors.New(strings.Join(x.errs, "; "))
}

// errnoOf turns a raw syscall's errno into an error (nil for success).
func errnoOf(e unix.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

// Scratch makes a scratch directory for a workload that nobody can
// traverse into (t.TempDir is private to root), removed when the test ends.
func Scratch(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "errnowatch-attack-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}
