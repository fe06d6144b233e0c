package agent

import (
	"runtime/debug"
	"strings"
	"testing"

	"go.uber.org/zap"
)

func TestMemoryLimitComesFromTheContainerLimit(t *testing.T) {
	prev := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(prev) })

	t.Setenv("GOMEMLIMIT", "")
	t.Setenv(MemoryLimitEnv, "268435456") // 256Mi, as the chart's default renders
	got, err := setMemoryLimit(zap.NewNop())
	if err != nil || got != 228170137 {
		t.Fatalf("setMemoryLimit = %d, %v; want 85%% of 256 MiB = 228170137", got, err)
	}
	if cur := debug.SetMemoryLimit(-1); cur != 228170137 {
		t.Fatalf("runtime memory limit is %d, want 228170137", cur)
	}

	t.Setenv(MemoryLimitEnv, "256Mi")
	if _, err := setMemoryLimit(zap.NewNop()); err == nil || !strings.Contains(err.Error(), "divisor 1") {
		t.Fatalf("setMemoryLimit with a quantity: %v; want an error that says how to set it", err)
	}

	t.Setenv("GOMEMLIMIT", "100MiB")
	t.Setenv(MemoryLimitEnv, "268435456")
	if got, err := setMemoryLimit(zap.NewNop()); err != nil || got != 0 {
		t.Fatalf("setMemoryLimit with GOMEMLIMIT set = %d, %v; want 0 (GOMEMLIMIT wins)", got, err)
	}
}
