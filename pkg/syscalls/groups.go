package syscalls

import (
	"maps"
	"slices"
	"strings"
)

// groups are the named syscall sets rule files can refer to. Unlike the
// tables, this is policy, written by hand: which syscalls a rule author most
// likely means by "file" or "privilege". Each list names kernel syscalls as
// they appear in some table; a name missing from an ABI (open on arm64,
// socketcall outside i386) is skipped there by GroupNumbers. The 32-bit names
// (setuid32, socketcall, ipc, stat64, *_time64, ...) are listed deliberately:
// they are what 32-bit tasks call, and leaving them out would let a 32-bit
// binary slip past a rule. Groups may overlap. exit and exit_group are in no
// group because they never reach sys_exit.
var groups = map[string][]string{
	// Path lookups, opens and metadata changes: the calls whose EACCES,
	// EPERM and ENOENT show a process probing or being denied files.
	// Pure fd reads (read, fstat, getdents) are left out as noise.
	"file": {
		"open", "openat", "openat2", "creat", "open_by_handle_at", "name_to_handle_at",
		"stat", "lstat", "newfstatat", "statx", "stat64", "lstat64", "fstatat64",
		"access", "faccessat", "faccessat2", "readlink", "readlinkat", "statfs", "statfs64",
		"truncate", "ftruncate", "truncate64", "ftruncate64", "fallocate",
		"chmod", "fchmod", "fchmodat", "fchmodat2",
		"chown", "lchown", "fchown", "fchownat", "chown32", "lchown32", "fchown32",
		"link", "linkat", "symlink", "symlinkat", "unlink", "unlinkat",
		"rename", "renameat", "renameat2", "mkdir", "mkdirat", "rmdir", "mknod", "mknodat",
		"chdir", "fchdir",
		"utime", "utimes", "futimesat", "utimensat", "utimensat_time64",
		"setxattr", "lsetxattr", "fsetxattr", "setxattrat",
		"getxattr", "lgetxattr", "getxattrat", "listxattr", "llistxattr", "listxattrat",
		"removexattr", "lremovexattr", "fremovexattr", "removexattrat",
		"file_getattr", "file_setattr",
	},
	// Creating, running, signalling and reshaping other processes.
	"process": {
		"fork", "vfork", "clone", "clone3", "execve", "execveat",
		"kill", "tkill", "tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo",
		"pidfd_open", "pidfd_send_signal", "pidfd_getfd",
		"wait4", "waitid", "waitpid", "prctl", "setpgid", "setsid",
		"setpriority", "sched_setscheduler", "sched_setparam", "sched_setaffinity", "sched_setattr",
		"setrlimit", "prlimit64", "process_madvise", "process_mrelease",
	},
	// Sockets. socketcall is how 32-bit x86 (and old 32-bit binaries
	// generally) reach every socket operation.
	"network": {
		"socket", "socketpair", "bind", "connect", "listen", "accept", "accept4",
		"sendto", "recvfrom", "send", "recv", "sendmsg", "recvmsg",
		"sendmmsg", "recvmmsg", "recvmmsg_time64", "shutdown",
		"getsockopt", "setsockopt", "getsockname", "getpeername", "socketcall",
	},
	// Changing credentials, capabilities, namespaces or confinement.
	"privilege": {
		"setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid",
		"setfsuid", "setfsgid", "setgroups",
		"setuid32", "setgid32", "setreuid32", "setregid32", "setresuid32", "setresgid32",
		"setfsuid32", "setfsgid32", "setgroups32",
		"capset", "unshare", "setns", "seccomp", "chroot", "personality",
		"iopl", "ioperm", "sethostname", "setdomainname",
	},
	// Loading code into the kernel: modules and kexec images.
	"module": {
		"init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load",
	},
	// Mounting, old and new API, and changing the root.
	"mount": {
		"mount", "umount", "umount2", "pivot_root",
		"fsopen", "fsconfig", "fsmount", "fspick", "move_mount",
		"open_tree", "open_tree_attr", "mount_setattr", "statmount", "listmount",
	},
	// System V and POSIX IPC. ipc is the 32-bit x86 multiplexer for SysV.
	"ipc": {
		"msgget", "msgsnd", "msgrcv", "msgctl",
		"semget", "semop", "semtimedop", "semtimedop_time64", "semctl",
		"shmget", "shmat", "shmdt", "shmctl",
		"mq_open", "mq_unlink", "mq_timedsend", "mq_timedsend_time64",
		"mq_timedreceive", "mq_timedreceive_time64", "mq_notify", "mq_getsetattr", "ipc",
	},
	// Setting the system clock (reading it is not interesting).
	"time": {
		"settimeofday", "stime", "clock_settime", "clock_settime64",
		"adjtimex", "clock_adjtime", "clock_adjtime64",
	},
	// The kernel key retention service.
	"keyring": {"add_key", "request_key", "keyctl"},
	// Loading and managing eBPF programs and maps.
	"bpf": {"bpf"},
	// Inspecting or controlling other processes' execution and memory.
	"tracing": {"ptrace", "perf_event_open", "process_vm_readv", "process_vm_writev"},
}

// Groups returns the names of all groups, sorted.
func Groups() []string {
	return slices.Sorted(maps.Keys(groups))
}

// Group returns the syscall names in the named group (case-insensitive),
// across all ABIs. The caller owns the slice.
func Group(name string) ([]string, bool) {
	g, ok := groups[strings.ToLower(name)]
	return slices.Clone(g), ok
}

// GroupNumbers resolves a group for one ABI: the sorted numbers of its
// syscalls, silently skipping names that ABI does not have. It returns nil
// for an unknown group.
func GroupNumbers(arch Arch, group string, compat bool) []int {
	names, ok := groups[strings.ToLower(group)]
	if !ok {
		return nil
	}
	nrs := make([]int, 0, len(names))
	for _, name := range names {
		if nr, ok := Lookup(arch, name, compat); ok {
			nrs = append(nrs, nr)
		}
	}
	slices.Sort(nrs)
	return slices.Compact(nrs)
}
