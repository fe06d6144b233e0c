// Package console holds errnowatch's standalone terminal views, `trace` and
// `top`: they run the node pipeline (pkg/pipeline) on this host, with or
// without a cluster, and print records, exact counts and alerts as tables
// or JSON lines (the trace line is enrich.Line, which `rules test`
// replays). cmd/errnowatch only parses flags into the Options here.
package console

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/errnowatch/errnowatch/pkg/cgroup"
	"github.com/errnowatch/errnowatch/pkg/sensor"
	"github.com/errnowatch/errnowatch/pkg/syscalls"
)

// FilterFlags are the filter flags trace and top share, as the user typed
// them.
type FilterFlags struct {
	Syscalls []string // names; a leading "!" or "-" denies instead
	Errnos   []string // names or numbers
	Cgroups  []string // cgroup paths (relative to the v2 root or absolute) or ids
	All      bool     // successful exits too
	Sample   uint32   // with All: count 1 in N successes
}

// Build turns the flags into a kernel filter. Unknown names are rejected
// with the closest valid name; a syscall name is taken in every table it
// exists in (64-bit and 32-bit compat).
func (f FilterFlags) Build(mount string) (sensor.Filter, error) {
	out := sensor.Filter{AllExits: f.All, SuccessSampleN: f.Sample}
	arch := syscalls.Native()
	var errs []error
	for _, raw := range splitList(f.Syscalls) {
		name, deny := strings.CutPrefix(raw, "!")
		if !deny {
			name, deny = strings.CutPrefix(raw, "-")
		}
		ids, err := syscallIDs(arch, name)
		if err != nil {
			errs = append(errs, fmt.Errorf("--syscall: %w", err))
			continue
		}
		if deny {
			out.DenySyscalls = append(out.DenySyscalls, ids...)
		} else {
			out.AllowSyscalls = append(out.AllowSyscalls, ids...)
		}
	}
	for _, name := range splitList(f.Errnos) {
		e, err := syscalls.ParseErrno(name)
		if err != nil {
			errs = append(errs, fmt.Errorf("--errno: %w", err))
			continue
		}
		out.Errnos = append(out.Errnos, e)
	}
	for _, c := range splitList(f.Cgroups) {
		id, err := cgroupID(mount, c)
		if err != nil {
			errs = append(errs, fmt.Errorf("--cgroup: %w", err))
			continue
		}
		out.IncludeCgroups = append(out.IncludeCgroups, id)
	}
	if len(out.AllowSyscalls) > 0 && len(out.DenySyscalls) > 0 {
		errs = append(errs, errors.New("--syscall: give either names to watch or !names to ignore, not both"))
	}
	return out, errors.Join(errs...)
}

// syscallIDs resolves a name in the native and the compat table.
func syscallIDs(arch syscalls.Arch, name string) ([]sensor.SyscallID, error) {
	var ids []sensor.SyscallID
	nr, err := syscalls.ParseSyscall(arch, name, false)
	if err == nil {
		ids = append(ids, sensor.SyscallID{Nr: nr})
	}
	if cnr, ok := syscalls.Lookup(arch, name, true); ok {
		ids = append(ids, sensor.SyscallID{Nr: cnr, Compat: true})
	}
	if len(ids) == 0 {
		return nil, err
	}
	return ids, nil
}

func cgroupID(mount, s string) (uint64, error) {
	if id, err := strconv.ParseUint(s, 10, 64); err == nil {
		return id, nil
	}
	dir := s
	if !strings.HasPrefix(s, mount+"/") && s != mount {
		dir = mount + "/" + strings.TrimPrefix(s, "/")
	}
	id, err := cgroup.ID(dir)
	if err != nil {
		return 0, fmt.Errorf("cgroup %q: %w (give a path below %s, or a cgroup id)", s, err, mount)
	}
	return id, nil
}

// splitList accepts both repeated flags and comma-separated values.
func splitList(in []string) []string {
	var out []string
	for _, s := range in {
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}
