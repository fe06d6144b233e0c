package attacks

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/errnowatch/errnowatch/pkg/syscalls"
)

// nearMisses fail the syscalls of one rule for a benign reason, or do
// the allowed neighbour of what the rule catches; they must fire nothing.
// Near misses that need host programs (xargs, curl, ping) are in the
// corpus.
var nearMisses = []Workload{
	nearMiss(NearMiss, "near-permission", "permission-probing",
		"as nobody, open 12 files of another user and check 3 directories for write access", nearPermission),
	nearMiss(NearMiss, "near-escape", "container-escape-attempt",
		"as nobody, a sandbox probing unshare once, setns on a bad fd, a mount on a missing directory", nearEscape),
	nearMiss(NearMiss, "near-module", "kernel-module-load",
		"lsmod and modinfo: read /proc/modules and the module index", nearModule),
	nearMiss(NearMiss, "near-kexec", "kexec-load", "read whether a kexec kernel is loaded", nearKexec),
	nearMiss(NearMiss, "near-reboot", "system-reboot",
		"as nobody, sync and read the Ctrl-Alt-Del setting, as a shutdown hook does", nearReboot),
	nearMiss(NearMiss, "near-bpf", "ebpf-load-attempt",
		"as nobody, read the unprivileged-BPF setting and look for a pinned map in bpffs", nearBPF),
	nearMiss(NearMiss, "near-perf", "perf-event-attempt",
		"as nobody, count its own user-space cycles and probe an attribute size the kernel rejects", nearPerf),
	nearMiss(NearMiss, "near-ptrace", "ptrace-attach",
		"as nobody, seize its own child and peek a process it does not trace (ESRCH)", nearPtrace),
	nearMiss(NearMiss, "near-userfaultfd", "userfaultfd-attempt",
		"as nobody, a user-mode-only userfaultfd (allowed) and one with unknown flags (EINVAL)", nearUserfaultfd),
	nearMiss(NearMiss, "near-privilege", "privilege-escalation-attempt",
		"as nobody, a daemon dropping groups it has not got (one EPERM) and setting its own uid", nearPrivilege),
	nearMiss(NearMiss, "near-fd", "fd-exhaustion", "with RLIMIT_NOFILE at 32, open 10 files too many", nearFD),
	nearMiss(NearMiss, "near-process", "process-exhaustion",
		"as nobody with RLIMIT_NPROC below its thread count, fork 3 times", nearProcess),
	nearMiss(NearMiss, "near-seccomp", "seccomp-denied",
		"under a seccomp filter returning EPERM, a runtime probing io_uring_setup once", nearSeccomp),
	nearMiss(NearMiss, "near-clock", "clock-tampering",
		"as nobody, read the clock with adjtimex and set a clock that cannot be set (EINVAL)", nearClock),
	nearMiss(NearMiss, "near-keyring", "keyring-probing",
		"as nobody, look up 5 keys not cached yet (ENOKEY) and read a key of its own", nearKeyring),
	nearMiss(NearMiss, "near-sweep", "syscall-table-sweep",
		"as nobody, a program probing 8 optional or privileged syscalls (EPERM, ENOSYS)", nearSweep),
}

func nearPermission(scratch string) error {
	dir := filepath.Join(scratch, "conf")
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	for i := range 12 {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("app-%02d.yaml", i)), []byte("a: 1\n"), 0o600); err != nil {
			return err
		}
	}
	if err := dropToNobody(); err != nil {
		return err
	}
	var x expectFail
	for i := range 12 {
		_, err := unix.Open(filepath.Join(dir, fmt.Sprintf("app-%02d.yaml", i)), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		x.check("open app config", err, unix.EACCES)
	}
	for _, d := range []string{"/etc", "/usr/lib", "/var/lib"} {
		x.check("access(W_OK) "+d, unix.Access(d, unix.W_OK), unix.EACCES)
	}
	return x.err()
}

func nearEscape(string) error {
	if err := dropToNobody(); err != nil {
		return err
	}
	var x expectFail
	x.check("unshare(CLONE_NEWNS)", unix.Unshare(unix.CLONE_NEWNS), unix.EPERM)
	x.check("setns(-1)", unix.Setns(-1, 0), unix.EBADF)
	// The target is looked up before the capability is checked.
	x.check("mount on a missing directory", unix.Mount("none", "/nonexistent/errnowatch", "tmpfs", 0, ""), unix.ENOENT)
	return x.err()
}

// readAll opens each path read-only and reads it; absent ones are fine.
func readAll(paths ...string) (found int) {
	for _, p := range paths {
		if _, err := os.ReadFile(p); err == nil {
			found++
		}
	}
	return found
}

func nearModule(string) error {
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		return err
	}
	rel := unix.ByteSliceToString(uts.Release[:])
	readAll("/proc/modules", "/lib/modules/"+rel+"/modules.dep.bin", "/lib/modules/"+rel+"/modules.alias.bin",
		"/lib/modules/"+rel+"/modules.builtin.bin", "/sys/module/overlay/initstate")
	return nil
}

