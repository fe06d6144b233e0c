package syscalls

import (
	"errors"
	"slices"
	"testing"
)

// bitmapBits is the size of the kernel-side per-table syscall bitmap.
const bitmapBits = 1024

func TestKnownNumbers(t *testing.T) {
	tests := []struct {
		arch   Arch
		compat bool
		name   string
		nr     int
	}{
		{AMD64, false, "read", 0},
		{AMD64, false, "openat", 257},
		{AMD64, false, "newfstatat", 262},
		{AMD64, false, "execve", 59},
		{AMD64, true, "open", 5},
		{AMD64, true, "execve", 11},
		{AMD64, true, "socketcall", 102},
		{AMD64, true, "_llseek", 140},
		{ARM64, false, "openat", 56},
		{ARM64, false, "newfstatat", 79},
		{ARM64, false, "execve", 221},
		{ARM64, true, "open", 5},
		{ARM64, true, "openat", 322},
		{ARM64, true, "restart_syscall", 0}, // not shadowed by SYS_SYSCALL_MASK
	}
	for _, tt := range tests {
		if got := Name(tt.arch, tt.nr, tt.compat); got != tt.name {
			t.Errorf("Name(%s, %d, %v) = %q, want %q", tt.arch, tt.nr, tt.compat, got, tt.name)
		}
		if nr, ok := Lookup(tt.arch, tt.name, tt.compat); !ok || nr != tt.nr {
			t.Errorf("Lookup(%s, %q, %v) = %d, %v, want %d", tt.arch, tt.name, tt.compat, nr, ok, tt.nr)
		}
	}
}

func TestUnknown(t *testing.T) {
	for _, tt := range []struct {
		arch   Arch
		nr     int
		compat bool
		want   string
	}{
		{AMD64, 1000, false, "syscall_1000"},
		{AMD64, -1, false, "syscall_-1"},
		{ARM64, 244, false, "syscall_244"}, // SYS_ARCH_SPECIFIC_SYSCALL is not a syscall
		{AMD64, 900, true, "syscall_900"},
		{"riscv64", 0, false, "syscall_0"},
	} {
		if got := Name(tt.arch, tt.nr, tt.compat); got != tt.want {
			t.Errorf("Name(%s, %d, %v) = %q, want %q", tt.arch, tt.nr, tt.compat, got, tt.want)
		}
	}
	for _, name := range []string{"open", "fork", "arch_specific_syscall"} {
		if nr, ok := Lookup(ARM64, name, false); ok {
			t.Errorf("Lookup(arm64, %q) = %d, want not found", name, nr)
		}
	}
	if _, ok := Lookup(AMD64, "syscall_257", false); ok {
		t.Error(`Lookup accepted "syscall_257"`)
	}
	if nr, ok := Lookup(AMD64, "OpenAt", false); !ok || nr != 257 {
		t.Errorf("Lookup is not case-insensitive: %d, %v", nr, ok)
	}
}

func TestTables(t *testing.T) {
	for _, a := range abis {
		names := Names(a.arch, a.compat)
		if len(names) < 300 {
			t.Errorf("%s: only %d names", a, len(names))
		}
		if !slices.IsSorted(names) {
			t.Errorf("%s: Names not sorted", a)
		}
		if n := MaxNr(a.arch, a.compat); n > bitmapBits {
			t.Errorf("%s: MaxNr = %d, does not fit the %d-bit kernel bitmap", a, n, bitmapBits)
		}
		for _, name := range names {
			nr, ok := Lookup(a.arch, name, a.compat)
			if !ok || nr < 0 || nr >= MaxNr(a.arch, a.compat) || Name(a.arch, nr, a.compat) != name {
				t.Errorf("%s: %q does not round-trip (nr %d, ok %v)", a, name, nr, ok)
			}
		}
	}
	if MaxNr("riscv64", false) != 0 || len(Names("riscv64", false)) != 0 {
		t.Error("unknown arch should have an empty table")
	}
}

func TestNative(t *testing.T) {
	if n := Native(); n != AMD64 && n != ARM64 {
		t.Skipf("no tables for %s", n)
	}
	if MaxNr(Native(), false) == 0 {
		t.Errorf("no table for native arch %s", Native())
	}
}

func TestParseSyscall(t *testing.T) {
	if nr, err := ParseSyscall(AMD64, "openat", false); err != nil || nr != 257 {
		t.Fatalf("ParseSyscall(openat) = %d, %v", nr, err)
	}
	for _, tt := range []struct {
		arch   Arch
		name   string
		compat bool
		want   string
	}{
		{AMD64, "opnat", false, `unknown syscall "opnat" (did you mean "openat"?)`},
		{AMD64, "qqqqqqqqqq", false, `unknown syscall "qqqqqqqqqq"`},
		{ARM64, "open", false, `syscall "open" does not exist on arm64 (did you mean "openat"?)`},
		{AMD64, "socketcall", true, ""}, // exists, no error
		{AMD64, "waitpid", false, `syscall "waitpid" does not exist on amd64 (did you mean "waitid"?)`},
	} {
		_, err := ParseSyscall(tt.arch, tt.name, tt.compat)
		if tt.want == "" {
			if err != nil {
				t.Errorf("ParseSyscall(%s, %q, %v): %v", tt.arch, tt.name, tt.compat, err)
			}
			continue
		}
		if err == nil || err.Error() != tt.want {
			t.Errorf("ParseSyscall(%s, %q) error = %v, want %s", tt.arch, tt.name, err, tt.want)
		}
		if !errors.Is(err, ErrUnknownSyscall) {
			t.Errorf("ParseSyscall(%s, %q) error does not wrap ErrUnknownSyscall", tt.arch, tt.name)
		}
	}
	if _, err := ParseSyscall("riscv64", "openat", false); err == nil || errors.Is(err, ErrUnknownSyscall) {
		t.Errorf("unsupported arch: err = %v", err)
	}
}
