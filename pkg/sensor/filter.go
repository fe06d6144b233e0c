package sensor

import (
	"fmt"
	"maps"
	"slices"

	"github.com/cilium/ebpf"
)

// Filter is what the kernel program counts and records. The sensor applies
// a new Filter at run time without reloading anything.
type Filter struct {
	// AllExits counts successful exits too (as errno 0); by default only
	// failures are seen.
	AllExits bool
	// SuccessSampleN counts one in N successful exits when AllExits is on
	// (0 or 1: every one). Success counts are then estimates; failure
	// counts stay exact.
	SuccessSampleN uint32

	// AllowSyscalls, when not empty, limits the sensor to these syscalls.
	AllowSyscalls []SyscallID
	// DenySyscalls ignores these syscalls. It cannot be combined with
	// AllowSyscalls.
	DenySyscalls []SyscallID
	// Errnos, when not empty, limits failures to these errnos.
	Errnos []uint16

	// IncludeCgroups, when not empty, limits the sensor to these cgroup ids
	// and to cgroups up to two levels below one of them that the sets do
	// not name: a pod's cgroup brings in its containers from their first
	// syscall, and cgroups a container makes inside its own.
	IncludeCgroups []uint64
	// ExcludeCgroups ignores these cgroup ids (it wins over an include).
	// It matches a cgroup itself, not the cgroups below it.
	ExcludeCgroups []uint64
}

// SyscallID is a syscall number in the native (Compat false) or 32-bit
// compat table.
type SyscallID struct {
	Nr     int
	Compat bool
}

// MaxSyscallNr bounds the syscall numbers a filter can name: the kernel
// program keeps a 1024-bit set per table.
const MaxSyscallNr = 1023

func (f *Filter) validate() error {
	if len(f.AllowSyscalls) > 0 && len(f.DenySyscalls) > 0 {
		return fmt.Errorf("filter: allow and deny syscall lists cannot be combined; use one")
	}
	for _, l := range [][]SyscallID{f.AllowSyscalls, f.DenySyscalls} {
		for _, s := range l {
			if s.Nr < 0 || s.Nr > MaxSyscallNr {
				return fmt.Errorf("filter: syscall number %d is outside 0..%d", s.Nr, MaxSyscallNr)
			}
		}
	}
	for _, e := range f.Errnos {
		if e == 0 || e > MaxErrno {
			return fmt.Errorf("filter: errno %d is outside 1..%d", e, MaxErrno)
		}
	}
	return nil
}

// Kernel filter modes (enum syscall_filter_mode, enum cgroup_filter_mode).
const (
	syscallsAll   = 0
	syscallsAllow = 1
	syscallsDeny  = 2

	cgroupsAll     = 0
	cgroupsInclude = 1
	cgroupsExclude = 2

	verdictInclude = 1
	verdictExclude = 2
)

// SetFilter replaces the kernel program's filter. Sets are written before
// the mode that turns them on, so a change never opens a moment in which a
// half-written set applies.
func (s *Sensor) SetFilter(f Filter) error {
	if err := f.validate(); err != nil {
		return err
	}
	s.filterMu.Lock()
	defer s.filterMu.Unlock()

	kcfg := s.settings.config()

	var bits [2][MaxSyscallNr/64 + 1]uint64
	mode := uint32(syscallsAll)
	list := f.AllowSyscalls
	if len(list) > 0 {
		mode = syscallsAllow
	} else if len(f.DenySyscalls) > 0 {
		mode, list = syscallsDeny, f.DenySyscalls
	}
	for _, id := range list {
		t := 0
		if id.Compat {
			t = 1
		}
		bits[t][id.Nr/64] |= 1 << (id.Nr % 64)
	}
	var errnoBits [(MaxErrno + 1) / 64]uint64
	for _, e := range f.Errnos {
		errnoBits[e/64] |= 1 << (e % 64)
	}

	// Narrowing modes go last, widening ones first.
	kcfg.SyscallMode, kcfg.ErrnoAllow = syscallsAll, 0
	kcfg.AllExits = b2u(f.AllExits)
	kcfg.SuccessSample = f.SuccessSampleN
	if err := s.settings.setConfig(kcfg); err != nil {
		return err
	}
	if err := s.objs.SyscallBits.Set(bits); err != nil {
		return fmt.Errorf("write syscall filter: %w", err)
	}
	if err := s.objs.ErrnoBits.Set(errnoBits); err != nil {
		return fmt.Errorf("write errno filter: %w", err)
	}
	if err := s.setCgroups(&kcfg, f.IncludeCgroups, f.ExcludeCgroups); err != nil {
		return err
	}
	kcfg.SyscallMode = mode
	kcfg.ErrnoAllow = b2u(len(f.Errnos) > 0)
	if err := s.settings.setConfig(kcfg); err != nil {
		return err
	}
	s.cfg.Filter = f
	return nil
}

// SetCgroups replaces only the cgroup part of the filter (IncludeCgroups and
// ExcludeCgroups, with their meaning) and leaves the rest in force. It is
// for the enricher's scope, which keeps the cgroup sets current as pods come
// and go while the rest of the filter belongs to whoever loaded the sensor.
func (s *Sensor) SetCgroups(include, exclude []uint64) error {
	s.filterMu.Lock()
	defer s.filterMu.Unlock()
	kcfg := s.settings.config()
	if err := s.setCgroups(&kcfg, include, exclude); err != nil {
		return err
	}
	s.cfg.Filter.IncludeCgroups = slices.Clone(include)
	s.cfg.Filter.ExcludeCgroups = slices.Clone(exclude)
	return nil
}

// setCgroups brings the kernel's cgroup set to include/exclude with as few
// map writes as it can: scopes of thousands of pods change a few cgroups at
// a time.
func (s *Sensor) setCgroups(kcfg *bpfConfig, include, exclude []uint64) error {
	want := make(map[uint64]uint32, len(include)+len(exclude))
	for _, id := range include {
		want[id] = verdictInclude
	}
	for _, id := range exclude {
		want[id] = verdictExclude
	}
	mode := uint32(cgroupsAll)
	switch {
	case len(include) > 0:
		mode = cgroupsInclude
	case len(exclude) > 0:
		mode = cgroupsExclude
	}
	// Widen first, narrow last: add before remove, and count everything
	// while the set is rewritten unless the new mode is include-only.
	if mode != cgroupsInclude {
		kcfg.CgroupMode = cgroupsAll
		if err := s.settings.setConfig(*kcfg); err != nil {
			return err
		}
	}
	for id, v := range want {
		if s.cgroups[id] == v {
			continue
		}
		if err := s.objs.CgroupFilter.Update(id, v, ebpf.UpdateAny); err != nil {
			return fmt.Errorf("add cgroup %d to filter (at most %d cgroups): %w", id, s.objs.CgroupFilter.MaxEntries(), err)
		}
		s.cgroups[id] = v
	}
	for _, id := range slices.Sorted(maps.Keys(s.cgroups)) {
		if _, ok := want[id]; !ok {
			if err := s.objs.CgroupFilter.Delete(id); err != nil {
				return fmt.Errorf("remove cgroup %d from filter: %w", id, err)
			}
			delete(s.cgroups, id)
		}
	}
	kcfg.CgroupMode = mode
	return s.settings.setConfig(*kcfg)
}

// Filter returns the filter in force.
func (s *Sensor) Filter() Filter {
	s.filterMu.Lock()
	defer s.filterMu.Unlock()
	return s.cfg.Filter
}
