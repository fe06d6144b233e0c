package attacks

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// permissionProbing reads files it may not: a sweep of a directory of keys
// and secrets.
func permissionProbing(scratch string) error {
	dir := filepath.Join(scratch, "secrets")
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	for i := range 40 {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("key-%02d.pem", i)), []byte("secret"), 0); err != nil {
			return err
		}
	}
	if err := dropToNobody(); err != nil {
		return err
	}
	var x expectFail
	for i := range 40 {
		_, err := unix.Open(filepath.Join(dir, fmt.Sprintf("key-%02d.pem", i)), unix.O_RDONLY, 0)
		x.check("open key", err, unix.EACCES)
	}
	// Credential stores proper (/etc/shadow, SSH keys) are
	// credential-file-access's, which reads the paths: a sweep over them
	// fires both rules.
	return x.err()
}

// containerEscape tries the mounts and namespace changes container
// escapes use. Each is a decisive denial on its own.
func containerEscape(scratch string) error {
	if err := dropToNobody(); err != nil {
		return err
	}
	var x expectFail
	x.check("unshare(CLONE_NEWNS)", unix.Unshare(unix.CLONE_NEWNS), unix.EPERM)
	x.check("mount tmpfs", unix.Mount("tmpfs", scratch, "tmpfs", 0, ""), unix.EPERM)
	x.check("umount2 /", unix.Unmount("/", unix.MNT_DETACH), unix.EPERM)
	fd, err := unix.Open("/proc/self/ns/mnt", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open own mount namespace: %w", err)
	}
	x.check("setns", unix.Setns(fd, unix.CLONE_NEWNS), unix.EPERM)
	unix.Close(fd)
	x.check("pivot_root", unix.PivotRoot(scratch, scratch), unix.EPERM)
	return x.err()
}

// Kernels built without module or kexec support answer ENOSYS: still an
// attempt, and the rules count it.

// moduleLoad asks the kernel to load a module image (an empty one).
func moduleLoad(string) error {
	if err := dropToNobody(); err != nil {
		return err
	}
	var x expectFail
	_, _, e := unix.Syscall(unix.SYS_INIT_MODULE, 0, 0, uintptr(unsafe.Pointer(&[]byte("\x00")[0])))
	x.check("init_module", errnoOf(e), unix.EPERM, unix.ENOSYS)
	return x.err()
}

// moduleUnload asks the kernel to remove a module, as disabling a security
// module would.
func moduleUnload(string) error {
	if err := dropToNobody(); err != nil {
		return err
	}
	var x expectFail
	x.check("delete_module", unix.DeleteModule("errnowatch_probe", unix.O_NONBLOCK), unix.EPERM, unix.ENOSYS)
	return x.err()
}

// kexec asks to load a kernel image to boot into.
func kexec(string) error {
	if err := dropToNobody(); err != nil {
		return err
	}
	var x expectFail
	_, _, e := unix.Syscall6(unix.SYS_KEXEC_LOAD, 0, 0, 0, 0, 0, 0)
	x.check("kexec_load", errnoOf(e), unix.EPERM, unix.ENOSYS)
	return x.err()
}

// reboot asks to change what Ctrl-Alt-Del does: the reboot(2) call with
// the least effect should a kernel ever allow it to nobody, which it must
// not.
func reboot(string) error {
	if err := dropToNobody(); err != nil {
		return err
	}
	var x expectFail
	x.check("reboot(CAD_OFF)", unix.Reboot(unix.LINUX_REBOOT_CMD_CAD_OFF), unix.EPERM)
	return x.err()
}

