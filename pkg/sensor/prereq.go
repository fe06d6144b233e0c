package sensor

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/cilium/ebpf/btf"
	"golang.org/x/sys/unix"
)

// Capability numbers from include/uapi/linux/capability.h.
const (
	capSysAdmin = 21
	capPerfmon  = 38
	capBPF      = 39
)

// checkPrerequisites finds the common reasons a load fails before trying,
// so that the error says what to do rather than what the verifier saw.
func checkPrerequisites() error {
	if eff, err := effectiveCaps(); err == nil {
		has := func(c uint) bool { return eff&(1<<c) != 0 }
		if !has(capSysAdmin) && !(has(capBPF) && has(capPerfmon)) {
			return errors.New("errnowatch needs root, or the capabilities CAP_BPF and CAP_PERFMON, to load its kernel program: " +
				"run it with sudo, or grant them (e.g. `setcap cap_bpf,cap_perfmon+ep errnowatch`, or securityContext.capabilities.add: [BPF, PERFMON] in a pod)")
		}
	}
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		return fmt.Errorf("this kernel exposes no BTF at /sys/kernel/btf/vmlinux (%w): errnowatch needs a kernel built with CONFIG_DEBUG_INFO_BTF=y (most distributions since 2020: Ubuntu 20.10+, Debian 11+, RHEL 8.2+)", err)
	}
	spec, err := btf.LoadKernelSpec()
	if err != nil {
		return fmt.Errorf("read kernel BTF: %w", err)
	}
	var fn *btf.Typedef
	if err := spec.TypeByName("btf_trace_sys_exit", &fn); err != nil {
		return fmt.Errorf("this kernel has no raw_syscalls:sys_exit tracepoint in its BTF (%w): it needs CONFIG_FTRACE_SYSCALLS=y", err)
	}
	return nil
}

// explain turns the errors of a failed load or attach into one that says
// what to do.
func explain(what string, err error) error {
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
		if mode := lockdown(); mode == "confidentiality" {
			return fmt.Errorf("%s: the kernel is in lockdown mode %q, which forbids BPF programs that read kernel memory; boot with lockdown=integrity or none (or disable Secure Boot lockdown): %w", what, mode, err)
		}
		return fmt.Errorf("%s: permission denied: run as root or with CAP_BPF and CAP_PERFMON; in a container, also check that seccomp allows bpf() and that /sys/kernel/btf is readable: %w", what, err)
	}
	if errors.Is(err, unix.ENOMEM) {
		return fmt.Errorf("%s: out of memory for BPF maps: on kernels before 5.11 raise RLIMIT_MEMLOCK (ulimit -l unlimited), or lower the map sizes: %w", what, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// lockdown returns the active kernel lockdown mode, or "".
func lockdown() string {
	b, err := os.ReadFile("/sys/kernel/security/lockdown")
	if err != nil {
		return ""
	}
	s := string(b)
	if i := strings.IndexByte(s, '['); i >= 0 {
		if j := strings.IndexByte(s[i:], ']'); j > 0 {
			return s[i+1 : i+j]
		}
	}
	return ""
}

func effectiveCaps() (uint64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			return strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		}
	}
	return 0, errors.New("no CapEff in /proc/self/status")
}
