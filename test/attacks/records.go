package attacks

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// recordWorkloads are the attacks and near misses of the rules that read
// the failing syscalls' arguments (the last rules of rules/default.yaml): paths,
// socket addresses, requested ids, searched names. Their whole signature
// is one to five failures that counts alone cannot tell from benign ones.
var recordWorkloads = []Workload{
	attack(Records, "credential-files", "credential-file-access",
		"as nobody, open /etc/shadow, /etc/gshadow and root's SSH key once each", credentialFiles),
	nearMiss(Records, "near-credential-files", "credential-file-access",
		"as nobody, stat /etc/shadow, read /etc/passwd and open 3 of another user's config files", nearCredentialFiles),
	attack(Records, "proc-memory", "process-memory-access",
		"as nobody, open PID 1's /proc mem, environ and maps", procMemory),
	nearMiss(Records, "near-proc-memory", "process-memory-access",
		"as nobody, read PID 1's stat and status, readlink its exe (EACCES), read its own maps", nearProcMemory),
	attack(Records, "ld-preload-write", "persistence-file-write",
		"as nobody, open /etc/ld.so.preload for appending once", ldPreloadWrite),
	attack(Records, "cron-write", "persistence-file-write", "as nobody, create a file in /etc/cron.d once", cronWrite),
	attack(Records, "systemd-unit-write", "persistence-file-write",
		"as nobody, create a unit in /etc/systemd/system once", systemdUnitWrite),
	nearMiss(Records, "near-persistence", "persistence-file-write",
		"as nobody, what the loader does on exec (access and open /etc/ld.so.preload), read /etc/crontab, and write /etc/hostname (EACCES)",
		nearPersistence),
	attack(Records, "sysctl-write", "kernel-tunable-write",
		"as nobody, open /proc/sys/kernel/core_pattern for writing once", sysctlWrite),
	attack(Records, "release-agent", "kernel-tunable-write",
		"as nobody, open a cgroup v1 release_agent for writing once", releaseAgent),
	nearMiss(Records, "near-sysctl", "kernel-tunable-write",
		"as nobody, read core_pattern and open the write-only vm/compact_memory for reading (EACCES)", nearSysctl),
	attack(Records, "runtime-socket", "runtime-socket-access",
		"as nobody, connect to containerd's, Docker's and CRI-O's sockets", runtimeSocket),
	nearMiss(Records, "near-runtime-socket", "runtime-socket-access",
		"as nobody, connect to an application's unix socket that is not up yet, 3 times", nearRuntimeSocket),
	attack(Records, "packet-socket", "packet-socket-attempt", "as nobody, one AF_PACKET socket", packetSocket),
	nearMiss(Records, "near-packet-socket", "packet-socket-attempt",
		"as nobody, ping's raw ICMP socket and ICMP datagram socket, both denied", corpusPing),
	attack(Records, "setuid-root", "setuid-root-attempt", "as nobody, setuid(0) once", setuidRoot),
	nearMiss(Records, "near-setuid-root", "setuid-root-attempt",
		"as nobody, a daemon dropping to uid 1000 it may not become, once", nearSetuidRoot),
	attack(Records, "tool-discovery", "tool-discovery",
		"execve every PATH directory for 30+ attack tools that are not installed", toolDiscovery),
	nearMiss(Records, "near-tool-discovery", "tool-discovery",
		"an entrypoint looking for its helpers (tini, gosu, su-exec, dumb-init) and one tool (nc) 3 times",
		nearToolDiscovery),
}

// openDenied opens path for what flags ask, as nobody, and wants it
// refused with EACCES (or one of also).
func (x *expectFail) openDenied(path string, flags int, also ...unix.Errno) {
	fd, err := unix.Open(path, flags|unix.O_CLOEXEC, 0o644)
	if err == nil {
		unix.Close(fd)
	}
	x.check("open "+path, err, append(also, unix.EACCES)...)
}