// bpfMap creates a hash map: it needs CAP_BPF once unprivileged BPF is
// disabled, as on every distribution kernel since 5.16.
func bpfMap(string) error {
	if err := dropToNobody(); err != nil {
		return err
	}
	var x expectFail
	attr := struct{ typ, keySize, valueSize, maxEntries uint32 }{unix.BPF_MAP_TYPE_HASH, 4, 4, 1}
	_, _, e := unix.Syscall(unix.SYS_BPF, unix.BPF_MAP_CREATE, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
	x.check("bpf map create", errnoOf(e), unix.EPERM)
	return x.err()
}

// perfEvent opens a CPU-wide counter: it needs perf_event_paranoid < 1 or
// CAP_PERFMON.
func perfEvent(string) error {
	if err := dropToNobody(); err != nil {
		return err
	}
	var x expectFail
	attr := unix.PerfEventAttr{Type: unix.PERF_TYPE_SOFTWARE, Config: unix.PERF_COUNT_SW_CPU_CLOCK,
		Size: uint32(unsafe.Sizeof(unix.PerfEventAttr{}))}
	_, err := unix.PerfEventOpen(&attr, -1, 0, -1, 0)
	x.check("perf_event_open cpu-wide", err, unix.EACCES, unix.EPERM)
	return x.err()
}

// ptraceInit seizes PID 1: the host's init on the host, the container's
// first process in a container, never the caller's to trace.
func ptraceInit(string) error {
	if err := dropToNobody(); err != nil {
		return err
	}
	var x expectFail
	_, _, e := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_SEIZE, 1, 0, 0, 0, 0)
	x.check("ptrace(PTRACE_SEIZE, 1)", errnoOf(e), unix.EPERM)
	return x.err()
}

// userfaultfd asks for a userfaultfd that also handles kernel faults,
// which needs CAP_SYS_PTRACE unless vm.unprivileged_userfaultfd is 1.
func userfaultfd(string) error {
	if b, err := os.ReadFile("/proc/sys/vm/unprivileged_userfaultfd"); err == nil && strings.TrimSpace(string(b)) != "0" {
		return fmt.Errorf("vm.unprivileged_userfaultfd is %s: unprivileged userfaultfd is allowed here, set it to 0",
			strings.TrimSpace(string(b)))
	}
	if err := dropToNobody(); err != nil {
		return err
	}
	var x expectFail
	fd, _, e := unix.Syscall(unix.SYS_USERFAULTFD, unix.O_CLOEXEC, 0, 0)
	if e == 0 {
		unix.Close(int(fd))
	}
	x.check("userfaultfd(O_CLOEXEC)", errnoOf(e), unix.EPERM)
	return x.err()
}

// capsetAll asks for every capability once.
func capsetAll(string) error {
	if err := dropToNobody(); err != nil {
		return err
	}
	var x expectFail
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	all := [2]unix.CapUserData{{Effective: ^uint32(0), Permitted: ^uint32(0)}, {Effective: ^uint32(0), Permitted: ^uint32(0)}}
	x.check("capset(all)", unix.Capset(&hdr, &all[0]), unix.EPERM)
	return x.err()
}

// privilegeEscalation asks for root and capabilities it does not have. Raw
// syscalls on one thread: Go's Setuid would repeat a success on every
// thread, and nothing here should succeed.
func privilegeEscalation(string) error {
	if err := dropToNobody(); err != nil {
		return err
	}
	runtime.LockOSThread()
	var x expectFail
	raw := func(name string, nr uintptr, args ...uintptr) {
		a := append(args, 0, 0, 0)
		_, _, e := unix.RawSyscall(nr, a[0], a[1], a[2])
		x.check(name, errnoOf(e), unix.EPERM)
	}
	raw("setuid(0)", unix.SYS_SETUID, 0)
	raw("setgid(0)", unix.SYS_SETGID, 0)
	raw("setresuid(0,0,0)", unix.SYS_SETRESUID, 0, 0, 0)
	raw("setresgid(0,0,0)", unix.SYS_SETRESGID, 0, 0, 0)
	gids := []uint32{0}
	raw("setgroups([0])", unix.SYS_SETGROUPS, 1, uintptr(unsafe.Pointer(&gids[0])))
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	all := [2]unix.CapUserData{{Effective: ^uint32(0), Permitted: ^uint32(0)}, {Effective: ^uint32(0), Permitted: ^uint32(0)}}
	x.check("capset(all)", unix.Capset(&hdr, &all[0]), unix.EPERM)
	return x.err()
}

// debianPath is the PATH of a Debian image, where the shell and execvp
// look for commands.
var debianPath = []string{"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"}

