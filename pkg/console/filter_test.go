package console

import (
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/errnowatch/errnowatch/pkg/cgroup/cgrouptest"
	"github.com/errnowatch/errnowatch/pkg/sensor"
)

func TestFilterFlagsBuild(t *testing.T) {
	cg := cgrouptest.New(t, "ew-console-filter")
	f, err := FilterFlags{
		Syscalls: []string{"openat,close"},
		Errnos:   []string{"ENOENT", "13"},
		Cgroups:  []string{cg.Rel, "4242"},
		All:      true, Sample: 10,
	}.Build(cg.Mount)
	if err != nil {
		t.Fatal(err)
	}
	has := func(ids []sensor.SyscallID, want sensor.SyscallID) bool {
		for _, id := range ids {
			if id == want {
				return true
			}
		}
		return false
	}
	// close exists in both tables (i386 close is 6); openat too (295).
	for _, want := range []sensor.SyscallID{{Nr: unix.SYS_OPENAT}, {Nr: unix.SYS_CLOSE}, {Nr: 6, Compat: true}, {Nr: 295, Compat: true}} {
		if !has(f.AllowSyscalls, want) {
			t.Errorf("allow list %v lacks %v", f.AllowSyscalls, want)
		}
	}
	if len(f.Errnos) != 2 || f.Errnos[0] != uint16(unix.ENOENT) || f.Errnos[1] != uint16(unix.EACCES) {
		t.Errorf("errnos %v, want ENOENT and EACCES", f.Errnos)
	}
	if len(f.IncludeCgroups) != 2 || f.IncludeCgroups[0] != cg.ID || f.IncludeCgroups[1] != 4242 {
		t.Errorf("cgroups %v, want %d and 4242", f.IncludeCgroups, cg.ID)
	}
	if !f.AllExits || f.SuccessSampleN != 10 {
		t.Errorf("all %v sample %d", f.AllExits, f.SuccessSampleN)
	}

	deny, err := FilterFlags{Syscalls: []string{"!futex"}}.Build(cg.Mount)
	if err != nil || len(deny.DenySyscalls) == 0 || len(deny.AllowSyscalls) != 0 {
		t.Errorf("!futex gave %+v, %v", deny, err)
	}

	_, err = FilterFlags{Syscalls: []string{"opnat", "futex", "!close"}, Errnos: []string{"EACCESS"}, Cgroups: []string{"/no/such/cgroup"}}.Build(cg.Mount)
	for _, want := range []string{`"opnat" (did you mean "openat"?)`, `"EACCESS" (did you mean "EACCES"?)`, "/no/such/cgroup", "not both"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not say %s", err, want)
		}
	}
}