func credentialFiles(string) error {
	if err := dropToNobody(); err != nil {
		return err
	}
	var x expectFail
	x.openDenied("/etc/shadow", unix.O_RDONLY)
	// gshadow and root's home are not on every image: absent is fine,
	// readable is not.
	x.openDenied("/etc/gshadow", unix.O_RDONLY, unix.ENOENT)
	x.openDenied("/root/.ssh/id_rsa", unix.O_RDONLY, unix.ENOENT)
	return x.err()
}

func nearCredentialFiles(scratch string) error {
	dir := filepath.Join(scratch, "conf")
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	for i := range 3 {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("db-%d.conf", i)), []byte("x"), 0o600); err != nil {
			return err
		}
	}
	if err := dropToNobody(); err != nil {
		return err
	}
	var x expectFail
	var st unix.Stat_t
	if err := unix.Stat("/etc/shadow", &st); err != nil {
		return fmt.Errorf("stat /etc/shadow: %w", err)
	}
	if readAll("/etc/passwd", "/etc/group") != 2 {
		return errors.New("cannot read /etc/passwd and /etc/group")
	}
	for i := range 3 {
		x.openDenied(filepath.Join(dir, fmt.Sprintf("db-%d.conf", i)), unix.O_RDONLY)
	}
	return x.err()
}

func procMemory(string) error {
	if err := dropToNobody(); err != nil {
		return err
	}
	var x expectFail
	for _, f := range []string{"mem", "environ", "maps"} {
		x.openDenied("/proc/1/"+f, unix.O_RDONLY)
	}
	return x.err()
}

func nearProcMemory(string) error {
	if err := dropToNobody(); err != nil {
		return err
	}
	var x expectFail
	if readAll("/proc/1/stat", "/proc/1/status", "/proc/self/maps") != 3 {
		return errors.New("cannot read PID 1's stat and status and its own maps")
	}
	_, err := os.Readlink("/proc/1/exe")
	x.check("readlink /proc/1/exe", err, unix.EACCES)
	return x.err()
}

// writeFlags are what a program appending to or creating a file asks.
const writeFlags = unix.O_WRONLY | unix.O_CREAT | unix.O_APPEND

func ldPreloadWrite(string) error {
	if err := dropToNobody(); err != nil {
		return err
	}
	var x expectFail
	x.openDenied("/etc/ld.so.preload", writeFlags)
	return x.err()
}

func cronWrite(string) error {
	if err := dropToNobody(); err != nil {
		return err
	}
	var x expectFail
	x.openDenied("/etc/cron.d/errnowatch-probe", writeFlags|unix.O_TRUNC)
	return x.err()
}

func systemdUnitWrite(string) error {
	if err := dropToNobody(); err != nil {
		return err
	}
	var x expectFail
	x.openDenied("/etc/systemd/system/errnowatch-probe.service", writeFlags|unix.O_TRUNC)
	return x.err()
}

func nearPersistence(string) error {
	if err := dropToNobody(); err != nil {
		return err
	}
	var x expectFail
	// What ld.so does on every exec, and what cron -l style tools read.
	_ = unix.Access("/etc/ld.so.preload", unix.R_OK)
	readAll("/etc/ld.so.preload", "/etc/crontab", "/etc/ld.so.conf")
	x.openDenied("/etc/hostname", unix.O_WRONLY)
	return x.err()
}

func sysctlWrite(string) error {
	if err := dropToNobody(); err != nil {
		return err
	}
	var x expectFail
	x.openDenied("/proc/sys/kernel/core_pattern", unix.O_WRONLY|unix.O_TRUNC)
	return x.err()
}

// releaseAgent finds a cgroup v1 hierarchy (the "cgroup" filesystem), as
// the release_agent escape does, and opens its release_agent.
func releaseAgent(string) error {
	agent, err := v1ReleaseAgent()
	if err != nil {
		return err
	}
	if err := dropToNobody(); err != nil {
		return err
	}
	var x expectFail
	x.openDenied(agent, unix.O_WRONLY|unix.O_TRUNC)
	return x.err()
}