func nearKexec(string) error {
	readAll("/sys/kernel/kexec_loaded", "/sys/kernel/kexec_crash_loaded", "/proc/sys/kernel/kexec_load_disabled")
	return nil
}

func nearReboot(string) error {
	if err := dropToNobody(); err != nil {
		return err
	}
	unix.Sync()
	if readAll("/proc/sys/kernel/ctrl-alt-del") != 1 {
		return errors.New("cannot read /proc/sys/kernel/ctrl-alt-del")
	}
	return nil
}

func nearBPF(string) error {
	if err := dropToNobody(); err != nil {
		return err
	}
	readAll("/proc/sys/kernel/unprivileged_bpf_disabled", "/sys/fs/bpf/errnowatch-probe")
	return nil
}

func nearPerf(string) error {
	if err := dropToNobody(); err != nil {
		return err
	}
	var x expectFail
	attr := unix.PerfEventAttr{Type: unix.PERF_TYPE_SOFTWARE, Config: unix.PERF_COUNT_SW_TASK_CLOCK,
		Size: uint32(unsafe.Sizeof(unix.PerfEventAttr{})), Bits: unix.PerfBitExcludeKernel | unix.PerfBitExcludeHv}
	fd, err := unix.PerfEventOpen(&attr, 0, -1, -1, unix.PERF_FLAG_FD_CLOEXEC)
	if err != nil {
		return fmt.Errorf("count own user-space task clock: %w", err)
	}
	unix.Close(fd)
	bad := attr
	bad.Size = 1 // smaller than the first ABI version
	_, err = unix.PerfEventOpen(&bad, 0, -1, -1, unix.PERF_FLAG_FD_CLOEXEC)
	x.check("perf_event_open with size 1", err, unix.E2BIG, unix.EINVAL)
	return x.err()
}

func nearPtrace(string) error {
	if err := dropToNobody(); err != nil {
		return err
	}
	runtime.LockOSThread() // ptrace requests come from the tracing thread
	// Dropping from root made this process undumpable, and a child that
	// inherits that may only be traced with CAP_SYS_PTRACE. A program
	// that traces its children is dumpable.
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("set dumpable: %w", err)
	}
	// A raw fork on this one thread: the child only waits in ppoll until
	// it is killed (a Go child may make raw syscalls only).
	pid, _, e := unix.RawSyscall6(unix.SYS_CLONE, uintptr(unix.SIGCHLD), 0, 0, 0, 0, 0)
	if e != 0 {
		return fmt.Errorf("fork: %w", e)
	}
	if pid == 0 {
		unix.RawSyscall6(unix.SYS_PPOLL, 0, 0, 0, 0, 0, 0)
		unix.RawSyscall(unix.SYS_EXIT_GROUP, 0, 0, 0)
	}
	defer func() {
		_ = unix.Kill(int(pid), unix.SIGKILL)
		var ws unix.WaitStatus
		_, _ = unix.Wait4(int(pid), &ws, 0, nil)
	}()
	var x expectFail
	if _, _, e := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_SEIZE, pid, 0, 0, 0, 0); e != 0 {
		return fmt.Errorf("seize own child: %w", e)
	}
	// Its own process, which it does not trace: ESRCH, not EPERM.
	_, _, e = unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_PEEKDATA, uintptr(os.Getpid()), 0, 0, 0, 0)
	x.check("peek own process, not traced", errnoOf(e), unix.ESRCH)
	if _, _, e := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_DETACH, pid, 0, 0, 0, 0); e != 0 && e != unix.ESRCH {
		return fmt.Errorf("detach own child: %w", e)
	}
	return x.err()
}

func nearUserfaultfd(string) error {
	if err := dropToNobody(); err != nil {
		return err
	}
	var x expectFail
	const userModeOnly = 1 // UFFD_USER_MODE_ONLY, Linux 5.11
	fd, _, e := unix.Syscall(unix.SYS_USERFAULTFD, unix.O_CLOEXEC|userModeOnly, 0, 0)
	if e != 0 {
		return fmt.Errorf("user-mode-only userfaultfd: %w", e)
	}
	unix.Close(int(fd))
	_, _, e = unix.Syscall(unix.SYS_USERFAULTFD, userModeOnly|0x7ff0, 0, 0)
	x.check("userfaultfd with unknown flags", errnoOf(e), unix.EINVAL)
	return x.err()
}

func nearPrivilege(string) error {
	if err := dropToNobody(); err != nil {
		return err
	}
	runtime.LockOSThread()
	var x expectFail
	_, _, e := unix.RawSyscall(unix.SYS_SETGROUPS, 0, 0, 0)
	x.check("setgroups([])", errnoOf(e), unix.EPERM)
	if _, _, e := unix.RawSyscall(unix.SYS_SETUID, nobody, 0, 0); e != 0 {
		return fmt.Errorf("setuid to its own uid: %w", e)
	}
	return x.err()
}

