package agent

import (
	"context"
	"fmt"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// MemoryLimitEnv names the variable the chart fills with the container's
// memory limit in bytes (a resourceFieldRef to limits.memory).
const MemoryLimitEnv = "ERRNOWATCH_MEMORY_LIMIT"

// memoryLimitShare is the part of the container limit given to the Go
// runtime as its soft limit. The rest is memory the runtime does not count
// but the cgroup does: the BPF ring buffer and map mappings the agent
// touches, thread stacks, and page cache of the spool.
const memoryLimitShare = 0.85

// setMemoryLimit makes the garbage collector work harder as the heap nears
// the container limit, instead of letting GOGC's doubling run into the OOM
// killer during a burst. An explicit GOMEMLIMIT wins. It returns the limit
// set, 0 when none.
func setMemoryLimit(log *zap.Logger) (int64, error) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return 0, nil
	}
	v := os.Getenv(MemoryLimitEnv)
	if v == "" {
		return 0, nil
	}
	limit, err := strconv.ParseInt(v, 10, 64)
	if err != nil || limit <= 0 {
		return 0, fmt.Errorf("%s=%q: want the container's memory limit in bytes (resourceFieldRef limits.memory, divisor 1)", MemoryLimitEnv, v)
	}
	soft := int64(float64(limit) * memoryLimitShare)
	debug.SetMemoryLimit(soft)
	log.Info("go memory limit from the container limit", zap.Int64("container_limit_bytes", limit), zap.Int64("go_limit_bytes", soft))
	return soft, nil
}

// trimDelay is how long after the agent became ready its start-up pages are
// given back: the first intervals have run, the rules have been evaluated
// and every code path of the steady state has been touched at least once.
const trimDelay = 10 * time.Second

// trimAfterStart gives back, once, the memory only start-up needed: it
// waits until the agent is ready and has run for trimDelay, then returns
// the freed Go heap to the kernel and unmaps the read-only pages of its own
// executable (trimExecutablePages).
func (a *Agent) trimAfterStart(ctx context.Context) error {
	poll := time.NewTicker(time.Second)
	defer poll.Stop()
	for ready := false; !ready; ready, _ = a.Ready() {
		select {
		case <-ctx.Done():
			return nil
		case <-poll.C:
		}
	}
	select {
	case <-ctx.Done():
		return nil
	case <-time.After(trimDelay):
	}
	before := vmRSS()
	debug.FreeOSMemory()
	n, err := trimExecutablePages()
	if err != nil {
		return fmt.Errorf("give back start-up pages: %w", err)
	}
	a.log.Info("gave back start-up memory", zap.Int("executable_mappings", n),
		zap.Int64("rss_before_bytes", before), zap.Int64("rss_after_bytes", vmRSS()))
	return nil
}

// trimExecutablePages unmaps the agent's read-only mappings of its own
// executable (code, read-only data, the function tables) with
// MADV_DONTNEED, after MADV_NOHUGEPAGE. Start-up touches far more of a Go
// binary than the steady state does (package initialisers, the Kubernetes
// scheme, CEL's parser tables, flag parsing), and the kernel maps more than
// was touched: 64 KiB of fault-around per fault, and 2 MiB huge pages once
// khugepaged has collapsed the text. Those pages are clean page cache:
// unmapping them loses nothing, they stay in the page cache, where the
// kernel can reclaim them under the container's limit, and the pages the
// steady state uses fault back in at 4 KiB (MADV_NOHUGEPAGE keeps a huge
// page from mapping 2 MiB for one touched page). Writable mappings (data,
// bss, heap) are never touched. It returns how many mappings it trimmed.
func trimExecutablePages() (int, error) {
	var exe unix.Stat_t
	if err := unix.Stat("/proc/self/exe", &exe); err != nil {
		return 0, fmt.Errorf("stat own executable: %w", err)
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return 0, fmt.Errorf("read own mappings: %w", err)
	}
	n := 0
	for _, line := range strings.Split(string(maps), "\n") {
		// start-end perms offset dev inode path
		f := strings.Fields(line)
		if len(f) < 6 || (f[1] != "r--p" && f[1] != "r-xp") {
			continue
		}
		if inode, err := strconv.ParseUint(f[4], 10, 64); err != nil || inode != exe.Ino {
			continue
		}
		startHex, endHex, ok := strings.Cut(f[0], "-")
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(startHex, 16, 64)
		end, err2 := strconv.ParseUint(endHex, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			continue
		}
		for _, advice := range []uintptr{unix.MADV_NOHUGEPAGE, unix.MADV_DONTNEED} {
			if _, _, errno := unix.Syscall(unix.SYS_MADVISE, uintptr(start), uintptr(end-start), advice); errno != 0 {
				return n, fmt.Errorf("madvise %s %s: %w", f[0], f[1], errno)
			}
		}
		n++
	}
	return n, nil
}

// vmRSS is this process's resident set in bytes, 0 when unknown.
func vmRSS() int64 {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}
