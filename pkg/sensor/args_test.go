package sensor

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"

	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/errnowatch/errnowatch/pkg/cgroup/cgrouptest"
	"github.com/errnowatch/errnowatch/pkg/syscalls"
	"golang.org/x/sys/unix"
)

// argOps are the child operations of the argument tests: each makes one
// failing syscall with exactly the arguments the test then looks for, and
// answers its errno.
var argOps = map[string]func(args []string) string{
	"pinstorm": func(a []string) string { // pinstorm <n>: n close(-1) on CPU 0
		n, _ := strconv.Atoi(a[0])
		return onCPU0(func() {
			for i := 0; i < n; i++ {
				unix.Close(-1)
			}
		})
	},
	"pinopen": func(a []string) string { // pinopen <path>...: one openat each, on CPU 0
		var errs []string
		msg := onCPU0(func() {
			for _, p := range a {
				_, err := unix.Open(p, unix.O_RDONLY, 0)
				errs = append(errs, errString(err))
			}
		})
		return strings.TrimSpace(msg + " " + strings.Join(errs, " "))
	},
	"open": func(a []string) string { // open <path>: openat(AT_FDCWD, path, O_RDONLY|O_NOFOLLOW)
		_, err := unix.Open(a[0], unix.O_RDONLY|unix.O_NOFOLLOW, 0)
		return errString(err)
	},
	"openbad": func([]string) string { // openat with a pointer nobody mapped
		dfd := unix.AT_FDCWD
		_, _, e := unix.Syscall6(unix.SYS_OPENAT, uintptr(dfd), 8, 0, 0, 0, 0)
		return errString(e)
	},
	"connect": func(a []string) string { // connect <ip:port | unix path>
		var sa unix.Sockaddr
		family := unix.AF_UNIX
		if ap, err := netip.ParseAddrPort(a[0]); err == nil {
			if ap.Addr().Is4() {
				family, sa = unix.AF_INET, &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
			} else {
				family, sa = unix.AF_INET6, &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
			}
		} else {
			sa = &unix.SockaddrUnix{Name: a[0]}
		}
		fd, err := unix.Socket(family, unix.SOCK_STREAM, 0)
		if err != nil {
			return "socket: " + err.Error()
		}
		defer unix.Close(fd)
		return errString(unix.Connect(fd, sa))
	},
	"mount": func(a []string) string { // mount <source> <target>, without CAP_SYS_ADMIN
		return errString(unix.Mount(a[0], a[1], "tmpfs", unix.MS_NOSUID, ""))
	},
	"ptrace": func([]string) string { // ptrace(PTRACE_ATTACH, 1), without CAP_SYS_PTRACE
		_, _, e := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_ATTACH, 1, 0, 0, 0, 0)
		return errString(e)
	},
	"socket": func([]string) string { // socket(AF_PACKET, SOCK_RAW, 0x300), without CAP_NET_RAW
		_, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0x300)
		return errString(err)
	},
	"setuid": func([]string) string { // setuid(0) as nobody
		_, _, e := unix.RawSyscall(unix.SYS_SETUID, 0, 0, 0)
		return errString(e)
	},
	"kill": func([]string) string { // kill(1, SIGKILL) as nobody
		return errString(unix.Kill(1, unix.SIGKILL))
	},
	"sendto": func(a []string) string { // sendto(udp socket, "x", 0, [::1]:port) with a bad length
		fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_DGRAM, 0)
		if err != nil {
			return "socket: " + err.Error()
		}
		defer unix.Close(fd)
		var sa unix.RawSockaddrInet6
		sa.Family = unix.AF_INET6
		port, _ := strconv.Atoi(a[0])
		sa.Port = uint16(port>>8) | uint16(port&0xff)<<8
		sa.Addr[15] = 1
		// A length of 8 is too short for IPv6: EINVAL, and the kernel
		// copies only the 8 bytes it was given.
		_, _, e := unix.Syscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(&[1]byte{'x'})), 1, 0,
			uintptr(unsafe.Pointer(&sa)), 8)
		return errString(e)
	},
}

// onCPU0 runs f on a thread bound to CPU 0.
func onCPU0(f func()) string {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var set unix.CPUSet
	set.Set(0)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		return "setaffinity: " + err.Error()
	}
	f()
	return ""
}

func errString(err error) string {
	if err == nil {
		return "ok"
	}
	if e, ok := err.(unix.Errno); ok {
		if e == 0 {
			return "ok"
		}
		return unix.ErrnoName(e)
	}
	return err.Error()
}