// hunted are the names a script hunting for any usable interpreter or
// compiler tries: every version it knows of. Attack tools proper (nmap,
// socat, ...) are tool-discovery's, from the names searched.
func hunted() []string {
	var names []string
	add := func(format string, from, to int) {
		for v := from; v <= to; v++ {
			names = append(names, fmt.Sprintf(format, v))
		}
	}
	add("python1.%d", 5, 6)
	add("python2.%d", 0, 7)
	add("python3.%d", 0, 14)
	add("pypy3.%d", 6, 11)
	add("php4.%d", 0, 4)
	add("php5.%d", 0, 6)
	add("php7.%d", 0, 4)
	add("php8.%d", 0, 4)
	add("ruby1.%d", 8, 9)
	add("ruby2.%d", 0, 7)
	add("ruby3.%d", 0, 4)
	add("perl5.%d", 8, 40)
	add("lua5.%d", 1, 4)
	add("tclsh8.%d", 4, 6)
	add("gcc-%d", 3, 15)
	add("g++-%d", 4, 15)
	add("clang-%d", 6, 20)
	add("tcc%d", 0, 0)
	add("node%d", 10, 24)
	return names
}

// binaryDiscovery executes each name the way execvp does: every PATH
// directory in turn, each failing with ENOENT.
func binaryDiscovery(string) error {
	missing := missingTools(hunted())
	// An execve that succeeded would replace this process: only names
	// absent from every directory are tried.
	if len(missing) < 140 {
		return fmt.Errorf("only %d of the hunted names are missing on this machine, want 140", len(missing))
	}
	return execAlongPath(missing)
}

// missingTools returns the names found in no PATH directory.
func missingTools(names []string) []string {
	var missing []string
	for _, tool := range names {
		found := false
		for _, dir := range debianPath {
			if _, err := os.Stat(filepath.Join(dir, tool)); err == nil {
				found = true
			}
		}
		if !found {
			missing = append(missing, tool)
		}
	}
	return missing
}

// execAlongPath runs each tool as execvp would, failing in every
// directory.
func execAlongPath(tools []string) error {
	var x expectFail
	argv, env := []string{"probe", "--version"}, []string{"PATH=" + strings.Join(debianPath, ":")}
	for _, tool := range tools {
		for _, dir := range debianPath {
			x.check("execve "+tool, unix.Exec(filepath.Join(dir, tool), argv, env), unix.ENOENT)
		}
	}
	return x.err()
}

// networkScan connects to closed ports with blocking connects, as nc -z and
// simple scanners do.
func networkScan(string) error {
	refused := 0
	for port := 20000; port < 20060; port++ {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("socket: %w", err)
		}
		err = unix.Connect(fd, &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}})
		if errors.Is(err, unix.ECONNREFUSED) {
			refused++
		}
		unix.Close(fd)
	}
	if refused < 40 {
		return fmt.Errorf("only %d of 60 ports refused, want 40", refused)
	}
	return nil
}

