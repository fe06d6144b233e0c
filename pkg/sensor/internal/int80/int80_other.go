//go:build !amd64

package int80

const available = false

// Syscall is not available on this architecture.
func Syscall(nr, a1, a2, a3 uintptr) int64 { panic("int $0x80 exists only on amd64") }