// openDir is a temporary directory anybody may enter, in a parent anybody
// may enter (t.TempDir's parent is private to root).
func openDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "errnowatch-args-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// recordOf waits for the first record of syscall nr from cgroup cg.
func recordOf(t *testing.T, s *Sensor, cg uint64, nr int) Record {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case r := <-s.Records():
			if r.CgroupID == cg && r.Syscall == int32(nr) {
				return r
			}
		case <-deadline:
			t.Fatalf("no record of syscall %d from cgroup %d", nr, cg)
		}
	}
}

// freeLoopbackPort returns a TCP port nothing listens on: one the kernel
// just handed out and that was closed again.
func freeLoopbackPort(t *testing.T, network, addr string) int {
	t.Helper()
	l, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

// Real failing syscalls, as an unprivileged uid in a kubelet-shaped pod
// cgroup: each record carries exactly the path, address or integer
// arguments the child passed.
func TestRecordsCarryArguments(t *testing.T) {
	cg := cgrouptest.New(t, cgrouptest.KubeletPath("systemd", "containerd", "burstable", cgrouptest.PodUID(), cgrouptest.ContainerID()))
	s := load(t, Config{Filter: Filter{IncludeCgroups: []uint64{cg.ID}}})
	secret := filepath.Join(openDir(t), "secret")
	if err := os.WriteFile(secret, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	port4 := freeLoopbackPort(t, "tcp4", "127.0.0.1:0")
	port6 := freeLoopbackPort(t, "tcp6", "[::1]:0")
	long := "/" + strings.Repeat("d", 300)
	exact := "/" + strings.Repeat("e", PathMax-2) // 255 bytes: fits with its NUL
	c := startChild(t, cg)
	c.do("dropuid")
	arch := syscalls.Native()
	nr := func(name string) int {
		n, ok := syscalls.Lookup(arch, name, false)
		if !ok {
			t.Fatalf("no syscall %s on %s", name, arch)
		}
		return n
	}

	t.Run("openat EACCES", func(t *testing.T) {
		if got := c.do("open %s", secret); got != "EACCES" {
			t.Fatalf("open %s as nobody: %s, want EACCES", secret, got)
		}
		r := recordOf(t, s, cg.ID, nr("openat"))
		if r.Path != secret || r.PathTruncated || r.PathUnreadable || r.UID != 65534 || r.Errno() != uint16(unix.EACCES) {
			t.Errorf("record %+v: want path %q, uid 65534, EACCES", r, secret)
		}
		if got := syscalls.DecodeArg(syscalls.ArgInt, r.Args[0]); got != unix.AT_FDCWD {
			t.Errorf("dfd %d, want AT_FDCWD (%d)", got, unix.AT_FDCWD)
		}
		if r.Args[2] != unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_LARGEFILE {
			t.Errorf("flags %#x, want O_RDONLY|O_NOFOLLOW", r.Args[2])
		}
	})
	t.Run("relative path", func(t *testing.T) {
		if got := c.do("open errnowatch-missing/rel"); got != "ENOENT" {
			t.Fatalf("open relative: %s", got)
		}
		if r := recordOf(t, s, cg.ID, nr("openat")); r.Path != "errnowatch-missing/rel" {
			t.Errorf("path %q, want the relative path as passed", r.Path)
		}
	})
	t.Run("truncated", func(t *testing.T) {
		if got := c.do("open %s", long); got != "ENAMETOOLONG" && got != "ENOENT" {
			t.Fatalf("open long path: %s", got)
		}
		r := recordOf(t, s, cg.ID, nr("openat"))
		if r.Path != long[:PathMax-1] || !r.PathTruncated || r.PathUnreadable {
			t.Errorf("path %q (%d bytes) truncated=%v: want its first %d bytes, truncated", r.Path, len(r.Path), r.PathTruncated, PathMax-1)
		}
	})
	t.Run("exactly full", func(t *testing.T) {
		c.do("open %s", exact)
		r := recordOf(t, s, cg.ID, nr("openat"))
		if r.Path != exact || r.PathTruncated {
			t.Errorf("a %d-byte path came back as %d bytes, truncated=%v", len(exact), len(r.Path), r.PathTruncated)
		}
	})
	t.Run("unreadable", func(t *testing.T) {
		if got := c.do("openbad"); got != "EFAULT" {
			t.Fatalf("openat with a bad pointer: %s, want EFAULT", got)
		}
		r := recordOf(t, s, cg.ID, nr("openat"))
		if r.Path != "" || !r.PathUnreadable || r.Args[1] != 8 {
			t.Errorf("record %+v: want an unreadable path at address 8", r)
		}
	})
	t.Run("connect IPv4 refused", func(t *testing.T) {
		if got := c.do("connect 127.0.0.1:%d", port4); got != "ECONNREFUSED" {
			t.Fatalf("connect: %s", got)
		}
		r := recordOf(t, s, cg.ID, nr("connect"))
		want := SockAddr{Family: unix.AF_INET, IP: netip.MustParseAddr("127.0.0.1"), Port: uint16(port4)}
		if r.Addr != want || r.Addr.String() != "127.0.0.1:"+strconv.Itoa(port4) {
			t.Errorf("address %+v (%s), want %+v", r.Addr, r.Addr, want)
		}
	})
	t.Run("connect IPv6 refused", func(t *testing.T) {
		if got := c.do("connect [::1]:%d", port6); got != "ECONNREFUSED" {
			t.Fatalf("connect: %s", got)
		}
		r := recordOf(t, s, cg.ID, nr("connect"))
		if r.Addr.String() != "[::1]:"+strconv.Itoa(port6) || r.Addr.Family != unix.AF_INET6 {
			t.Errorf("address %+v, want [::1]:%d", r.Addr, port6)
		}
	})
	t.Run("connect unix", func(t *testing.T) {
		sock := filepath.Join(openDir(t), "missing.sock")
		if got := c.do("connect %s", sock); got != "ENOENT" {
			t.Fatalf("connect: %s", got)
		}
		r := recordOf(t, s, cg.ID, nr("connect"))
		if r.Addr.Family != unix.AF_UNIX || r.Addr.Unix != sock || r.Addr.String() != sock {
			t.Errorf("address %+v, want unix %s", r.Addr, sock)
		}
	})
	t.Run("sendto short address", func(t *testing.T) {
		if got := c.do("sendto 53"); got != "EINVAL" {
			t.Fatalf("sendto: %s", got)
		}
		r := recordOf(t, s, cg.ID, nr("sendto"))
		if r.Addr != (SockAddr{Family: unix.AF_INET6}) {
			t.Errorf("an 8-byte IPv6 address decoded as %+v, want only its family", r.Addr)
		}
	})
	t.Run("mount source and target", func(t *testing.T) {
		target := openDir(t)
		if got := c.do("mount errnowatch-src %s", target); got != "EPERM" {
			t.Fatalf("mount: %s", got)
		}
		r := recordOf(t, s, cg.ID, nr("mount"))
		if r.Path != "errnowatch-src" || r.Path2 != target || r.Args[3] != unix.MS_NOSUID {
			t.Errorf("record %+v: want source errnowatch-src, target %s, flags MS_NOSUID", r, target)
		}
	})
	t.Run("integer arguments", func(t *testing.T) {
		for _, tc := range []struct {
			op, syscall string
			want        map[string]int64
		}{
			{"ptrace", "ptrace", map[string]int64{"request": unix.PTRACE_ATTACH, "pid": 1}},
			{"kill", "kill", map[string]int64{"pid": 1, "sig": int64(unix.SIGKILL)}},
			{"setuid", "setuid", map[string]int64{"uid": 0}},
			{"socket", "socket", map[string]int64{"family": unix.AF_PACKET, "type": unix.SOCK_RAW, "protocol": 0x300}},
		} {
			if got := c.do("%s", tc.op); got != "EPERM" {
				t.Fatalf("%s: %s, want EPERM", tc.op, got)
			}
			r := recordOf(t, s, cg.ID, nr(tc.syscall))
			sig := syscalls.Signature(tc.syscall)
			for i, a := range sig {
				if w, ok := tc.want[a.Name]; ok {
					if got := syscalls.DecodeArg(a.Kind, r.Args[i]); got != w {
						t.Errorf("%s %s = %d, want %d", tc.syscall, a.Name, got, w)
					}
					delete(tc.want, a.Name)
				}
			}
			if len(tc.want) != 0 {
				t.Errorf("%s: the signature %+v has no arguments %v", tc.syscall, sig, tc.want)
			}
		}
	})
}

// The compat table is filled from the 32-bit syscall numbers, with the
// same argument positions as the native syscall of the same name. (int
// $0x80 cannot run on every machine, so this checks the table the kernel
// program reads, not a live 32-bit call.)
func TestArgSpecsCoverCompat(t *testing.T) {
	for _, tc := range []struct {
		arch   syscalls.Arch
		compat bool
		name   string
		want   bpfArgSpec
	}{
		{syscalls.AMD64, false, "openat", bpfArgSpec{Path: 2}},
		{syscalls.AMD64, false, "connect", bpfArgSpec{Addr: 2, AddrLen: 3}},
		{syscalls.AMD64, false, "sendto", bpfArgSpec{Addr: 5, AddrLen: 6}},
		{syscalls.AMD64, false, "renameat2", bpfArgSpec{Path: 2, Path2: 4}},
		{syscalls.AMD64, false, "stat", bpfArgSpec{Path: 1}},
		{syscalls.AMD64, false, "accept", bpfArgSpec{}}, // its address is an output
		{syscalls.AMD64, false, "kill", bpfArgSpec{}},
		{syscalls.AMD64, true, "open", bpfArgSpec{Path: 1}},
		{syscalls.AMD64, true, "stat64", bpfArgSpec{Path: 1}},
		{syscalls.AMD64, true, "connect", bpfArgSpec{Addr: 2, AddrLen: 3}},
		{syscalls.AMD64, true, "mount", bpfArgSpec{Path: 1, Path2: 2}},
		{syscalls.AMD64, true, "socketcall", bpfArgSpec{}}, // a multiplexer: nothing to read
		{syscalls.ARM64, false, "openat", bpfArgSpec{Path: 2}},
		{syscalls.ARM64, true, "open", bpfArgSpec{Path: 1}},
		{syscalls.ARM64, true, "symlinkat", bpfArgSpec{Path: 1, Path2: 3}},
	} {
		nr, ok := syscalls.Lookup(tc.arch, tc.name, tc.compat)
		if !ok {
			t.Fatalf("%s compat=%v has no %s", tc.arch, tc.compat, tc.name)
		}
		c := 0
		if tc.compat {
			c = 1
		}
		if got := argSpecs(tc.arch)[c][nr]; got != tc.want {
			t.Errorf("%s compat=%v %s: spec %+v, want %+v", tc.arch, tc.compat, tc.name, got, tc.want)
		}
	}
}

// The guarantee rules rely on: the first N records of a key in a window
// reach user space even while another key of the same pod storms on the
// same CPU, because the limit is per key.
func TestFirstRecordsSurviveAStormOnTheSameCPU(t *testing.T) {
	const limit = 8
	cg := cgrouptest.New(t, cgrouptest.KubeletPath("cgroupfs", "containerd", "besteffort", cgrouptest.PodUID(), cgrouptest.ContainerID()))
	s := load(t, Config{RecordsPerWindow: limit, Filter: Filter{IncludeCgroups: []uint64{cg.ID}}})
	dir := openDir(t)
	var paths []string
	for i := 0; i < 3; i++ {
		p := fmt.Sprintf("%s/secret-%d", dir, i)
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	storm, victim := startChild(t, cg), startChild(t, cg)
	victim.do("dropuid")
	const stormN = 1000000
	if _, err := fmt.Fprintf(storm.In, "pinstorm %d\n", stormN); err != nil {
		t.Fatal(err)
	}
	if got := victim.do("pinopen %s", strings.Join(paths, " ")); got != "EACCES EACCES EACCES" {
		t.Fatalf("victim: %s", got)
	}
	if got := storm.expect("done"); got != "" {
		t.Fatalf("storm: %s", got)
	}
	st := settle(t, s)
	var got []string
	closes := 0
	for len(s.Records()) > 0 {
		r := <-s.Records()
		switch {
		case r.Syscall == unix.SYS_OPENAT && r.PID == uint32(victim.PID):
			got = append(got, r.Path)
		case r.Syscall == unix.SYS_CLOSE:
			closes++
		}
	}
	if strings.Join(got, " ") != strings.Join(paths, " ") {
		t.Errorf("victim's records name %q, want all of %q", got, paths)
	}
	// The storm, one thread and far more than limit failures in every
	// window it touched, sent exactly limit records per window and dropped
	// nothing.
	if closes < limit || closes%limit != 0 || st.TotalRingDrops() != 0 || st.QueueDrops != 0 {
		t.Errorf("storm sent %d records (limit %d per window), ring drops %d, queue drops %d",
			closes, limit, st.TotalRingDrops(), st.QueueDrops)
	}
}