// rawSocket opens the sockets sniffers and packet crafters need.
func rawSocket(string) error {
	if err := dropToNobody(); err != nil {
		return err
	}
	var x expectFail
	for _, s := range []struct {
		name               string
		domain, typ, proto int
	}{
		{"raw icmp", unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_ICMP},
		{"raw tcp", unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_TCP},
		{"raw icmpv6", unix.AF_INET6, unix.SOCK_RAW, unix.IPPROTO_ICMPV6},
		{"packet raw", unix.AF_PACKET, unix.SOCK_RAW, int(htons(unix.ETH_P_ALL))},
		{"packet dgram", unix.AF_PACKET, unix.SOCK_DGRAM, int(htons(unix.ETH_P_IP))},
	} {
		fd, err := unix.Socket(s.domain, s.typ, s.proto)
		if err == nil {
			unix.Close(fd)
		}
		x.check(s.name, err, unix.EPERM)
	}
	return x.err()
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// fdExhaustion opens until the descriptor limit and keeps trying.
func fdExhaustion(string) error { return exhaustFDs(100, 50) }

// processExhaustion forks against RLIMIT_NPROC, as a fork bomb hits its
// limit. The limit counts the user's tasks, threads included, so the Go
// runtime could not start a thread either while it is low: the forks are
// raw syscalls on one locked thread, and the limit goes back up at once.
func processExhaustion(string) error { return forkAgainstLimit(30, 25) }

// forkAgainstLimit forks n times as nobody with RLIMIT_NPROC at 1 and
// wants at least want forks refused with EAGAIN.
func forkAgainstLimit(n, want int) error {
	if err := dropToNobody(); err != nil {
		return err
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var old unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NPROC, &old); err != nil {
		return err
	}
	low := unix.Rlimit{Cur: 1, Max: old.Max}
	if err := unix.Setrlimit(unix.RLIMIT_NPROC, &low); err != nil {
		return fmt.Errorf("lower RLIMIT_NPROC: %w", err)
	}
	eagain, forked := 0, 0
	for range n {
		pid, _, e := unix.RawSyscall6(unix.SYS_CLONE, uintptr(unix.SIGCHLD), 0, 0, 0, 0, 0)
		switch {
		case e == unix.EAGAIN:
			eagain++
		case e == 0 && pid == 0:
			// In the child of a fork that was not refused: leave at once.
			unix.RawSyscall(unix.SYS_EXIT_GROUP, 0, 0, 0)
		case e == 0:
			forked++
			var ws unix.WaitStatus
			_, _ = unix.Wait4(int(pid), &ws, 0, nil)
		}
	}
	if err := unix.Setrlimit(unix.RLIMIT_NPROC, &old); err != nil {
		return fmt.Errorf("restore RLIMIT_NPROC: %w", err)
	}
	if eagain < want {
		return fmt.Errorf("only %d of %d forks hit EAGAIN (%d forked)", eagain, n, forked)
	}
	return nil
}

// seccompDenied runs under a filter like a container runtime's default
// profile, which answers syscalls it denies with EPERM, and calls them.
func seccompDenied(scratch string) error {
	denied := []uintptr{unix.SYS_IO_URING_SETUP, unix.SYS_KCMP, unix.SYS_SYSLOG, unix.SYS_ACCT, unix.SYS_SWAPON}
	if err := denyWithEPERM(denied); err != nil {
		return err
	}
	var x expectFail
	buf := make([]byte, 64)
	var params [120]byte // struct io_uring_params
	for _, call := range []struct {
		name string
		nr   uintptr
		args [3]uintptr
	}{
		{"io_uring_setup", unix.SYS_IO_URING_SETUP, [3]uintptr{1, uintptr(unsafe.Pointer(&params[0]))}},
		{"kcmp", unix.SYS_KCMP, [3]uintptr{uintptr(os.Getpid()), 1, 0}},
		{"syslog", unix.SYS_SYSLOG, [3]uintptr{3, uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf))}},
		{"acct", unix.SYS_ACCT, [3]uintptr{}},
		{"swapon", unix.SYS_SWAPON, [3]uintptr{uintptr(unsafe.Pointer(&[]byte(scratch + "\x00")[0]))}},
	} {
		_, _, e := unix.Syscall(call.nr, call.args[0], call.args[1], call.args[2])
		x.check(call.name, errnoOf(e), unix.EPERM)
	}
	return x.err()
}

// denyWithEPERM installs a seccomp filter on every thread that fails the
// given syscalls with EPERM and allows everything else, including other
// architectures' numbers.
func denyWithEPERM(nrs []uintptr) error {
	var arch uint32
	switch runtime.GOARCH {
	case "amd64":
		arch = unix.AUDIT_ARCH_X86_64
	case "arm64":
		arch = unix.AUDIT_ARCH_AARCH64
	default:
		return fmt.Errorf("no seccomp arch for %s", runtime.GOARCH)
	}
	const (
		offNr   = 0 // struct seccomp_data
		offArch = 4
		allow   = unix.SECCOMP_RET_ALLOW
		eperm   = unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)
	)
	n := uint8(len(nrs))
	prog := []bpf.Instruction{
		bpf.LoadAbsolute{Off: offArch, Size: 4},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: arch, SkipFalse: n + 1},
		bpf.LoadAbsolute{Off: offNr, Size: 4},
	}
	for i, nr := range nrs {
		// Match: jump over the remaining tests and the allow to the deny.
		prog = append(prog, bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(nr), SkipTrue: n - uint8(i)})
	}
	prog = append(prog, bpf.RetConstant{Val: allow}, bpf.RetConstant{Val: eperm})
	raw, err := bpf.Assemble(prog)
	if err != nil {
		return fmt.Errorf("assemble seccomp filter: %w", err)
	}
	filter := make([]unix.SockFilter, len(raw))
	for i, ins := range raw {
		filter[i] = unix.SockFilter{Code: ins.Op, Jt: ins.Jt, Jf: ins.Jf, K: ins.K}
	}
	fprog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("set no_new_privs: %w", err)
	}
	_, _, e := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, unix.SECCOMP_FILTER_FLAG_TSYNC,
		uintptr(unsafe.Pointer(&fprog)))
	if e != 0 {
		return fmt.Errorf("install seccomp filter: %w", e)
	}
	return nil
}

