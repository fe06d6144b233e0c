// Package attacks makes, for real, the failing syscalls of the attack
// patterns the default rule pack (rules/default.yaml, and
// the rules at the end of rules/default.yaml that read syscall arguments)
// looks for, of near misses that fail the same syscalls for benign
// reasons, and of a benign corpus of ordinary work that fails a lot for
// good reasons (shells, xargs, find -exec and make searching PATH, package
// managers and compilers probing for files, interpreters and a JVM
// starting, clients retrying, ps listing other users' processes, daemons
// probing optional features). The rule pack tests run each workload under
// the kernel sensor and check that an attack fires exactly its rule, and
// that the near misses and the benign ones fire nothing.
//
// Workloads come in sets (Set): Core ones need only the kernel and run in
// the e2e workload image too (All returns them); NearMiss, Corpus (the
// host's programs: make, gcc, python3, node, java, apt-get, ps, curl) and
// Records (rules over syscall arguments) are for the host's tests
// (Extended returns every set).
//
// A workload runs in a child process: the test binary started again with
// ERRNOWATCH_ATTACK naming the workload, so that it can drop root, lower its
// limits or install a seccomp filter without touching the test, and so that
// the test can start it in a cgroup of its own. The test's TestMain calls
// Main first; in a workload child Main runs the workload and exits.
//
// Workloads check that their syscalls fail the way they are meant to and
// exit non-zero when they do not (a kernel that lets nobody mount, a PATH
// that has the "missing" tools, a program of the corpus not installed), so
// a pack test never passes on a workload that did nothing.
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

// Set says where a workload can run and what its rule needs.
type Set int

const (
	// Core workloads need nothing but the kernel (and, for the benign
	// ones, a /bin/sh): they run in the e2e workload image (busybox) as
	// well as on the host, and their rules need only exact counts.
	Core Set = iota
	// NearMiss workloads come close to one rule (Workload.Near) without
	// firing it, or anything else: the same syscalls failing for a
	// benign reason. They need only the kernel.
	NearMiss
	// Corpus workloads are ordinary work run with the host's own programs
	// (make, gcc, python3, node, java, apt-get, ps, curl): the benign
	// corpus the default pack must stay quiet on. They fail when a
	// program they need is missing.
	Corpus
	// Records workloads (attacks and near misses) are for rules that read
	// the failing syscalls' arguments (rules/records): they need the rules
	// package to offer the records variable.
	Records
)

var setNames = [...]string{"core", "near-miss", "corpus", "records"}

func (s Set) String() string {
	if int(s) < len(setNames) {
		return setNames[s]
	}
	return fmt.Sprintf("set(%d)", int(s))
}

// Workload is one pattern of failing syscalls.
type Workload struct {
	Name string
	// Rule is the default-pack rule the workload must trigger, and the
	// only one; empty for a benign workload, which must trigger none.
	Rule string
	// Near is, for a near miss, the rule it comes close to.
	Near        string
	Set         Set
	Description string
	run         func(scratch string) error
}

// Benign reports whether the workload is a benign one.
func (w Workload) Benign() bool { return w.Rule == "" }

// attack, benign and nearMiss make the entries of the workload table.
func attack(set Set, name, rule, desc string, run func(string) error) Workload {
	return Workload{Name: name, Rule: rule, Set: set, Description: desc, run: run}
}

func benign(set Set, name, desc string, run func(string) error) Workload {
	return Workload{Name: name, Set: set, Description: desc, run: run}
}

func nearMiss(set Set, name, near, desc string, run func(string) error) Workload {
	return Workload{Name: name, Near: near, Set: set, Description: desc, run: run}
}

