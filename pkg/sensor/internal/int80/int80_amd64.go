package int80

const available = true

// Syscall makes i386 syscall nr with up to three arguments through
// int $0x80 and returns the raw result (a negative errno on failure).
func Syscall(nr, a1, a2, a3 uintptr) int64
