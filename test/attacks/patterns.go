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

// permissionProbing reads files it may not: a sweep for keys and secrets.
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
	for _, p := range []string{"/etc/shadow", "/root/.ssh/id_rsa", "/etc/gshadow"} {
		// These may not exist on a test machine; denied or absent both
		// look like probing, only denials count for the rule.
		_, _ = unix.Open(p, unix.O_RDONLY, 0)
	}
	return x.err()
}

// containerEscape tries the privileged operations container escapes use.
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
	x.check("ptrace attach 1", unix.PtraceAttach(1), unix.EPERM)
	// Kernels built without module or kexec support answer ENOSYS: still
	// an attempt, and the rule counts it.
	_, _, e := unix.Syscall(unix.SYS_INIT_MODULE, 0, 0, uintptr(unsafe.Pointer(&[]byte("\x00")[0])))
	x.check("init_module", errnoOf(e), unix.EPERM, unix.ENOSYS)
	x.check("finit_module", unix.FinitModule(0, "", 0), unix.EPERM, unix.ENOSYS)
	_, _, e = unix.Syscall6(unix.SYS_KEXEC_LOAD, 0, 0, 0, 0, 0, 0)
	x.check("kexec_load", errnoOf(e), unix.EPERM, unix.ENOSYS)
	// A hash map: needs CAP_BPF once unprivileged BPF is disabled, as on
	// every distribution kernel since 5.16.
	attr := struct{ typ, keySize, valueSize, maxEntries uint32 }{unix.BPF_MAP_TYPE_HASH, 4, 4, 1}
	_, _, e = unix.Syscall(unix.SYS_BPF, unix.BPF_MAP_CREATE, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
	x.check("bpf map create", errnoOf(e), unix.EPERM)
	// CPU-wide counting needs perf_event_paranoid < 1 or CAP_PERFMON.
	pattr := unix.PerfEventAttr{Type: unix.PERF_TYPE_SOFTWARE, Config: unix.PERF_COUNT_SW_CPU_CLOCK,
		Size: uint32(unsafe.Sizeof(unix.PerfEventAttr{}))}
	_, err = unix.PerfEventOpen(&pattr, -1, 0, -1, 0)
	x.check("perf_event_open cpu-wide", err, unix.EACCES, unix.EPERM)
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

// attackTools are what a post-exploitation script looks for.
var attackTools = []string{
	"nmap", "ncat", "socat", "masscan", "zmap", "hydra", "john", "hashcat", "msfconsole", "msfvenom",
	"sqlmap", "nikto", "gobuster", "ffuf", "chisel", "ligolo-ng", "frpc", "ngrok", "proxychains4",
	"tcpdump", "tshark", "nping", "hping3", "arp-scan", "netdiscover", "kubectl", "crictl", "ctr",
	"linpeas.sh", "pspy64", "deepce.sh", "cdk", "amicontained", "botb", "kube-hunter", "peirates",
	"mimipenguin", "lazagne", "nc.traditional", "pwncat-cs",
}

// binaryDiscovery executes each tool the way execvp does: every PATH
// directory in turn, each failing with ENOENT.
func binaryDiscovery(string) error {
	var missing []string
	for _, tool := range attackTools {
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
	// An execve that succeeded would replace this process: only tools
	// absent from every directory are tried.
	if len(missing) < 30 {
		return fmt.Errorf("only %d of the probed tools are missing on this machine, want 30", len(missing))
	}
	var x expectFail
	argv, env := []string{"probe", "--version"}, []string{"PATH=" + strings.Join(debianPath, ":")}
	for _, tool := range missing {
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
func fdExhaustion(string) error {
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: 32, Max: 32}); err != nil {
		return fmt.Errorf("lower RLIMIT_NOFILE: %w", err)
	}
	var fds []int
	emfile := 0
	for range 100 {
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
	if emfile < 50 {
		return fmt.Errorf("only %d opens hit EMFILE, want 50", emfile)
	}
	return nil
}

// processExhaustion forks against RLIMIT_NPROC, as a fork bomb hits its
// limit. The limit counts the user's tasks, threads included, so the Go
// runtime could not start a thread either while it is low: the forks are
// raw syscalls on one locked thread, and the limit goes back up at once.
func processExhaustion(string) error {
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
	for range 30 {
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
	if eagain < 25 {
		return fmt.Errorf("only %d of 30 forks hit EAGAIN (%d forked)", eagain, forked)
	}
	return nil
}

// seccompDenied runs under a filter like a container runtime's default
// profile, which answers syscalls it denies with EPERM, and calls them.
func seccompDenied(scratch string) error {
	denied := []uintptr{unix.SYS_IO_URING_SETUP, unix.SYS_USERFAULTFD, unix.SYS_KCMP, unix.SYS_SYSLOG,
		unix.SYS_ACCT, unix.SYS_SWAPON}
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
		{"userfaultfd", unix.SYS_USERFAULTFD, [3]uintptr{unix.O_CLOEXEC}},
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

// clockTampering sets the clock to what it already is: harmless if it ever
// succeeded, and it must not, as nobody.
func clockTampering(string) error {
	if err := dropToNobody(); err != nil {
		return err
	}
	var x expectFail
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_REALTIME, &ts); err != nil {
		return err
	}
	_, _, e := unix.Syscall(unix.SYS_CLOCK_SETTIME, unix.CLOCK_REALTIME, uintptr(unsafe.Pointer(&ts)), 0)
	x.check("clock_settime", errnoOf(e), unix.EPERM)
	tv := unix.NsecToTimeval(time.Now().UnixNano())
	x.check("settimeofday", unix.Settimeofday(&tv), unix.EPERM)
	var tx unix.Timex
	if _, err := unix.Adjtimex(&tx); err != nil { // modes 0 reads, allowed
		return fmt.Errorf("read adjtimex: %w", err)
	}
	tx.Modes = unix.ADJ_FREQUENCY
	_, err := unix.Adjtimex(&tx)
	x.check("adjtimex(ADJ_FREQUENCY)", err, unix.EPERM)
	_, _, e = unix.Syscall(unix.SYS_CLOCK_ADJTIME, unix.CLOCK_REALTIME, uintptr(unsafe.Pointer(&tx)), 0)
	x.check("clock_adjtime", errnoOf(e), unix.EPERM)
	return x.err()
}

// keyringProbing makes a key nobody may touch, itself included (perm 0),
// and tries anyway: what reading other users' cached credentials looks
// like.
func keyringProbing(string) error {
	if err := dropToNobody(); err != nil {
		return err
	}
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
