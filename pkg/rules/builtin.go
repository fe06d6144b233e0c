package rules

import (
	"fmt"
	"strings"

	"github.com/errnowatch/errnowatch/pkg/alert"
	"github.com/errnowatch/errnowatch/pkg/sensor"
	"github.com/errnowatch/errnowatch/pkg/syscalls"
)

// EvasionRuleID is the built-in rule every engine runs besides its rule
// set: it raises an alert on a workload whose exits the sensor counted in
// its overflow key (sensor.OverflowSyscall), because it made more distinct
// (syscall, errno) keys in an interval than its share of the kernel's
// counts map, or found the map full. That is what a pod does that tries to
// blind the sensor by filling its map (issue 13); its failures are still
// counted exactly, only without their syscall and errno. A rule file may
// define a rule with this id to replace it (e.g. to disable it, or to
// change its severity or scope).
const EvasionRuleID = "errnowatch.sensor.evasion"

// evasionRuleYAML is the built-in rule as a rule file would write it; its
// match is set in Go because the overflow key has no syscall name.
const evasionRuleYAML = `
rules:
  - id: ` + EvasionRuleID + `
    description: >-
      A workload made more distinct failing (syscall, errno) pairs than its
      share of the sensor's count map, or found the map full: its failures
      were counted without their syscall and errno. Flooding the map is a
      way to hide other activity from the sensor.
    severity: high
    tags: [T1562.001]
    window: 10s
    group_by: pod
    condition: count >= 1
`

// evasionRule is compiled once; engines share it (rules are read-only).
var evasionRule = func() *Rule {
	rs, err := Parse("built-in", []byte(evasionRuleYAML))
	if err != nil {
		panic(fmt.Sprintf("built-in rule %s: %v", EvasionRuleID, err))
	}
	r := rs.Rules[0]
	r.sys = sysMatch{set: map[sysKey]struct{}{
		{sensor.OverflowSyscall, false}: {},
		{sensor.OverflowSyscall, true}:  {},
	}}
	// Overflow failures carry sensor.OverflowErrno; the records of those
	// exits (who made them) carry their real errno.
	for e := uint16(1); e <= syscalls.MaxErrno; e++ {
		r.errnos.add(e)
	}
	r.Match = Match{Syscalls: []string{"(overflow)"}}
	r.label = "syscalls over its share of the sensor's map"
	return r
}()

// sysName names a syscall in an alert, the sensor's pseudo keys included.
func sysName(k sysKey) string {
	switch k.nr {
	case sensor.OverflowSyscall:
		return "(overflow)"
	case sensor.InvalidSyscall:
		return "(invalid)"
	}
	return syscalls.Name(syscalls.Native(), int(k.nr), k.compat)
}

// errnoName names an errno in an alert; an overflow key's failures have
// no errno of their own.
func errnoName(k countKey) string {
	if k.sys.nr == sensor.OverflowSyscall && k.errno == sensor.OverflowErrno {
		return "(any)"
	}
	return syscalls.ErrnoName(k.errno)
}

// evasionMessage is the built-in rule's one-line summary.
func evasionMessage(st *keyState, a *alert.Alert) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d failed syscalls counted without their syscall and errno: it made more distinct failing syscall/errno pairs than its share of the sensor's map, or found the map full",
		subject(a, st), a.Total)
	fmt.Fprintf(&b, " in %v", roundDur(a.LastSeen.Sub(a.FirstSeen)))
	return b.String()
}