func nearFD(string) error { return exhaustFDs(42, 10) }

// exhaustFDs opens /dev/null n times with the descriptor limit at 32 and
// wants at least want of them refused.
func exhaustFDs(n, want int) error {
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: 32, Max: 32}); err != nil {
		return fmt.Errorf("lower RLIMIT_NOFILE: %w", err)
	}
	var fds []int
	emfile := 0
	for range n {
		fd, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if errors.Is(err, unix.EMFILE) {
			emfile++
			continue
		}
		if err != nil {
			return fmt.Errorf("open /dev/null: %w", err)
		}
		fds = append(fds, fd)
	}
	for _, fd := range fds {
		unix.Close(fd)
	}
	if emfile < want {
		return fmt.Errorf("only %d opens hit EMFILE, want %d", emfile, want)
	}
	return nil
}

func nearProcess(string) error { return forkAgainstLimit(3, 3) }

func nearSeccomp(string) error {
	if err := denyWithEPERM([]uintptr{unix.SYS_IO_URING_SETUP}); err != nil {
		return err
	}
	var x expectFail
	var params [120]byte // struct io_uring_params
	_, _, e := unix.Syscall(unix.SYS_IO_URING_SETUP, 8, uintptr(unsafe.Pointer(&params[0])), 0)
	x.check("io_uring_setup", errnoOf(e), unix.EPERM)
	return x.err()
}

func nearClock(string) error {
	if err := dropToNobody(); err != nil {
		return err
	}
	var x expectFail
	var tx unix.Timex
	if _, err := unix.Adjtimex(&tx); err != nil { // modes 0 reads, allowed
		return fmt.Errorf("read adjtimex: %w", err)
	}
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return err
	}
	// The monotonic clock has no setter: EINVAL before any permission check.
	_, _, e := unix.Syscall(unix.SYS_CLOCK_SETTIME, unix.CLOCK_MONOTONIC, uintptr(unsafe.Pointer(&ts)), 0)
	x.check("clock_settime(CLOCK_MONOTONIC)", errnoOf(e), unix.EINVAL)
	return x.err()
}

func nearKeyring(string) error {
	if err := dropToNobody(); err != nil {
		return err
	}
	// The process keyring hangs off the credentials of the thread that
	// first uses it: Go's other threads, started before, do not possess
	// it, and a key used from one of them is not ours (EACCES). Stay on
	// the one thread.
	runtime.LockOSThread()
	var x expectFail
	id, err := unix.AddKey("user", "errnowatch-own", []byte("token"), unix.KEY_SPEC_PROCESS_KEYRING)
	if err != nil {
		return fmt.Errorf("add own key: %w", err)
	}
	if _, err := unix.KeyctlBuffer(unix.KEYCTL_READ, id, make([]byte, 16), 0); err != nil {
		return fmt.Errorf("read own key: %w", err)
	}
	// Cached tokens a client looks for before fetching them.
	for i := range 5 {
		_, err := unix.KeyctlSearch(unix.KEY_SPEC_PROCESS_KEYRING, "user", fmt.Sprintf("errnowatch:cache:%d", i), 0)
		x.check("search a key not cached", err, unix.ENOKEY)
	}
	return x.err()
}

func nearSweep(string) error {
	if err := dropToNobody(); err != nil {
		return err
	}
	runtime.LockOSThread()
	host := []byte("errnowatch\x00")
	param := struct{ prio int32 }{1}
	denied := 0
	for _, c := range []struct {
		name string
		args [3]uintptr
	}{
		{"sethostname", [3]uintptr{uintptr(unsafe.Pointer(&host[0])), 10}},
		{"sched_setscheduler", [3]uintptr{0, 1, uintptr(unsafe.Pointer(&param))}},
		{"ioprio_set", [3]uintptr{1, 0, 1 << 13}},
		{"kill", [3]uintptr{1, 0}},
		{"create_module", [3]uintptr{}},
		{"vserver", [3]uintptr{}},
		{"tuxcall", [3]uintptr{}},
		{"_sysctl", [3]uintptr{}},
	} {
		nr, ok := lookupNr(c.name)
		if !ok {
			continue
		}
		if _, _, e := unix.Syscall(uintptr(nr), c.args[0], c.args[1], c.args[2]); e == unix.EPERM || e == unix.ENOSYS {
			denied++
		}
	}
	if denied < 4 {
		return fmt.Errorf("only %d probes failed with EPERM or ENOSYS, want 4", denied)
	}
	return nil
}

// lookupNr is this architecture's number of a syscall.
func lookupNr(name string) (int, bool) { return syscalls.Lookup(syscalls.Native(), name, false) }

// shellOK runs a shell script as the current user with a container's
// environment.
func shellOK(scratch, script string, extraEnv ...string) error {
	cmd := exec.Command("/bin/sh", "-c", script)
	cmd.Env = append(shellEnv(scratch), extraEnv...)
	cmd.Dir = scratch
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}