// core are the Core workloads, attacks first.
var core = []Workload{
	attack(Core, "permission-probing", "permission-probing",
		"as nobody, open 40 key files of mode 000", permissionProbing),
	attack(Core, "container-escape", "container-escape-attempt",
		"as nobody, unshare, mount, umount2, setns, pivot_root and open_by_handle_at", containerEscape),
	attack(Core, "module-load", "kernel-module-load", "as nobody, init_module once", moduleLoad),
	attack(Core, "module-unload", "kernel-module-load", "as nobody, delete_module once", moduleUnload),
	attack(Core, "kexec", "kexec-load", "as nobody, kexec_load once", kexec),
	attack(Core, "reboot", "system-reboot", "as nobody, reboot(RESTART) once", reboot),
	attack(Core, "bpf", "ebpf-load-attempt", "as nobody, create one eBPF map", bpfMap),
	attack(Core, "perf-event", "perf-event-attempt", "as nobody, open one CPU-wide perf event", perfEvent),
	attack(Core, "ptrace-init", "ptrace-attach", "as nobody, PTRACE_SEIZE PID 1 once", ptraceInit),
	attack(Core, "userfaultfd", "userfaultfd-attempt", "as nobody, one kernel-fault userfaultfd", userfaultfd),
	attack(Core, "privilege-escalation", "privilege-escalation-attempt",
		"as nobody, setuid(0), setgid(0), setresuid, setresgid, setgroups and capset", privilegeEscalation),
	attack(Core, "capset", "privilege-escalation-attempt", "as nobody, capset(all) once", capsetAll),
	attack(Core, "binary-discovery", "binary-discovery",
		"execve every PATH directory for 140+ interpreter and compiler versions that are not installed",
		binaryDiscovery),
	attack(Core, "network-scan", "network-scan", "connect to 60 closed ports on 127.0.0.1", networkScan),
	attack(Core, "raw-socket", "raw-socket-attempt", "as nobody, open raw IP and packet sockets", rawSocket),
	attack(Core, "fd-exhaustion", "fd-exhaustion", "with RLIMIT_NOFILE at 32, open /dev/null 100 times", fdExhaustion),
	attack(Core, "process-exhaustion", "process-exhaustion",
		"as nobody with RLIMIT_NPROC below its thread count, fork 30 times", processExhaustion),
	attack(Core, "seccomp-denied", "seccomp-denied",
		"under a seccomp filter returning EPERM, call io_uring_setup, kcmp, syslog, acct, swapon",
		seccompDenied),
	attack(Core, "clock-tampering", "clock-tampering", "as nobody, settimeofday to the current time once",
		clockTampering),
	attack(Core, "keyring-probing", "keyring-probing",
		"as nobody, lock a key of its own (perm 0) and read, describe, update and chown it", keyringProbing),
	attack(Core, "keyring-sweep", "keyring-probing", "describe 200 key ids that do not exist (ENOKEY)",
		keyringSweep),
	attack(Core, "syscall-sweep", "syscall-table-sweep",
		"as nobody, call 25 privileged or unimplemented syscalls no other rule owns (EPERM, ENOSYS)", syscallSweep),

	benign(Core, "benign-shell",
		"a /bin/sh script (dash or busybox) running 30 commands and looking up absent tools through PATH, and a bash login shell when bash is installed",
		benignShell),
	benign(Core, "benign-package-manager",
		"dpkg-style stat/open/access storm over installed files, or without dpkg the system's files in several passes (thousands of ENOENT), and real dpkg-query when installed",
		benignPackageManager),
	benign(Core, "benign-compiler",
		"include-path search for up to 350 headers (libc's failing everywhere when not installed), and a real gcc compile when gcc is installed",
		benignCompiler),
	benign(Core, "benign-daemon",
		"service start-up: client retries, non-blocking I/O, a ping fallback, one setgroups and one sandbox unshare as nobody",
		benignDaemon),
}

// workloads is every workload; each file adds its set.
var workloads = slices.Concat(core, nearMisses, corpus, recordWorkloads)

// All returns the core workloads, attacks first: those that run anywhere
// (the e2e workload image included) and whose rules need only counts.
func All() []Workload { return inSets(Core) }

// Extended returns every workload: the core ones, then the near misses,
// the benign corpus and the workloads of rules over records.
func Extended() []Workload { return inSets(Core, NearMiss, Corpus, Records) }

func inSets(sets ...Set) []Workload {
	var out []Workload
	for _, set := range sets {
		for _, w := range workloads {
			if w.Set == set {
				out = append(out, w)
			}
		}
	}
	return out
}

// Lookup returns the named workload, of any set.
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
