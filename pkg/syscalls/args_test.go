package syscalls

import "testing"

func TestSignature(t *testing.T) {
	for _, tc := range []struct {
		name string
		want []Arg
	}{
		{"openat", []Arg{{"dfd", ArgInt}, {"filename", ArgPath}, {"flags", ArgInt}, {"mode", ArgUint}}},
		{"stat", []Arg{{"filename", ArgPath}, {"statbuf", ArgPointer}}}, // SYSCALL_DEFINE(newstat)
		{"setuid32", []Arg{{"uid", ArgUint}}},                           // i386, same layout as setuid
		{"umount2", []Arg{{"name", ArgPath}, {"flags", ArgInt}}},
		{"connect", []Arg{{"fd", ArgInt}, {"uservaddr", ArgSockaddr}, {"addrlen", ArgInt}}},
		{"ptrace", []Arg{{"request", ArgLong}, {"pid", ArgLong}, {"addr", ArgUlong}, {"data", ArgUlong}}},
		{"unshare", []Arg{{"unshare_flags", ArgUlong}}},
	} {
		got := Signature(tc.name)
		if len(got) != len(tc.want) {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
			continue
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("%s argument %d: %+v, want %+v", tc.name, i, got[i], tc.want[i])
			}
		}
	}
	if s := Signature("socketcall"); s != nil {
		t.Errorf("socketcall multiplexes: want no signature, got %+v", s)
	}
}

// Every path-taking syscall of the native tables has its path captured.
func TestCaptureCoversPathSyscalls(t *testing.T) {
	for _, arch := range []Arch{AMD64, ARM64} {
		for _, name := range []string{"openat", "execve", "execveat", "faccessat", "newfstatat", "unlinkat", "mkdirat",
			"renameat", "fchmodat", "fchownat", "truncate", "chdir", "readlinkat", "mount", "openat2", "statx", "linkat", "symlinkat"} {
			nr, ok := Lookup(arch, name, false)
			if !ok {
				t.Fatalf("%s has no %s", arch, name)
			}
			if c := CaptureOf(arch, nr, false); c.Path < 0 {
				t.Errorf("%s %s: no path captured (%+v)", arch, name, c)
			}
		}
	}
}

func TestDecodeArg(t *testing.T) {
	for _, tc := range []struct {
		kind ArgKind
		raw  uint64
		want int64
	}{
		{ArgInt, 0xffffff9c, -100}, // AT_FDCWD as the register holds it
		{ArgInt, 0xdeadbeef00000005, 5},
		{ArgUint, 0xffffffff, 0xffffffff},
		{ArgLong, ^uint64(0), -1},
		{ArgUlong, 1 << 40, 1 << 40},
	} {
		if got := DecodeArg(tc.kind, tc.raw); got != tc.want {
			t.Errorf("DecodeArg(%d, %#x) = %d, want %d", tc.kind, tc.raw, got, tc.want)
		}
	}
}
