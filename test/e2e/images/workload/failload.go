package main

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// missing is a path whose parent does not exist either, so that a lookup
// fails at the first component after /, as cheaply as a path lookup can.
const missing = "/errnowatch-e2e-missing/fail-load"

// failCall is one syscall made to fail the same way every time.
type failCall struct {
	name  string
	errno unix.Errno
	// call makes the syscall once with raw arguments: no Go wrapper
	// retries on EINTR or falls back to another syscall, so each call is
	// exactly one kernel entry of this syscall.
	call func() unix.Errno
}

// atFDCWD is a variable so that converting the negative constant to
// uintptr wraps, as the kernel expects.
var atFDCWD = unix.AT_FDCWD

var missingPtr = func() *byte {
	p, err := unix.BytePtrFromString(missing)
	if err != nil {
		panic(err)
	}
	return p
}()

// failCalls are the syscalls fail-load and burst can fail. None of them,
// with its errno, is matched by a rule of the default pack (ENOENT on file
// lookups and EBADF are every program's daily noise), so a load test sees
// counts and no alerts unless it loads a rule of its own.
var failCalls = map[string]failCall{
	"faccessat": {"faccessat", unix.ENOENT, func() unix.Errno {
		_, _, e := unix.RawSyscall(unix.SYS_FACCESSAT, uintptr(atFDCWD),
			uintptr(unsafe.Pointer(missingPtr)), unix.F_OK)
		return e
	}},
	"openat": {"openat", unix.ENOENT, func() unix.Errno {
		fd, _, e := unix.RawSyscall6(unix.SYS_OPENAT, uintptr(atFDCWD),
			uintptr(unsafe.Pointer(missingPtr)), unix.O_RDONLY|unix.O_CLOEXEC, 0, 0, 0)
		if e == 0 {
			unix.Close(int(fd))
		}
		return e
	}},
	"close": {"close", unix.EBADF, func() unix.Errno {
		// -1 as the kernel's unsigned int: never an open descriptor.
		_, _, e := unix.RawSyscall(unix.SYS_CLOSE, ^uintptr(0), 0, 0)
		return e
	}},
}

// Result is what fail-load and burst print: Count is the number of calls
// that returned exactly Errno, which is what the agent must count for this
// container's (Syscall, Errno); Other counts calls that returned anything
// else (0 unless the path appeared).
type Result struct {
	// Workload is the mode (fail-load or burst) and OK that it succeeded:
	// the e2e tests wait for a line with both, as for the attacks.
	Workload string  `json:"workload"`
	OK       bool    `json:"ok"`
	Syscall  string  `json:"syscall"`
	Errno    string  `json:"errno"`
	Count    uint64  `json:"count"`
	Other    uint64  `json:"other"`
	Threads  int     `json:"threads"`
	Seconds  float64 `json:"seconds"`
	PerSec   float64 `json:"per_second"`
}

func newResult(c failCall, threads int, count, other uint64, d time.Duration) Result {
	r := Result{Syscall: c.name, Errno: unix.ErrnoName(c.errno), Count: count, Other: other,
		Threads: threads, Seconds: d.Seconds()}
	if d > 0 {
		r.PerSec = float64(count) / d.Seconds()
	}
	return r
}

// Burst makes exactly n calls and counts how they failed.
func Burst(c failCall, n uint64) (Result, error) {
	start := time.Now()
	var count, other uint64
	for range n {
		if c.call() == c.errno {
			count++
		} else {
			other++
		}
	}
	r := newResult(c, 1, count, other, time.Since(start))
	if other != 0 {
		return r, fmt.Errorf("%d of %d %s calls did not fail with %s", other, n, c.name, r.Errno)
	}
	return r, nil
}

// FailLoad runs threads OS threads, each making the call flat out, until
// ctx ends, and adds up how they failed.
func FailLoad(ctx context.Context, c failCall, threads int) (Result, error) {
	var stop atomic.Bool
	var count, other atomic.Uint64
	var wg sync.WaitGroup
	start := time.Now()
	for range threads {
		wg.Go(func() {
			// One goroutine per thread, kept there, so the load is
			// spread over threads (and CPUs) as the flag says.
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			var n, o uint64
			for !stop.Load() {
				for range 256 {
					if c.call() == c.errno {
						n++
					} else {
						o++
					}
				}
			}
			count.Add(n)
			other.Add(o)
		})
	}
	<-ctx.Done()
	stop.Store(true)
	wg.Wait()
	r := newResult(c, threads, count.Load(), other.Load(), time.Since(start))
	if r.Other != 0 {
		return r, fmt.Errorf("%d %s calls did not fail with %s", r.Other, c.name, r.Errno)
	}
	return r, nil
}
