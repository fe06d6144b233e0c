//go:build linux

package syscalls

import (
	"errors"
	"testing"
)

func TestErrnoName(t *testing.T) {
	for e, want := range map[uint16]string{
		1:    "EPERM",
		2:    "ENOENT",
		11:   "EAGAIN",
		13:   "EACCES",
		38:   "ENOSYS",
		512:  "ERESTARTSYS",
		524:  "ENOTSUPP",
		41:   "errno_41", // a hole in the Linux numbering
		4000: "errno_4000",
		0:    "errno_0",
		5000: "errno_5000",
	} {
		if got := ErrnoName(e); got != want {
			t.Errorf("ErrnoName(%d) = %q, want %q", e, got, want)
		}
	}
}

func TestErrnoNumber(t *testing.T) {
	for name, want := range map[string]uint16{
		"ENOENT":      2,
		"enoent":      2,
		"2":           2,
		"4095":        4095,
		"errno_4000":  4000,
		"EWOULDBLOCK": 11,
		"EAGAIN":      11,
		"EDEADLOCK":   35,
		"EDEADLK":     35,
		"ENOTSUP":     95,
		"EOPNOTSUPP":  95,
		"EUCLEAN":     117,
		"ERESTARTSYS": 512,
	} {
		if got, ok := ErrnoNumber(name); !ok || got != want {
			t.Errorf("ErrnoNumber(%q) = %d, %v, want %d", name, got, ok, want)
		}
	}
	for _, name := range []string{"", "0", "4096", "-2", "ENOENTT", "errno_", "0x2"} {
		if got, ok := ErrnoNumber(name); ok {
			t.Errorf("ErrnoNumber(%q) = %d, want not found", name, got)
		}
	}
	// Every name ErrnoName produces must parse back to its number.
	for e := uint16(1); e <= MaxErrno; e++ {
		if got, ok := ErrnoNumber(ErrnoName(e)); !ok || got != e {
			t.Errorf("ErrnoNumber(ErrnoName(%d) = %q) = %d, %v", e, ErrnoName(e), got, ok)
		}
	}
}

func TestParseErrno(t *testing.T) {
	if e, err := ParseErrno("EACCES"); err != nil || e != 13 {
		t.Fatalf("ParseErrno(EACCES) = %d, %v", e, err)
	}
	for input, want := range map[string]string{
		"ENOENTT":    `unknown errno "ENOENTT" (did you mean "ENOENT"?)`,
		"EACCESS":    `unknown errno "EACCESS" (did you mean "EACCES"?)`,
		"ewouldblok": `unknown errno "ewouldblok" (did you mean "EWOULDBLOCK"?)`,
		"qqqqqqqqqq": `unknown errno "qqqqqqqqqq"`,
		"5000":       `errno 5000 out of range 1..4095`,
	} {
		_, err := ParseErrno(input)
		if err == nil || err.Error() != want {
			t.Errorf("ParseErrno(%q) error = %v, want %s", input, err, want)
		}
		if !errors.Is(err, ErrUnknownErrno) {
			t.Errorf("ParseErrno(%q) error does not wrap ErrUnknownErrno", input)
		}
	}
}

func TestIsKernelInternal(t *testing.T) {
	if !IsKernelInternal(512) || !IsKernelInternal(516) || IsKernelInternal(4) || IsKernelInternal(520) {
		t.Error("IsKernelInternal misclassifies")
	}
}