// clockTampering sets the clock to what it already is, once: harmless if
// it ever succeeded, and it must not, as nobody.
func clockTampering(string) error {
	if err := dropToNobody(); err != nil {
		return err
	}
	var x expectFail
	tv := unix.NsecToTimeval(time.Now().UnixNano())
	x.check("settimeofday", unix.Settimeofday(&tv), unix.EPERM)
	return x.err()
}

// keyringProbing makes a key nobody may touch, itself included (perm 0),
// and tries anyway: what reading other users' cached credentials looks
// like.
func keyringProbing(string) error {
	if err := dropToNobody(); err != nil {
		return err
	}
	// The process keyring hangs off the credentials of the thread that
	// first uses it: Go's other threads, started before, do not possess
	// it, and a key used from one of them is not ours (EACCES). Stay on
	// the one thread.
	runtime.LockOSThread()
	id, err := unix.AddKey("user", "errnowatch-probe", []byte("secret"), unix.KEY_SPEC_PROCESS_KEYRING)
	if err != nil {
		return fmt.Errorf("add key: %w", err)
	}
	if err := unix.KeyctlSetperm(id, 0); err != nil {
		return fmt.Errorf("lock key: %w", err)
	}
	var x expectFail
	// A read may still succeed: the kernel lets a process read a key it
	// possesses (ours is in its process keyring) even without READ.
	_, _ = unix.KeyctlBuffer(unix.KEYCTL_READ, id, make([]byte, 64), 0)
	_, err = unix.KeyctlString(unix.KEYCTL_DESCRIBE, id)
	x.check("keyctl describe", err, unix.EACCES)
	_, err = unix.KeyctlBuffer(unix.KEYCTL_UPDATE, id, []byte("x"), 0)
	x.check("keyctl update", err, unix.EACCES)
	_, err = unix.KeyctlInt(unix.KEYCTL_CHOWN, id, 0, 0, 0)
	x.check("keyctl chown", err, unix.EACCES)
	_, err = unix.KeyctlInt(unix.KEYCTL_SET_TIMEOUT, id, 1, 0, 0)
	x.check("keyctl set_timeout", err, unix.EACCES)
	x.check("keyctl setperm", unix.KeyctlSetperm(id, 0x3f3f0000), unix.EACCES)
	return x.err()
}

// keyringSweep enumerates key ids, as a search for cached credentials
// does: ids nobody holds answer ENOKEY, ids of other users' keys EACCES.
func keyringSweep(string) error {
	if err := dropToNobody(); err != nil {
		return err
	}
	enokey := 0
	for i := range 200 {
		_, err := unix.KeyctlString(unix.KEYCTL_DESCRIBE, 0x3e000000+i)
		if errors.Is(err, unix.ENOKEY) {
			enokey++
		}
	}
	if enokey < 150 {
		return fmt.Errorf("only %d of 200 key ids were absent (ENOKEY), want 150", enokey)
	}
	return nil
}

