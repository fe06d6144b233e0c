//go:build linux

package syscalls

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// Errno values are linux-only here on purpose: unix.ErrnoName numbers errors
// the way the build target's OS does, and the numbers on, say, darwin differ
// (EAGAIN is 35 there). Better not to compile than to name errors wrongly.

// MaxErrno is the largest errno a syscall can return (the kernel's MAX_ERRNO).
const MaxErrno = 4095

// ErrUnknownErrno is wrapped by the errors of ParseErrno.
var ErrUnknownErrno = errors.New("unknown errno")

// errnoAliases are second names for numbers unix.ErrnoName already names
// (its choice is in the comment). Values come from x/sys, not from here.
var errnoAliases = map[string]syscall.Errno{
	"EWOULDBLOCK": unix.EWOULDBLOCK, // EAGAIN
	"EDEADLOCK":   unix.EDEADLOCK,   // EDEADLK
	"EOPNOTSUPP":  unix.EOPNOTSUPP,  // ENOTSUP; the kernel's own name
	"EUCLEAN":     unix.EUCLEAN,     // EFSCORRUPTED; the name in uapi and strace
}

// kernelErrnos are codes from the kernel's include/linux/errno.h, which no
// library exports because user space never sees them. raw_syscalls:sys_exit
// does: it fires before signal delivery rewrites ERESTART* into EINTR or a
// restart, and ENOTSUPP and ENOIOCTLCMD occasionally leak from drivers. Without
// names these would show up as errno_512 and friends. Stable since 2.6.
var kernelErrnos = map[uint16]string{
	512: "ERESTARTSYS",
	513: "ERESTARTNOINTR",
	514: "ERESTARTNOHAND",
	515: "ENOIOCTLCMD",
	516: "ERESTART_RESTARTBLOCK",
	517: "EPROBE_DEFER",
	518: "EOPENSTALE",
	519: "ENOPARAM",
	521: "EBADHANDLE",
	522: "ENOTSYNC",
	523: "EBADCOOKIE",
	524: "ENOTSUPP",
	525: "ETOOSMALL",
	526: "ESERVERFAULT",
	527: "EBADTYPE",
	528: "EJUKEBOX",
	529: "EIOCBQUEUED",
}

type errnoTable struct {
	names  [MaxErrno + 1]string // canonical name by number, "" if unnamed
	byName map[string]uint16    // upper-case canonical names and aliases
	all    []string             // every accepted name, for suggestions
}

var errnos = sync.OnceValue(func() *errnoTable {
	t := &errnoTable{byName: map[string]uint16{}}
	for e := uint16(1); e <= MaxErrno; e++ {
		name := unix.ErrnoName(syscall.Errno(e))
		if name == "" {
			name = kernelErrnos[e]
		}
		if name != "" {
			t.names[e] = name
			t.byName[name] = e
			t.all = append(t.all, name)
		}
	}
	for name, e := range errnoAliases {
		t.byName[name] = uint16(e)
	}
	t.all = append(t.all, slices.Sorted(maps.Keys(errnoAliases))...)
	return t
})

// ErrnoName returns the name of a positive errno value, e.g. "ENOENT" for 2,
// or "errno_<e>" when it has none. Where Linux has two names for a number the
// one unix.ErrnoName picks wins: EAGAIN, EDEADLK, ENOTSUP, EFSCORRUPTED.
func ErrnoName(e uint16) string {
	if e <= MaxErrno {
		if name := errnos().names[e]; name != "" {
			return name
		}
	}
	return fmt.Sprintf("errno_%d", e)
}

// ErrnoNumber returns the errno value for a name in any case ("ENOENT",
// "enoent"), an alias ("EWOULDBLOCK"), a decimal number ("2") or an
// "errno_<n>" placeholder from ErrnoName. Numbers must be in 1..MaxErrno.
func ErrnoNumber(name string) (uint16, bool) {
	s := strings.ToUpper(strings.TrimSpace(name))
	if e, ok := errnos().byName[s]; ok {
		return e, true
	}
	s = strings.TrimPrefix(s, "ERRNO_")
	if n, err := strconv.ParseUint(s, 10, 16); err == nil && n >= 1 && n <= MaxErrno {
		return uint16(n), true
	}
	return 0, false
}

// ParseErrno is ErrnoNumber for user input, with an error that suggests a
// close name: unknown errno "ENOENTT" (did you mean "ENOENT"?).
func ParseErrno(name string) (uint16, error) {
	if e, ok := ErrnoNumber(name); ok {
		return e, nil
	}
	if n, err := strconv.ParseUint(strings.TrimSpace(name), 10, 64); err == nil {
		return 0, &parseError{fmt.Sprintf("errno %d out of range 1..%d", n, MaxErrno), ErrUnknownErrno}
	}
	msg := fmt.Sprintf("unknown errno %q", name)
	if s := Suggest(name, errnos().all); s != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", s)
	}
	return 0, &parseError{msg, ErrUnknownErrno}
}

// IsKernelInternal reports whether e is one of the kernel-internal codes
// (512..529) that user space never receives. ERESTARTSYS and friends appear
// at sys_exit whenever a signal interrupts a blocking syscall, so counting
// them as failures is usually noise.
func IsKernelInternal(e uint16) bool {
	_, ok := kernelErrnos[e]
	return ok
}
