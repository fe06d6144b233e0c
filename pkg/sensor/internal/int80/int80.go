// Package int80 makes 32-bit compat syscalls from a 64-bit process through
// the int $0x80 gate, for the sensor's compat tests. Many virtual machines
// fault on the gate: callers run it in a child process and treat a crash as
// "not available here".
package int80

// Available tells whether this architecture has the gate at all.
const Available = available
