package agent

import (
	"fmt"
	"os"
	"runtime/debug"
	"strconv"

	"go.uber.org/zap"
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
