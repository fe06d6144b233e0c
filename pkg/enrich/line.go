package enrich

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/errnowatch/errnowatch/pkg/sensor"
	"github.com/errnowatch/errnowatch/pkg/syscalls"
)

// Line is one record as a JSON line: what `errnowatch trace -o json` writes
// and what `errnowatch rules test` replays. Both use this one type, so a
// field trace writes is a field the replay reads.
type Line struct {
	Time       time.Time `json:"time"`
	PID        uint32    `json:"pid"`
	TID        uint32    `json:"tid"`
	Comm       string    `json:"comm"`
	UID        uint32    `json:"uid"`
	CgroupID   uint64    `json:"cgroup_id"`
	CgroupPath string    `json:"cgroup_path"`
	Syscall    string    `json:"syscall"`
	// SyscallNr is the number in the table of the machine that recorded it;
	// a replay on another architecture leaves it out and uses Syscall.
	SyscallNr *int32 `json:"syscall_nr,omitempty"`
	Compat    bool   `json:"compat"`
	// Ret is the raw return value; without it, Errno says the failure.
	Ret        *int64    `json:"ret,omitempty"`
	Errno      LineErrno `json:"errno"`
	DurationNS *uint64   `json:"duration_ns,omitempty"`

	// The failing call's arguments (see sensor.Record).
	Args            *[6]uint64 `json:"args,omitempty"`
	Path            string     `json:"path,omitempty"`
	PathTruncated   bool       `json:"path_truncated,omitempty"`
	PathUnreadable  bool       `json:"path_unreadable,omitempty"`
	Path2           string     `json:"path2,omitempty"`
	Path2Truncated  bool       `json:"path2_truncated,omitempty"`
	Path2Unreadable bool       `json:"path2_unreadable,omitempty"`
	Family          string     `json:"family,omitempty"`
	Addr            string     `json:"addr,omitempty"` // IP, or unix socket path
	Port            uint16     `json:"port,omitempty"`
	AddrUnreadable  bool       `json:"addr_unreadable,omitempty"`

	LinePod
}

// LinePod is the workload a line's cgroup belongs to; all empty for a host
// process.
type LinePod struct {
	Node      string `json:"node,omitempty"`
	Namespace string `json:"namespace,omitempty"`
	Pod       string `json:"pod,omitempty"`
	PodUID    string `json:"pod_uid,omitempty"`
	Container string `json:"container,omitempty"`
	Image     string `json:"image,omitempty"`
	Workload  string `json:"workload,omitempty"`
}

// LineErrno is an errno written as its name ("EACCES"), read as a name or
// a number (13); Set is false when the line had none.
type LineErrno struct {
	Set   bool
	Value uint16
}

// MarshalJSON writes the name, or "" for a success.
func (e LineErrno) MarshalJSON() ([]byte, error) {
	if e.Value == 0 {
		return []byte(`""`), nil
	}
	return json.Marshal(syscalls.ErrnoName(e.Value))
}

// UnmarshalJSON reads a name or a number.
func (e *LineErrno) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		s = string(b)
	}
	if s == "" || s == "0" {
		e.Set, e.Value = true, 0
		return nil
	}
	v, err := syscalls.ParseErrno(s)
	if err != nil {
		return err
	}
	e.Set, e.Value = true, v
	return nil
}

// LineOf is the line of a record on this machine's architecture.
func LineOf(r *sensor.Record, cgroupPath string, pod LinePod) Line {
	nr, ret, args := r.Syscall, r.Ret, r.Args
	l := Line{
		Time: r.Time, PID: r.PID, TID: r.TID, Comm: r.Comm, UID: r.UID, CgroupID: r.CgroupID, CgroupPath: cgroupPath,
		Syscall: syscalls.Name(syscalls.Native(), int(r.Syscall), r.Compat), SyscallNr: &nr, Compat: r.Compat,
		Ret: &ret, Errno: LineErrno{true, r.Errno()}, Args: &args,
		Path: r.Path, PathTruncated: r.PathTruncated, PathUnreadable: r.PathUnreadable,
		Path2: r.Path2, Path2Truncated: r.Path2Truncated, Path2Unreadable: r.Path2Unreadable,
		AddrUnreadable: r.AddrUnreadable, LinePod: pod,
	}
	if r.Addr.Family != 0 {
		l.Family = syscalls.FamilyName(r.Addr.Family)
		if r.Addr.IP.IsValid() {
			l.Addr, l.Port = r.Addr.IP.String(), r.Addr.Port
		} else {
			l.Addr = r.Addr.Unix
		}
	}
	return l
}

// Record is the sensor record a line describes. The syscall number is the
// recorded one when present, else the name's in this machine's tables.
func (l *Line) Record() (sensor.Record, error) {
	if l.Time.IsZero() {
		return sensor.Record{}, fmt.Errorf("record has no \"time\"")
	}
	nr, compat, err := LineSyscall(l.Syscall, l.SyscallNr, l.Compat)
	if err != nil {
		return sensor.Record{}, err
	}
	r := sensor.Record{Time: l.Time, PID: l.PID, TID: l.TID, UID: l.UID, Comm: l.Comm, CgroupID: l.CgroupID,
		Syscall: nr, Compat: compat,
		Path: l.Path, PathTruncated: l.PathTruncated, PathUnreadable: l.PathUnreadable,
		Path2: l.Path2, Path2Truncated: l.Path2Truncated, Path2Unreadable: l.Path2Unreadable,
		AddrUnreadable: l.AddrUnreadable}
	switch {
	case l.Ret != nil:
		r.Ret = *l.Ret
	case l.Errno.Set:
		r.Ret = -int64(l.Errno.Value)
	}
	if l.DurationNS != nil {
		r.DurationNS = *l.DurationNS
	}
	if l.Args != nil {
		r.Args = *l.Args
	}
	if l.Family != "" {
		f, err := syscalls.ParseFamily(l.Family)
		if err != nil {
			return sensor.Record{}, err
		}
		r.Addr.Family = f
		if ip, err := netip.ParseAddr(l.Addr); err == nil {
			r.Addr.IP, r.Addr.Port = ip, l.Port
		} else {
			r.Addr.Unix = l.Addr
		}
	}
	return r, nil
}

// LineSyscall takes the recorded number when there is one (the line was
// made on this architecture), else looks the name up, native table first.
func LineSyscall(name string, nr *int32, compat bool) (int32, bool, error) {
	if nr != nil {
		return *nr, compat, nil
	}
	if n, ok := strings.CutPrefix(name, "syscall_"); ok {
		if v, err := strconv.ParseInt(n, 10, 32); err == nil {
			return int32(v), compat, nil
		}
	}
	arch := syscalls.Native()
	if v, ok := syscalls.Lookup(arch, name, compat); ok {
		return int32(v), compat, nil
	}
	if v, ok := syscalls.Lookup(arch, name, !compat); ok {
		return int32(v), !compat, nil
	}
	_, err := syscalls.ParseSyscall(arch, name, compat)
	return 0, false, err
}
