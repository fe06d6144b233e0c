package sensor

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"
)

// recordSize is the size of struct record in bpf/errnowatch.c. A test checks
// it, and every offset below, against the bpf2go mirror generated from BTF.
const recordSize = 72

// Offsets of struct record's fields.
const (
	offTS       = 0
	offCgroup   = 8
	offRet      = 16
	offDuration = 24
	offPID      = 32
	offTID      = 36
	offUID      = 40
	offNr       = 44
	offComm     = 48
	offCompat   = 64
)

// nrNone is how the kernel program writes syscall number -1: an exit with
// no syscall, e.g. one a tracer or seccomp cancelled.
const nrNone = 0x7fffffff

func syscallNr(nr uint32) int32 {
	if nr == nrNone {
		return -1
	}
	return int32(nr)
}

// Clock converts the kernel's CLOCK_MONOTONIC timestamps to wall-clock time.
type Clock struct {
	// Boot is the wall-clock time at which CLOCK_MONOTONIC was zero.
	Boot time.Time
}

// Wall returns the wall-clock time of a monotonic timestamp.
func (c Clock) Wall(monoNS uint64) time.Time {
	return c.Boot.Add(time.Duration(monoNS))
}

// DecodeRecord decodes one ring-buffer sample. Decoding by hand, not with
// encoding/binary's reflection, keeps the reader at a few nanoseconds per
// record; the layout test pins the offsets.
func DecodeRecord(b []byte, clock Clock) (Record, error) {
	if len(b) < recordSize {
		return Record{}, fmt.Errorf("record is %d bytes, want %d: the BPF object and this binary disagree", len(b), recordSize)
	}
	le := binary.LittleEndian
	r := Record{
		MonoNS:     le.Uint64(b[offTS:]),
		CgroupID:   le.Uint64(b[offCgroup:]),
		Ret:        int64(le.Uint64(b[offRet:])),
		DurationNS: le.Uint64(b[offDuration:]),
		PID:        le.Uint32(b[offPID:]),
		TID:        le.Uint32(b[offTID:]),
		UID:        le.Uint32(b[offUID:]),
		Compat:     b[offCompat] != 0,
	}
	nr := le.Uint32(b[offNr:])
	if nr > 1<<20 && nr != nrNone {
		return Record{}, fmt.Errorf("record has syscall number %d, beyond any syscall table", nr)
	}
	r.Syscall = syscallNr(nr)
	comm := b[offComm : offComm+16]
	if i := bytes.IndexByte(comm, 0); i >= 0 {
		comm = comm[:i]
	}
	r.Comm = string(comm)
	r.Time = clock.Wall(r.MonoNS)
	return r, nil
}
