package sensor

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"
)

// recordSize is the size of struct record in bpf/errnowatch.c: fixed, so
// every sample in the ring is bounded. A test checks it, and every offset
// below, against the bpf2go mirror generated from BTF.
const recordSize = 760

// PathMax and AddrMax are the kernel's ARG_PATH_MAX and ARG_ADDR_MAX: a path
// keeps at most PathMax-1 bytes, an address at most AddrMax.
const (
	PathMax = 256
	AddrMax = 128
)

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
	offFlags    = 66
	offAddrLen  = 68
	offArgs     = 72
	offPath     = 120
	offPath2    = offPath + PathMax
	offAddr     = offPath2 + PathMax
)

// The kernel's enum record_flags.
const (
	flagPathTruncated   = 1 << 0
	flagPathUnreadable  = 1 << 1
	flagPath2Truncated  = 1 << 2
	flagPath2Unreadable = 1 << 3
	flagAddrUnreadable  = 1 << 4
	flagHasPath         = 1 << 5
	flagHasPath2        = 1 << 6
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
	for i := range r.Args {
		r.Args[i] = le.Uint64(b[offArgs+8*i:])
	}
	flags := le.Uint16(b[offFlags:])
	if flags&flagHasPath != 0 {
		r.Path = cString(b[offPath : offPath+PathMax])
	}
	if flags&flagHasPath2 != 0 {
		r.Path2 = cString(b[offPath2 : offPath2+PathMax])
	}
	r.PathTruncated = flags&flagPathTruncated != 0
	r.PathUnreadable = flags&flagPathUnreadable != 0
	r.Path2Truncated = flags&flagPath2Truncated != 0
	r.Path2Unreadable = flags&flagPath2Unreadable != 0
	r.AddrUnreadable = flags&flagAddrUnreadable != 0
	n := int(le.Uint16(b[offAddrLen:]))
	if n > AddrMax {
		return Record{}, fmt.Errorf("record has a %d-byte address, the kernel copies at most %d", n, AddrMax)
	}
	r.Addr = DecodeSockaddr(b[offAddr : offAddr+n])
	return r, nil
}

// cString is b up to its first NUL.
func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// DecodeSockaddr decodes the bytes of a struct sockaddr as a program passed
// it to connect, bind or sendto. Too short an address keeps only what it
// has: the family, when there are two bytes of it.
func DecodeSockaddr(b []byte) SockAddr {
	if len(b) < 2 {
		return SockAddr{}
	}
	a := SockAddr{Family: binary.LittleEndian.Uint16(b)}
	switch a.Family {
	case unix.AF_INET:
		if len(b) >= 8 {
			a.Port = binary.BigEndian.Uint16(b[2:])
			a.IP = netip.AddrFrom4([4]byte(b[4:8]))
		}
	case unix.AF_INET6:
		if len(b) >= 24 {
			a.Port = binary.BigEndian.Uint16(b[2:])
			a.IP = netip.AddrFrom16([16]byte(b[8:24]))
		}
	case unix.AF_UNIX:
		p := b[2:]
		if len(p) > 0 && p[0] == 0 {
			// An abstract socket: the name is every byte after the NUL,
			// written with a leading @ as ss and netstat do.
			a.Unix = "@" + string(bytes.TrimRight(p[1:], "\x00"))
		} else {
			a.Unix = cString(p)
		}
	}
	return a
}
