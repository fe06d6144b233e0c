package syscalls

import "strings"

// ArgKind says how one syscall argument decodes.
type ArgKind uint8

// Argument kinds, from the argument's C type in the kernel's SYSCALL_DEFINE.
const (
	ArgUlong    ArgKind = iota // a full unsigned register: unsigned long, size_t, u64
	ArgInt                     // a signed 32-bit value: int, pid_t, key_serial_t
	ArgUint                    // an unsigned 32-bit value: unsigned int, uid_t, umode_t
	ArgLong                    // a signed register: long, loff_t
	ArgPointer                 // a user pointer the sensor does not follow
	ArgPath                    // a user pointer to a NUL-terminated path
	ArgSockaddr                // a user pointer to a struct sockaddr; the next argument is its length
)

// Arg is one argument of a syscall: its name in the kernel source and how it
// decodes.
type Arg struct {
	Name string
	Kind ArgKind
}

// Signature returns the arguments of the named syscall (a name from the
// syscall tables, e.g. "openat", "stat", "setuid32"), or nil when the
// kernel's metadata has no entry for it: syscalls without a SYSCALL_DEFINE
// (rt_sigreturn), multiplexers such as socketcall, and 32-bit syscalls that
// split a 64-bit argument over two registers. The slice is shared: do not
// modify it.
func Signature(name string) []Arg {
	name = strings.ToLower(name)
	if a, ok := aliases[name]; ok {
		return signatures[a]
	}
	if s, ok := signatures[name]; ok {
		return s
	}
	// SYSCALL_DEFINE2(newstat, ...) implements stat, newuname uname, etc.
	return signatures["new"+name]
}

// Capture is what the kernel program reads of a failing call's arguments
// besides the six registers: argument indexes (0-5), or -1 for none.
type Capture struct {
	Path, Path2   int8 // first and second path argument
	Addr, AddrLen int8 // socket address and its length
}

// NoCapture captures nothing but the registers.
var NoCapture = Capture{-1, -1, -1, -1}

// CaptureOf returns what to capture for syscall nr of an ABI.
func CaptureOf(arch Arch, nr int, compat bool) Capture {
	c := NoCapture
	t := table(arch, compat)
	if nr < 0 || nr >= len(t) || t[nr] == "" {
		return c
	}
	for i, a := range Signature(t[nr]) {
		switch {
		case a.Kind == ArgPath && c.Path < 0:
			c.Path = int8(i)
		case a.Kind == ArgPath:
			c.Path2 = int8(i)
		case a.Kind == ArgSockaddr:
			c.Addr, c.AddrLen = int8(i), int8(i+1)
		}
	}
	return c
}

// DecodeArg returns the value of an integer argument from its raw register:
// 32-bit kinds are truncated to their width (the kernel ignores the upper
// half), signed kinds sign-extended.
func DecodeArg(kind ArgKind, raw uint64) int64 {
	switch kind {
	case ArgInt:
		return int64(int32(raw))
	case ArgUint:
		return int64(uint32(raw))
	}
	return int64(raw)
}
