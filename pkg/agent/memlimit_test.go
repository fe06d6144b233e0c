package agent

import (
	"fmt"
	"os"
	"regexp"
	"runtime/debug"
	"strconv"
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

// rssFileKB is this process's file-backed resident set (RssFile) in kB.
func rssFileKB(t *testing.T) int64 {
	t.Helper()
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "RssFile:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb
		}
	}
	t.Fatal("no RssFile in /proc/self/status")
	return 0
}

// The trim unmaps the read-only mappings of this very test binary: the
// resident file pages drop, and the code and data the process goes on using
// fault back in (the test keeps running and computing correctly after it).
func TestTrimExecutablePagesGivesBackTheBinarysPages(t *testing.T) {
	before := rssFileKB(t)
	n, err := trimExecutablePages()
	if err != nil {
		t.Fatal(err)
	}
	after := rssFileKB(t)
	if n < 2 {
		t.Errorf("trimmed %d mappings of the executable, want its code and read-only data (2 or more)", n)
	}
	if after >= before {
		t.Errorf("RssFile %d kB after the trim, %d kB before: nothing given back", after, before)
	}
	// Code and read-only data the trim unmapped still work: a regexp
	// compile and a formatted string go through both.
	if got := fmt.Sprintf("%d-%s", 42, regexp.MustCompile(`a+b`).FindString("xaaab")); got != "42-aaab" {
		t.Errorf("after the trim: %q", got)
	}
	if vmRSS() <= 0 {
		t.Error("vmRSS after the trim: 0")
	}
	t.Logf("RssFile %d kB -> %d kB (%d mappings)", before, after, n)
}
