package rules

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/errnowatch/errnowatch/pkg/alert"
)

// message writes the one-line summary of an alert, e.g.
//
//	pod default/web-7d9 container app: 212 failed file syscalls (EACCES 180, EPERM 32) across 3 syscalls (openat, newfstatat, access) in 5s
func message(s *ruleState, st *keyState, a *alert.Alert) string {
	var b strings.Builder
	b.WriteString(subject(a, st))
	b.WriteString(": ")

	// Per syscall and per errno totals, in the order of a.Counts (most first).
	var sysNames, errNames []string
	sysN, errN := map[string]uint64{}, map[string]uint64{}
	for _, c := range a.Counts {
		if _, ok := sysN[c.Syscall]; !ok {
			sysNames = append(sysNames, c.Syscall)
		}
		sysN[c.Syscall] += c.Count
		if _, ok := errN[c.Errno]; !ok {
			errNames = append(errNames, c.Errno)
		}
		errN[c.Errno] += c.Count
	}
	sortByTotal(sysNames, sysN)
	sortByTotal(errNames, errN)

	if a.Total > 0 {
		b.WriteString(strconv.FormatUint(a.Total, 10))
		if len(sysNames) == 1 {
			fmt.Fprintf(&b, " failed %s calls", sysNames[0])
		} else {
			fmt.Fprintf(&b, " failed %s", s.r.label)
		}
		b.WriteString(" (")
		for i, name := range errNames {
			if i == 3 {
				fmt.Fprintf(&b, ", %d more", len(errNames)-3)
				break
			}
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%s %d", name, errN[name])
		}
		b.WriteString(")")
		if len(sysNames) > 1 {
			fmt.Fprintf(&b, " across %d syscalls (", len(sysNames))
			for i, name := range sysNames {
				if i == 3 {
					b.WriteString(", ...")
					break
				}
				if i > 0 {
					b.WriteString(", ")
				}
				b.WriteString(name)
			}
			b.WriteString(")")
		}
	}
	if s.r.cond.usesDuration {
		d := summarize(st.hists)
		if a.Total > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "latency p99 %v, max %v over %d calls",
			roundDur(time.Duration(d.p99)), roundDur(time.Duration(d.max)), d.count)
	}
	span := a.LastSeen.Sub(a.FirstSeen)
	fmt.Fprintf(&b, " in %v", roundDur(span))
	// What was denied, so that every printer of the message (agent log,
	// console, alerts list) says it; the alert's Targets have the rest.
	if len(a.Targets) > 0 {
		b.WriteString("; denied: ")
		b.WriteString(alert.TargetSummary(a.Targets[:min(len(a.Targets), maxMessageTargets)]))
		if n := len(a.Targets) - maxMessageTargets; n > 0 {
			fmt.Fprintf(&b, " (+%d more)", n)
		}
	}
	return b.String()
}

// maxMessageTargets bounds the targets a message names.
const maxMessageTargets = 3

// subject names the key: "pod default/web-7d9 container app".
func subject(a *alert.Alert, st *keyState) string {
	var b strings.Builder
	switch {
	case a.GroupBy == alert.GroupByNode:
		fmt.Fprintf(&b, "node %s", orUnknown(a.Node))
		return b.String()
	case a.Host:
		if a.CgroupPath != "" {
			fmt.Fprintf(&b, "host cgroup %s", a.CgroupPath)
		} else {
			fmt.Fprintf(&b, "host cgroup %d", st.key.cgroup)
		}
	case a.Pod == "":
		// In a pod the API has not named (yet): all there is is its uid.
		fmt.Fprintf(&b, "pod uid %s cgroup %s", orUnknown(a.PodUID), orUnknown(a.CgroupPath))
	default:
		fmt.Fprintf(&b, "pod %s/%s", a.Namespace, a.Pod)
		if a.GroupBy != alert.GroupByPod && a.Container != "" {
			fmt.Fprintf(&b, " container %s", a.Container)
		}
	}
	if a.GroupBy == alert.GroupByProcess {
		comm := st.key.comm
		if comm == "" {
			comm = "(unknown)"
		}
		fmt.Fprintf(&b, " process %s", comm)
		var pids []uint32
		for _, p := range a.Processes {
			if p.Comm == st.key.comm {
				pids = append(pids, p.PID)
			}
		}
		if len(pids) == 1 {
			fmt.Fprintf(&b, " (pid %d)", pids[0])
		} else if len(pids) > 1 {
			fmt.Fprintf(&b, " (%d pids)", len(pids))
		}
	}
	return b.String()
}

func orUnknown(s string) string {
	if s == "" {
		return "(unknown)"
	}
	return s
}

// roundDur keeps durations readable: whole seconds above 10s, ms below.
func roundDur(d time.Duration) time.Duration {
	switch {
	case d >= 10*time.Second:
		return d.Round(time.Second)
	case d >= time.Second:
		return d.Round(100 * time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(time.Millisecond)
	case d >= time.Microsecond:
		return d.Round(time.Microsecond)
	}
	return d
}

func sortByTotal(names []string, n map[string]uint64) {
	// Stable insertion sort: a handful of names, ties keep first-seen order.
	for i := 1; i < len(names); i++ {
		for j := i; j > 0 && n[names[j]] > n[names[j-1]]; j-- {
			names[j], names[j-1] = names[j-1], names[j]
		}
	}
}