// syscallSweep calls syscalls an unprivileged process may not make, or
// that this kernel does not have, one after the other, as a tool mapping
// what its seccomp profile and capabilities allow does. It leaves out the
// syscalls that other rules own (mount, reboot, bpf, ptrace, ...), which a
// real sweep would also try, so that this workload fires the sweep rule
// alone.
func syscallSweep(scratch string) error {
	if err := dropToNobody(); err != nil {
		return err
	}
	runtime.LockOSThread() // setrlimit and the scheduler calls act on this thread
	host := []byte("errnowatch\x00")
	one := uintptr(1)
	mask := make([]uint64, 16)
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return err
	}
	raise := unix.Rlimit{Cur: lim.Max + 1, Max: lim.Max + 1}
	param := struct{ prio int32 }{1}
	attr := struct {
		size, policy uint32
		flags        uint64
		nice         int32
		prio         uint32
		rt, dl, ddl  uint64
	}{size: 48, policy: 1 /* SCHED_FIFO */, prio: 1}
	nodes := uint64(1)
	page, status := uintptr(0), int32(0)
	calls := []struct {
		name string
		args [6]uintptr
	}{
		{"sethostname", [6]uintptr{uintptr(unsafe.Pointer(&host[0])), 10}},
		{"setdomainname", [6]uintptr{uintptr(unsafe.Pointer(&host[0])), 10}},
		{"chroot", [6]uintptr{uintptr(unsafe.Pointer(&append([]byte(scratch), 0)[0]))}},
		{"sched_setscheduler", [6]uintptr{0, 1 /* SCHED_FIFO */, uintptr(unsafe.Pointer(&param))}},
		{"sched_setattr", [6]uintptr{0, uintptr(unsafe.Pointer(&attr)), 0}},
		{"ioprio_set", [6]uintptr{1 /* IOPRIO_WHO_PROCESS */, 0, 1 << 13 /* IOPRIO_CLASS_RT */}},
		{"setrlimit", [6]uintptr{unix.RLIMIT_NOFILE, uintptr(unsafe.Pointer(&raise))}},
		{"kill", [6]uintptr{1, 0}},
		{"tgkill", [6]uintptr{1, 1, 0}},
		{"sched_setaffinity", [6]uintptr{1, uintptr(len(mask) * 8), uintptr(unsafe.Pointer(&mask[0]))}},
		{"prlimit64", [6]uintptr{1, unix.RLIMIT_NOFILE, 0, uintptr(unsafe.Pointer(&lim))}},
		{"migrate_pages", [6]uintptr{1, 64, uintptr(unsafe.Pointer(&nodes)), uintptr(unsafe.Pointer(&nodes))}},
		{"move_pages", [6]uintptr{1, one, uintptr(unsafe.Pointer(&page)), 0, uintptr(unsafe.Pointer(&status)), 0}},
		// Gone from x86-64 kernels long ago, or never implemented: ENOSYS.
		{"create_module", [6]uintptr{}},
		{"get_kernel_syms", [6]uintptr{}},
		{"query_module", [6]uintptr{}},
		{"getpmsg", [6]uintptr{}},
		{"putpmsg", [6]uintptr{}},
		{"afs_syscall", [6]uintptr{}},
		{"tuxcall", [6]uintptr{}},
		{"security", [6]uintptr{}},
		{"vserver", [6]uintptr{}},
		{"epoll_ctl_old", [6]uintptr{}},
		{"epoll_wait_old", [6]uintptr{}},
		{"_sysctl", [6]uintptr{}},
	}
	var denied []string
	var other []string
	for _, c := range calls {
		nr, ok := lookupNr(c.name)
		if !ok {
			continue // not in this architecture's table
		}
		_, _, e := unix.Syscall6(uintptr(nr), c.args[0], c.args[1], c.args[2], c.args[3], c.args[4], c.args[5])
		if e == unix.EPERM || e == unix.ENOSYS {
			denied = append(denied, c.name)
		} else {
			other = append(other, fmt.Sprintf("%s: %v", c.name, errnoOf(e)))
		}
	}
	// In a container this process is PID 1 itself, and the calls aimed
	// at PID 1 (kill, tgkill, sched_setaffinity, prlimit64, migrate_pages,
	// move_pages) succeed: 19 remain.
	if len(denied) < 16 {
		return fmt.Errorf("only %d syscalls failed with EPERM or ENOSYS (%s), want 16; the others: %s",
			len(denied), strings.Join(denied, ", "), strings.Join(other, "; "))
	}
	return nil
}