func v1ReleaseAgent() (string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// "... - cgroup cgroup rw,...": the mount point is field 5.
		fields := strings.Fields(sc.Text())
		for i, fl := range fields {
			if fl == "-" && i+1 < len(fields) && fields[i+1] == "cgroup" && len(fields) > 4 {
				p := filepath.Join(fields[4], "release_agent")
				if _, err := os.Stat(p); err == nil {
					return p, nil
				}
			}
		}
	}
	return "", errors.New("no cgroup v1 hierarchy with a release_agent is mounted: the release-agent workload needs one")
}

func nearSysctl(string) error {
	if err := dropToNobody(); err != nil {
		return err
	}
	var x expectFail
	if readAll("/proc/sys/kernel/core_pattern", "/proc/sys/net/core/somaxconn") != 2 {
		return errors.New("cannot read core_pattern and somaxconn")
	}
	x.openDenied("/proc/sys/vm/compact_memory", unix.O_RDONLY) // mode 0200: write-only
	return x.err()
}

// connectUnix connects a unix stream socket to path once.
func connectUnix(path string) error {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Connect(fd, &unix.SockaddrUnix{Name: path})
}

func runtimeSocket(string) error {
	if err := dropToNobody(); err != nil {
		return err
	}
	var x expectFail
	for _, s := range []string{"/run/containerd/containerd.sock", "/var/run/docker.sock", "/var/run/crio/crio.sock"} {
		x.check("connect "+s, connectUnix(s), unix.ENOENT, unix.EACCES, unix.ECONNREFUSED)
	}
	return x.err()
}

func nearRuntimeSocket(scratch string) error {
	if err := dropToNobody(); err != nil {
		return err
	}
	var x expectFail
	for range 3 {
		x.check("connect app socket", connectUnix(filepath.Join(scratch, "app.sock")), unix.ENOENT)
	}
	return x.err()
}

func packetSocket(string) error {
	if err := dropToNobody(); err != nil {
		return err
	}
	var x expectFail
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
	if err == nil {
		unix.Close(fd)
	}
	x.check("packet socket", err, unix.EPERM)
	return x.err()
}

// setuidTo makes one raw setuid on one thread (Go's Setuid would repeat it
// on every thread) and wants it denied.
func setuidTo(uid uintptr) error {
	if err := dropToNobody(); err != nil {
		return err
	}
	runtime.LockOSThread()
	var x expectFail
	_, _, e := unix.RawSyscall(unix.SYS_SETUID, uid, 0, 0)
	x.check(fmt.Sprintf("setuid(%d)", uid), errnoOf(e), unix.EPERM)
	return x.err()
}

func setuidRoot(string) error { return setuidTo(0) }

func nearSetuidRoot(string) error { return setuidTo(1000) }

// attackTools are what a post-exploitation script looks for.
var attackTools = []string{
	"nmap", "ncat", "socat", "masscan", "zmap", "hydra", "john", "hashcat", "msfconsole", "msfvenom",
	"sqlmap", "nikto", "gobuster", "ffuf", "chisel", "ligolo-ng", "frpc", "ngrok", "proxychains4",
	"tcpdump", "tshark", "nping", "hping3", "arp-scan", "netdiscover", "kubectl", "crictl", "ctr",
	"linpeas.sh", "pspy64", "deepce.sh", "cdk", "amicontained", "botb", "kube-hunter", "peirates",
	"mimipenguin", "lazagne", "nc.traditional", "pwncat-cs",
}

func toolDiscovery(string) error {
	missing := missingTools(attackTools)
	if len(missing) < 30 {
		return fmt.Errorf("only %d of the probed tools are missing on this machine, want 30", len(missing))
	}
	return execAlongPath(missing)
}

func nearToolDiscovery(string) error {
	tools := missingTools([]string{"tini", "gosu", "su-exec", "dumb-init"})
	if nc := missingTools([]string{"nc"}); len(nc) == 1 {
		tools = append(tools, "nc", "nc", "nc")
	}
	if len(tools) < 4 {
		return fmt.Errorf("only %d of the entrypoint helpers are missing on this machine, want 4", len(tools))
	}
	return execAlongPath(tools)
}
