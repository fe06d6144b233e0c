package rules

import (
	"testing"

	"github.com/errnowatch/errnowatch/pkg/alert"
	"github.com/errnowatch/errnowatch/pkg/enrich"
	"github.com/errnowatch/errnowatch/pkg/sensor"
)

// overflow adds a cgroup's overflow count, as sensor.Drain reports it.
func (bb *batchBuilder) overflow(s src, n uint64) *batchBuilder {
	bb.b.Counts = append(bb.b.Counts, enrich.Count{
		Count: sensor.Count{Key: sensor.Key{CgroupID: s.cgroup, Syscall: sensor.OverflowSyscall, Errno: sensor.OverflowErrno}, Count: n},
		Meta:  s.meta,
	})
	return bb
}

// A pod's overflow count raises the built-in evasion alert on that pod,
// with the process its overflow records name; a pod without overflow
// raises nothing, and a rule over every failure still counts the overflow.
func TestOverflowRaisesEvasionAlert(t *testing.T) {
	e := newEngine(t, `
rules:
  - id: any-burst
    severity: low
    condition: count >= 1000
    group_by: pod
`)
	flood := src{pod("attack", "flooder", "app", 7, nil), 7}
	quiet := src{pod("default", "web", "app", 8, nil), 8}
	b := newBatch(t, 1).overflow(flood, 5000).count(flood, "getpriority", "EPERM", 10).count(quiet, "openat", "ENOENT", 3)
	b.b.Records = append(b.b.Records, enrich.Record{Record: sensor.Record{Time: at(1), PID: 4242, TID: 4242, Comm: "flood",
		CgroupID: 7, Syscall: sensor.OverflowSyscall, Ret: -22}, Meta: flood.meta})
	got := e.Process(b.get())
	var ev *alert.Alert
	for i := range got {
		if got[i].RuleID == EvasionRuleID {
			if ev != nil {
				t.Fatalf("two evasion alerts: %v", ruleIDs(got))
			}
			ev = &got[i]
		}
	}
	if ev == nil {
		t.Fatalf("no evasion alert; got %v", ruleIDs(got))
	}
	if ev.Namespace != "attack" || ev.Pod != "flooder" || ev.PodUID != "uid-flooder" || ev.Total != 5000 ||
		ev.Severity != alert.SeverityHigh || ev.GroupBy != alert.GroupByPod {
		t.Errorf("evasion alert: %+v", ev)
	}
	if len(ev.Counts) != 1 || ev.Counts[0] != (alert.Count{Syscall: "(overflow)", Errno: "(any)", Count: 5000}) {
		t.Errorf("evasion counts %+v", ev.Counts)
	}
	if len(ev.Processes) != 1 || ev.Processes[0].PID != 4242 {
		t.Errorf("evasion processes %+v, want pid 4242", ev.Processes)
	}
	if err := ev.Validate(); err != nil {
		t.Error(err)
	}
	t.Log(ev.Message)
	// The every-failure rule counted the overflow with the rest.
	if !containsAlert(got, "any-burst", "flooder", 5010) {
		t.Errorf("any-burst did not count the overflow: %+v", got)
	}
	// A rule file may replace the built-in: here, by one that never fires.
	e.SetRules(mustParse(t, `
rules:
  - id: errnowatch.sensor.evasion
    severity: low
    match: {syscalls: [openat]}
    enabled: false
`))
	if got := e.Process(newBatch(t, 2).overflow(flood, 1).get()); len(got) != 0 {
		t.Errorf("a disabled replacement still raised %v", ruleIDs(got))
	}
}

func containsAlert(as []alert.Alert, rule, pod string, total uint64) bool {
	for _, a := range as {
		if a.RuleID == rule && a.Pod == pod && a.Total == total {
			return true
		}
	}
	return false
}

// A workload failing with many errnos on every syscall cannot grow the
// engine's dispatch cache past its bound, and an open alert keeps at most
// maxAlertCounts distinct counts, the rest summed exactly.
func TestPerKeyStateIsBounded(t *testing.T) {
	e := NewEngine(mustParse(t, `
rules:
  - id: any
    severity: low
    cooldown: 1h
`), Config{MaxDispatch: 100})
	p := src{pod("attack", "flooder", "app", 7, nil), 7}
	var total uint64
	// Errnos 1..500: the kernel-internal ones above 511 are no rule's.
	for n := 1; n <= 20; n++ {
		b := newBatch(t, n)
		for i := 0; i < 300; i++ {
			b.b.Counts = append(b.b.Counts, enrich.Count{Count: sensor.Count{Key: sensor.Key{CgroupID: 7,
				Syscall: int32(i % 400), Errno: uint16(1 + (n*300+i)%500)}, Count: 2}, Meta: p.meta})
			total += 2
		}
		e.Process(b.get())
		if st := e.Stats(); st.DispatchKeys > 100 {
			t.Fatalf("batch %d: dispatch cache holds %d keys, bound 100", n, st.DispatchKeys)
		}
	}
	if st := e.Stats(); st.DispatchResets == 0 {
		t.Errorf("6000 distinct keys never filled a 100-key cache: %+v", st)
	}
	out := e.Flush()
	if len(out) != 1 {
		t.Fatalf("flush: %v", ruleIDs(out))
	}
	if a := out[0]; len(a.Counts) > maxAlertCounts+1 || a.Total != total {
		t.Errorf("alert keeps %d counts (bound %d+1), total %d (made %d)", len(a.Counts), maxAlertCounts, a.Total, total)
	}
}
