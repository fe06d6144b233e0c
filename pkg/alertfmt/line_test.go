package alertfmt

import (
	"strings"
	"testing"
	"time"

	"github.com/errnowatch/errnowatch/pkg/alert"
)

func TestLineEscapesHostileStrings(t *testing.T) {
	a := alert.Alert{
		LastSeen:   time.Date(2026, 3, 1, 12, 0, 0, 0, time.Local),
		Severity:   alert.SeverityHigh,
		RuleID:     "scan",
		CgroupPath: "/sys/fs/cgroup/evil\n\x1b[2J",
		Message:    "comm \x1b]0;pwned\x07 failed\nALERT forged",
	}
	got := Line(&a)
	want := `ALERT 12:00:00 high [scan] /sys/fs/cgroup/evil\n\x1b[2J: comm \x1b]0;pwned\x07 failed\nALERT forged`
	if got != want {
		t.Fatalf("Line = %q, want %q", got, want)
	}
	if strings.ContainsAny(got, "\x1b\n\x07") {
		t.Fatalf("Line keeps control characters: %q", got)
	}
}
