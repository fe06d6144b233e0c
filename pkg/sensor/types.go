package sensor

import (
	"net/netip"
	"time"

	"golang.org/x/sys/unix"
)

// Record is one sampled syscall exit, as the kernel program reported it.
// Failure records are rate-limited in the kernel per (cgroup, syscall, errno)
// and window; the exact counts are in Interval.
type Record struct {
	// Time is the wall-clock time of the exit, converted from MonoNS.
	Time time.Time
	// MonoNS is the kernel's CLOCK_MONOTONIC time of the exit.
	MonoNS   uint64
	PID      uint32 // thread group id, what ps calls the pid
	TID      uint32
	UID      uint32
	Comm     string
	CgroupID uint64 // cgroup v2 id of the task
	Syscall  int32  // number in the table Compat selects
	// Compat is true for a 32-bit syscall (int $0x80, or a 32-bit process):
	// Syscall is then a number from the 32-bit table.
	Compat bool
	Ret    int64
	// DurationNS is the time from sys_enter to sys_exit; zero unless the
	// sensor runs in duration mode.
	DurationNS uint64

	// Args are the syscall's six argument registers at exit, in argument
	// order (for a compat syscall, the i386 or ARM registers). Which of them
	// mean something, and how, is in syscalls.Signature.
	Args [6]uint64
	// Path is the call's first path argument as the program passed it, at
	// most PathMax-1 bytes; "" when the syscall takes no path, the pointer
	// was NULL or it could not be read.
	Path string
	// PathTruncated: the path was longer and Path is its first PathMax-1
	// bytes. PathUnreadable: the pointer was not NULL but the kernel could
	// not read it without faulting (a bad pointer, or a page not resident).
	PathTruncated, PathUnreadable bool
	// Path2 is the second path: rename's and link's target, mount's target.
	Path2                           string
	Path2Truncated, Path2Unreadable bool
	// Addr is the socket address passed to connect, bind or sendto.
	Addr SockAddr
	// AddrUnreadable: the address pointer could not be read.
	AddrUnreadable bool
}

// SockAddr is a decoded struct sockaddr. Family is 0 when there is none.
type SockAddr struct {
	Family uint16     // AF_*
	IP     netip.Addr // AF_INET, AF_INET6
	Port   uint16     // AF_INET, AF_INET6
	Unix   string     // AF_UNIX path; an abstract name starts with "@"
}

// String is the address as ss prints it: 127.0.0.1:80, [::1]:80, a unix
// path, or "" for none.
func (a SockAddr) String() string {
	switch {
	case a.IP.IsValid():
		return netip.AddrPortFrom(a.IP, a.Port).String()
	case a.Family == unix.AF_UNIX:
		return a.Unix
	}
	return ""
}

// Errno is the error number of a failed exit, 0 for a success.
func (r *Record) Errno() uint16 { return ErrnoOf(r.Ret) }

// ErrnoOf returns the errno a syscall return value carries: the kernel
// returns -errno for errors in [-4095, -1]; anything else is a success
// (mmap can return addresses that look negative as signed numbers).
func ErrnoOf(ret int64) uint16 {
	if ret < 0 && ret >= -MaxErrno {
		return uint16(-ret)
	}
	return 0
}

// MaxErrno is the kernel's MAX_ERRNO.
const MaxErrno = 4095

// Key identifies one exact counter.
type Key struct {
	CgroupID uint64
	Syscall  int32
	Compat   bool
	// Errno is 0 for successful exits (counted only when all exits are on).
	Errno uint16
}

// Keys the kernel program makes that are not one syscall (NR_INVALID and
// NR_OVERFLOW in bpf/errnowatch.c); both are above every syscall table.
const (
	// InvalidSyscall is every syscall number outside the table (ENOSYS
	// from the kernel's dispatcher): one key per cgroup and errno, however
	// many numbers a process tries.
	InvalidSyscall int32 = 0xffff
	// OverflowSyscall is a cgroup's overflow key: its exits beyond its
	// share of the counts map (Config.MaxKeysPerCgroup), or while the map
	// was full, counted exactly but without their syscall and errno.
	// Failures have Errno OverflowErrno, successes 0. Records of those
	// exits carry OverflowSyscall and their real errno.
	OverflowSyscall int32 = 0xfffe
	// OverflowErrno is the errno of an overflow key's failures: any
	// errno, not kept.
	OverflowErrno uint16 = MaxErrno
)

// Count is the exact number of exits for one key in one interval.
type Count struct {
	Key
	Count uint64
}

// HistBuckets is the number of log2 latency buckets: bucket i counts
// durations d with 2^i <= d < 2^(i+1) nanoseconds (bucket 0 also holds 0 and 1).
const HistBuckets = 40

// HistKey identifies one latency histogram.
type HistKey struct {
	CgroupID uint64
	Syscall  int32
	Compat   bool
}

// Histogram is the latency distribution for one cgroup and syscall in one
// interval (duration mode only).
type Histogram struct {
	HistKey
	Buckets [HistBuckets]uint64
}

// Interval is what one drain of the kernel's aggregates returns: every exit
// counted between Start and End, each exactly once.
type Interval struct {
	Start, End time.Time
	Counts     []Count
	Histograms []Histogram
	// Overflows are the cgroups that went over their share of the counts
	// map, or found it full, in this interval. Their overflow counts are
	// in Counts too, as OverflowSyscall keys.
	Overflows []Overflow
	// Stats are the sensor's cumulative statistics at the end of the interval.
	Stats Stats
}

// Overflow is one cgroup's use of the counts map in an interval in which
// some of its exits did not get a key of their own.
type Overflow struct {
	CgroupID uint64
	// Keys is how many keys it made: at Config.MaxKeysPerCgroup (or a few
	// above, from CPUs racing) when it went over its share, less when the
	// map was full.
	Keys int
	// Failures and Successes are the exits counted in its overflow key.
	Failures, Successes uint64
}

// Stats are cumulative counters since the sensor was loaded. Anything the
// sensor could not count or deliver is here; nothing is dropped silently.
type Stats struct {
	// Records is the number of records decoded from the ring buffer.
	Records uint64
	// RingDrops is, per CPU, the records the kernel lost: it could not
	// reserve room for them in the ring buffer, or (rarely) the CPU lost
	// the race for the key's record limit to other CPUs four times in a row.
	RingDrops []uint64
	// MapFull is the number of exits whose aggregate key found the counts
	// map full and whose cgroup had no room for its overflow either
	// (those exits are not in any Count).
	MapFull uint64
	// Overflowed is the number of exits counted in overflow keys: over a
	// cgroup's share, or while the counts map was full.
	Overflowed uint64
	// HistFull is the same for latency histograms.
	HistFull uint64
	// Emitted is the number of records the kernel put in the ring buffer.
	Emitted uint64
	// QueueDrops is the number of decoded records dropped because the
	// consumer did not keep up with the bounded queue.
	QueueDrops uint64
	// DecodeErrors is the number of ring-buffer samples that did not decode.
	DecodeErrors uint64
}

// TotalRingDrops sums RingDrops.
func (s Stats) TotalRingDrops() uint64 {
	var n uint64
	for _, d := range s.RingDrops {
		n += d
	}
	return n
}
