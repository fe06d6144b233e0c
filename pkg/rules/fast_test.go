package rules

import (
	"strings"
	"testing"

	"github.com/errnowatch/errnowatch/pkg/enrich"
	"github.com/errnowatch/errnowatch/pkg/sensor"
)

// A rule one record decides raises its alert when the record arrives; the
// interval then updates that alert with the exact count, counting the
// record's failure once.
func TestFastPathRaisesOnTheRecord(t *testing.T) {
	web := src{pod("shop", "web-1", "app", 11, nil), 11}
	e := newEngine(t, `rules:
  - id: shadow-read
    severity: high
    match: {syscalls: [openat], errnos: [EACCES]}
    condition: records.exists(r, glob(r.path, "/etc/*shadow"))
  - id: burst
    severity: low
    match: {syscalls: [openat], errnos: [EACCES]}
    condition: count >= 1 && records.size() >= 3
`)
	// Both can hold with a count of one; burst needs more records than one,
	// so only the interval raises it.
	if len(e.fastRs) != 2 {
		t.Fatalf("fast rules: %d", len(e.fastRs))
	}
	e.Process(newBatch(t, 1).get()) // the engine's clock starts
	rec := enrich.Record{Record: sensor.Record{Time: at(1).Add(300e6), PID: 9, TID: 9, UID: 1000, Comm: "cat",
		CgroupID: web.cgroup, Syscall: sysNr(t, "openat"), Ret: -13, Path: "/etc/shadow"}, Meta: web.meta}
	other := rec
	other.Path = "/etc/passwd"
	if as := e.Fast(&other, at(1).Add(301e6)); len(as) != 0 {
		t.Fatalf("a record no rule matches raised %v", ruleIDs(as))
	}
	as := e.Fast(&rec, at(1).Add(301e6))
	if len(as) != 1 || as[0].RuleID != "shadow-read" || as[0].Revision != 1 || as[0].Total != 1 ||
		!strings.HasSuffix(as[0].Message, "denied: openat EACCES /etc/shadow ×1") || as[0].Pod != "web-1" {
		t.Fatalf("fast alerts %+v", as)
	}
	if ps := as[0].Processes; len(ps) != 1 || ps[0].PID != 9 || ps[0].Comm != "cat" || ps[0].UID != 1000 {
		t.Errorf("fast alert processes %+v, want the record's: pid 9 cat uid 1000", ps)
	}
	id := as[0].ID
	if again := e.Fast(&rec, at(1).Add(302e6)); len(again) != 0 {
		t.Fatalf("a second record raised %v while the alert is open", ruleIDs(again))
	}
	// The interval brings the exact count (3: this record's failure and
	// two more) and the records.
	b := newBatch(t, 2).count(web, "openat", "EACCES", 3)
	for _, p := range []string{"/etc/shadow", "/etc/shadow", "/etc/passwd"} {
		b.b.Records = append(b.b.Records, enrich.Record{Record: sensor.Record{Time: at(1).Add(500e6), PID: 9, TID: 9, Comm: "cat",
			CgroupID: web.cgroup, Syscall: sysNr(t, "openat"), Ret: -13, Path: p}, Meta: web.meta})
	}
	// Updates wait for the cooldown; Flush hands out the pending one.
	as = append(e.Process(b.get()), e.Flush()...)
	var upd, burst int
	for _, a := range as {
		switch a.RuleID {
		case "shadow-read":
			upd++
			if a.ID != id || a.Revision != 2 || a.Total != 3 {
				t.Errorf("interval update: id %s rev %d total %d, want %s rev 2 total 3", a.ID, a.Revision, a.Total, id)
			}
		case "burst":
			burst++
		}
	}
	if upd != 1 || burst < 1 {
		t.Errorf("interval alerts %v", ruleIDs(as))
	}
	if st := e.Stats(); st.FastRaised != 1 {
		t.Errorf("FastRaised %d", st.FastRaised)
	}
}
