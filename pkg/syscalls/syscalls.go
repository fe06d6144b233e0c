// Package syscalls names the numbers that come out of raw_syscalls:sys_exit.
//
// It turns syscall numbers into kernel names and back for each ABI the sensor
// sees (amd64 and arm64, each with its 32-bit compat table), names errno
// values, suggests the closest name for a typo, and resolves the named
// syscall groups that rule files refer to, and gives each syscall's argument
// signature (Signature, CaptureOf, DecodeArg). The syscall tables are
// generated from golang.org/x/sys by hack/gensyscalls; the signatures from
// the kernel's own SYSCALL_DEFINE metadata (a committed snapshot of tracefs
// sys_enter_*/format) by hack/genargs (see gen.go); the errno names come
// from unix.ErrnoName. Only the groups in groups.go are written by hand.
//
// Every function is safe for concurrent use.
package syscalls

import (
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
)

// Arch is a kernel architecture, spelled as GOARCH spells it.
type Arch string

// The architectures the sensor runs on.
const (
	AMD64 Arch = "amd64"
	ARM64 Arch = "arm64"
)

// Native returns the architecture this binary was built for. On an
// architecture other than AMD64 or ARM64 every table is empty.
func Native() Arch { return Arch(runtime.GOARCH) }

// ErrUnknownSyscall is wrapped by the errors of ParseSyscall.
var ErrUnknownSyscall = errors.New("unknown syscall")

// table returns the number → name table for an ABI. compat selects the table
// a 64-bit kernel uses for 32-bit tasks: i386 on amd64, ARM EABI on arm64.
func table(arch Arch, compat bool) []string {
	switch {
	case arch == AMD64 && !compat:
		return amd64Names
	case arch == AMD64 && compat:
		return amd64CompatNames
	case arch == ARM64 && !compat:
		return arm64Names
	case arch == ARM64 && compat:
		return arm64CompatNames
	}
	return nil
}

type abi struct {
	arch   Arch
	compat bool
}

var abis = []abi{{AMD64, false}, {AMD64, true}, {ARM64, false}, {ARM64, true}}

func (a abi) String() string {
	switch {
	case a.arch == AMD64 && a.compat:
		return "amd64 compat (i386)"
	case a.arch == ARM64 && a.compat:
		return "arm64 compat (arm)"
	}
	return string(a.arch)
}

// indexes maps name → number for every ABI, built on first use.
var indexes = sync.OnceValue(func() map[abi]map[string]int {
	m := make(map[abi]map[string]int, len(abis))
	for _, a := range abis {
		t := table(a.arch, a.compat)
		idx := make(map[string]int, len(t))
		for nr, name := range t {
			if name != "" {
				idx[name] = nr
			}
		}
		m[a] = idx
	}
	return m
})

// Name returns the kernel name of syscall nr, e.g. "openat", or
// "syscall_<nr>" when the table has no entry for it (including numbers the
// sensor reports that are not real syscalls, like -1).
func Name(arch Arch, nr int, compat bool) string {
	t := table(arch, compat)
	if nr >= 0 && nr < len(t) && t[nr] != "" {
		return t[nr]
	}
	return fmt.Sprintf("syscall_%d", nr)
}

// Lookup returns the number of the named syscall. Names are the kernel's,
// matched case-insensitively: "openat", "_llseek", "newfstatat".
// "syscall_<nr>" placeholders from Name are not accepted: numbers differ per
// ABI, so a rule must name the syscall.
func Lookup(arch Arch, name string, compat bool) (nr int, ok bool) {
	nr, ok = indexes()[abi{arch, compat}][strings.ToLower(name)]
	return nr, ok
}

// Names returns the names in one table, sorted. The caller owns the slice.
func Names(arch Arch, compat bool) []string {
	t := table(arch, compat)
	names := make([]string, 0, len(t))
	for _, name := range t {
		if name != "" {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

// MaxNr returns one more than the highest syscall number in the table, so
// every known number is in [0, MaxNr). It is 0 for an unknown arch.
func MaxNr(arch Arch, compat bool) int {
	return len(table(arch, compat))
}

// ParseSyscall is Lookup for user input: the error names the input and, when
// one is close, suggests a name, e.g.
//
//	unknown syscall "opnat" (did you mean "openat"?)
//	syscall "open" does not exist on arm64 (did you mean "openat"?)
func ParseSyscall(arch Arch, name string, compat bool) (int, error) {
	a := abi{arch, compat}
	if table(arch, compat) == nil {
		return 0, fmt.Errorf("unsupported arch %q (want %q or %q)", arch, AMD64, ARM64)
	}
	if nr, ok := Lookup(arch, name, compat); ok {
		return nr, nil
	}
	hint := ""
	if s := Suggest(name, Names(arch, compat)); s != "" {
		hint = fmt.Sprintf(" (did you mean %q?)", s)
	}
	for _, other := range abis {
		if _, ok := Lookup(other.arch, name, other.compat); ok {
			return 0, &parseError{fmt.Sprintf("syscall %q does not exist on %s%s", name, a, hint), ErrUnknownSyscall}
		}
	}
	return 0, &parseError{fmt.Sprintf("unknown syscall %q%s", name, hint), ErrUnknownSyscall}
}

// parseError carries a user-facing message and matches its sentinel with
// errors.Is, so the message need not repeat the sentinel's text.
type parseError struct {
	msg      string
	sentinel error
}

func (e *parseError) Error() string { return e.msg }
func (e *parseError) Unwrap() error { return e.sentinel }
