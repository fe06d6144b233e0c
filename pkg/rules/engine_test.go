package rules

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/errnowatch/errnowatch/pkg/alert"
	"github.com/errnowatch/errnowatch/pkg/enrich"
)

func newEngine(t testing.TB, yaml string) *Engine {
	t.Helper()
	return NewEngine(mustParse(t, yaml), Config{Interval: time.Second, Node: "node-1"})
}

func TestWindowSlides(t *testing.T) {
	e := newEngine(t, `
rules:
  - id: burst
    severity: low
    match: {syscalls: [openat], errnos: [EACCES]}
    window: 3s
    cooldown: 1h
    condition: count >= 10
`)
	web := src{pod("default", "web", "app", 101, nil), 101}

	// 6 at t1, then nothing, then 6 at t4: t1 has left the 3-interval
	// window (t2..t4), so only 6 count.
	if got := e.Process(newBatch(t, 1).count(web, "openat", "EACCES", 6).get()); len(got) != 0 {
		t.Fatalf("t1: %d alerts, want none", len(got))
	}
	e.Process(newBatch(t, 2).get())
	e.Process(newBatch(t, 3).get())
	if got := e.Process(newBatch(t, 4).count(web, "openat", "EACCES", 6).get()); len(got) != 0 {
		t.Fatalf("t4: window should have dropped t1, got %v", got)
	}
	// t5: window t3..t5 holds 6 (t4) + 4 (t5) = 10.
	got := e.Process(newBatch(t, 5).count(web, "openat", "EACCES", 4).get())
	if len(got) != 1 {
		t.Fatalf("t5: %d alerts, want 1", len(got))
	}
	if got[0].Total != 10 || got[0].Revision != 1 {
		t.Errorf("t5 alert total %d rev %d, want 10 rev 1", got[0].Total, got[0].Revision)
	}
	if !got[0].FirstSeen.Equal(at(3)) || !got[0].LastSeen.Equal(at(5)) {
		t.Errorf("first/last seen %v %v, want %v %v", got[0].FirstSeen, got[0].LastSeen, at(3), at(5))
	}
	if err := got[0].Validate(); err != nil {
		t.Error(err)
	}
}

func TestWindowRoundsUpToIntervals(t *testing.T) {
	for _, tc := range []struct {
		window string
		fire   bool
	}{
		{"2s", false},    // 2 intervals: t2..t3 holds 4
		{"2500ms", true}, // rounded up to 3 intervals: t1..t3 holds 10
		{"3s", true},
	} {
		e := newEngine(t, `
rules:
  - id: r
    severity: low
    match: {syscalls: [openat]}
    window: `+tc.window+`
    condition: count >= 10
`)
		web := src{pod("default", "web", "app", 101, nil), 101}
		e.Process(newBatch(t, 1).count(web, "openat", "EACCES", 6).get())
		e.Process(newBatch(t, 2).get())
		got := e.Process(newBatch(t, 3).count(web, "openat", "EACCES", 4).get())
		if (len(got) == 1) != tc.fire {
			t.Errorf("window %s: %d alerts, want fire=%v", tc.window, len(got), tc.fire)
		}
	}
}

func TestCooldownUpdatesThenNewAlert(t *testing.T) {
	e := newEngine(t, `
rules:
  - id: r
    severity: medium
    match: {syscalls: [openat], errnos: [EACCES]}
    window: 2s
    cooldown: 5s
    condition: count >= 5
`)
	web := src{pod("default", "web", "app", 101, nil), 101}
	burst := func(n int) []alert.Alert {
		return e.Process(newBatch(t, n).count(web, "openat", "EACCES", 5).get())
	}
	quiet := func(n int) []alert.Alert { return e.Process(newBatch(t, n).get()) }

	a1 := burst(1)
	if len(a1) != 1 || a1[0].Revision != 1 || a1[0].Total != 5 {
		t.Fatalf("t1: want a new alert with 5, got %+v", a1)
	}
	id := a1[0].ID
	// Matches within the cooldown update the alert without emitting it.
	for n := 2; n <= 3; n++ {
		if got := burst(n); len(got) != 0 {
			t.Fatalf("t%d: update emitted within cooldown: %+v", n, got)
		}
	}
	quiet(4)
	quiet(5)
	// t6: 5s after the last emission, the update goes out: same ID,
	// revision 2, counting every failure since the alert was raised.
	got := burst(6)
	if len(got) != 1 || got[0].ID != id || got[0].Revision != 2 || got[0].Total != 20 || !got[0].LastSeen.Equal(at(6)) {
		t.Fatalf("t6: want update rev 2 of %s with 20, got %+v", id, got)
	}
	quiet(7)
	if got := burst(8); len(got) != 0 {
		t.Fatalf("t8: update emitted within cooldown: %+v", got)
	}
	for n := 9; n <= 10; n++ {
		if got := quiet(n); len(got) != 0 {
			t.Fatalf("t%d: unexpected %+v", n, got)
		}
	}
	// t11: the pending t8 update is due even though the pattern stopped.
	got = quiet(11)
	if len(got) != 1 || got[0].ID != id || got[0].Revision != 3 || got[0].Total != 25 || !got[0].LastSeen.Equal(at(8)) {
		t.Fatalf("t11: want pending update rev 3 with 25 last seen t8, got %+v", got)
	}
	// t13: quiet for a cooldown since t8: the alert closes silently.
	for n := 12; n <= 13; n++ {
		if got := quiet(n); len(got) != 0 {
			t.Fatalf("t%d: unexpected %+v", n, got)
		}
	}
	if s := e.Stats(); s.OpenAlerts != 0 {
		t.Fatalf("open alerts after quiet cooldown: %d", s.OpenAlerts)
	}
	got = burst(14)
	if len(got) != 1 || got[0].ID == id || got[0].Revision != 1 || got[0].Total != 5 {
		t.Fatalf("t14: want a new alert, got %+v", got)
	}
	if s := e.Stats(); s.Raised != 2 || s.Updated != 2 {
		t.Errorf("stats raised %d updated %d, want 2 and 2", s.Raised, s.Updated)
	}
}

func TestFlushEmitsPendingUpdates(t *testing.T) {
	e := newEngine(t, `
rules:
  - id: r
    severity: medium
    match: {syscalls: [openat]}
    window: 2s
    cooldown: 1m
    condition: count >= 1
`)
	web := src{pod("default", "web", "app", 101, nil), 101}
	e.Process(newBatch(t, 1).count(web, "openat", "EACCES", 1).get())
	e.Process(newBatch(t, 2).count(web, "openat", "EPERM", 2).get())
	got := e.Flush()
	if len(got) != 1 || got[0].Revision != 2 || got[0].Total != 3 || len(got[0].Counts) != 2 {
		t.Fatalf("flush: want rev 2 with 3 failures in 2 counts, got %+v", got)
	}
	if got := e.Flush(); len(got) != 0 {
		t.Fatalf("second flush re-emitted %+v", got)
	}
}

func TestGroupBy(t *testing.T) {
	app := src{pod("default", "web", "app", 1, nil), 1}
	side := src{pod("default", "web", "sidecar", 2, nil), 2}
	other := src{pod("default", "api", "app", 3, nil), 3}
	rule := func(g string, threshold string) string {
		return `
rules:
  - id: r
    severity: low
    match: {syscalls: [openat]}
    group_by: ` + g + `
    condition: count >= ` + threshold + `
`
	}

	t.Run("pod", func(t *testing.T) {
		e := newEngine(t, rule("pod", "10"))
		got := e.Process(newBatch(t, 1).count(app, "openat", "EACCES", 6).count(side, "openat", "EACCES", 6).
			count(other, "openat", "EACCES", 6).get())
		if len(got) != 1 {
			t.Fatalf("want one alert for pod web, got %d", len(got))
		}
		a := got[0]
		if a.Pod != "web" || a.Namespace != "default" || a.Container != "" || a.Total != 12 || a.GroupBy != alert.GroupByPod {
			t.Errorf("pod alert: %+v", a)
		}
		if !strings.HasPrefix(a.Message, "pod default/web: ") {
			t.Errorf("message %q", a.Message)
		}
	})
	t.Run("container", func(t *testing.T) {
		e := newEngine(t, rule("container", "6"))
		got := e.Process(newBatch(t, 1).count(app, "openat", "EACCES", 6).count(side, "openat", "EACCES", 6).
			count(other, "openat", "EACCES", 5).get())
		var ctrs []string
		for _, a := range got {
			ctrs = append(ctrs, a.Pod+"/"+a.Container)
		}
		slices.Sort(ctrs)
		if !slices.Equal(ctrs, []string{"web/app", "web/sidecar"}) {
			t.Errorf("container alerts %v", ctrs)
		}
	})
	t.Run("container restart keeps the key", func(t *testing.T) {
		e := newEngine(t, rule("container", "10"))
		restarted := src{pod("default", "web", "app", 99, nil), 99} // new cgroup, same container
		e.Process(newBatch(t, 1).count(app, "openat", "EACCES", 6).get())
		got := e.Process(newBatch(t, 2).count(restarted, "openat", "EACCES", 6).get())
		if len(got) != 1 || got[0].Total != 12 || got[0].ContainerID != "cid-99" {
			t.Fatalf("want one alert over both cgroups, got %+v", got)
		}
	})
	t.Run("process", func(t *testing.T) {
		e := newEngine(t, rule("process", "5"))
		got := e.Process(newBatch(t, 1).
			count(app, "openat", "EACCES", 12).
			record(app, 10, "cat", "openat", "EACCES").
			record(app, 10, "cat", "openat", "EACCES").
			record(app, 12, "cat", "openat", "EACCES").
			record(app, 11, "sh", "openat", "EACCES").
			// No record for this counter: an unknown process.
			count(side, "openat", "EPERM", 7).get())
		// cat had 3 of 4 records: 9 of 12 failures; sh 3 (below 5).
		if len(got) != 2 {
			t.Fatalf("want alerts for cat and the unknown process, got %d: %v", len(got), got)
		}
		slices.SortFunc(got, func(a, b alert.Alert) int { return strings.Compare(a.Container, b.Container) })
		cat, unknown := got[0], got[1]
		if cat.Total != 9 || !strings.Contains(cat.Message, "container app process cat (2 pids)") {
			t.Errorf("cat alert total %d message %q", cat.Total, cat.Message)
		}
		var pids []uint32
		for _, p := range cat.Processes {
			pids = append(pids, p.PID)
		}
		slices.Sort(pids)
		if !slices.Equal(pids, []uint32{10, 12}) {
			t.Errorf("cat processes %v, want pids 10 and 12", cat.Processes)
		}
		if unknown.Total != 7 || !strings.Contains(unknown.Message, "process (unknown)") {
			t.Errorf("unknown alert total %d message %q", unknown.Total, unknown.Message)
		}
	})
	t.Run("node", func(t *testing.T) {
		e := newEngine(t, rule("node", "15"))
		host := src{hostMeta("/system.slice/cron.service"), 4}
		got := e.Process(newBatch(t, 1).count(app, "openat", "EACCES", 6).count(other, "openat", "EACCES", 6).
			count(host, "openat", "EACCES", 6).get())
		if len(got) != 1 || got[0].Node != "node-1" || got[0].Pod != "" || got[0].Total != 18 {
			t.Fatalf("node alert: %+v", got)
		}
		if !strings.HasPrefix(got[0].Message, "node node-1: 18 failed openat calls") {
			t.Errorf("message %q", got[0].Message)
		}
	})
}

func TestScope(t *testing.T) {
	web := src{pod("prod", "web", "app", 1, map[string]string{"app": "web"}), 1}
	proxy := src{pod("prod", "web", "istio-proxy", 2, map[string]string{"app": "web"}), 2}
	db := src{pod("prod", "db", "app", 3, map[string]string{"app": "web", "tier": "db"}), 3}
	dev := src{pod("dev", "web", "app", 4, map[string]string{"app": "web"}), 4}
	host := src{hostMeta("/system.slice/sshd.service"), 5}
	var unenriched src
	unenriched.cgroup = 6
	all := func(n int) *enrich.Batch {
		b := newBatch(t, n)
		for _, s := range []src{web, proxy, db, dev, host, unenriched} {
			b.count(s, "openat", "EACCES", 5).record(s, uint32(100+s.cgroup), "curl", "openat", "EACCES")
		}
		b.count(web, "openat", "EPERM", 5).record(web, 200, "wget", "openat", "EPERM")
		return b.get()
	}
	for _, tc := range []struct {
		name, scope string
		want        []string // cgroup paths (host) or pod/container
	}{
		{"pods in namespace with selector", `
      namespaces: ["pr*"]
      pod_selector: "app=web,tier!=db"
      exclude_containers: ["istio-*"]`, []string{"prod/web/app"}},
		{"excluded namespace", `
      exclude_namespaces: [prod]`, []string{"dev/web/app"}},
		{"pods only", `
      target: pods`, []string{"dev/web/app", "prod/db/app", "prod/web/app", "prod/web/istio-proxy"}},
		{"host only", `
      target: host`, []string{"host:/system.slice/sshd.service", "host:6"}},
		{"comms", `
      comms: [wget]`, []string{"prod/web/app"}},
		{"exclude comms", `
      exclude_comms: [curl]`, []string{"prod/web/app"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEngine(t, `
rules:
  - id: r
    severity: low
    match: {syscalls: [openat]}
    scope:`+tc.scope+`
    condition: count >= 5
`)
			var keys []string
			for _, a := range e.Process(all(1)) {
				switch {
				case a.Host && a.CgroupPath != "":
					keys = append(keys, "host:"+a.CgroupPath)
				case a.Host:
					keys = append(keys, "host:6")
				default:
					keys = append(keys, a.Namespace+"/"+a.Pod+"/"+a.Container)
				}
			}
			slices.Sort(keys)
			if !slices.Equal(keys, tc.want) {
				t.Errorf("alerts for %v, want %v", keys, tc.want)
			}
		})
	}
}

func TestConditionVariables(t *testing.T) {
	conds := map[string]string{
		"count":     `count == 12`,
		"syscalls":  `syscalls["openat"] == 9 && syscalls["newfstatat"] == 3 && syscalls["unlinkat"] == 0 && syscalls.openat == 9`,
		"errnos":    `errnos["EACCES"] == 10 && errnos["EPERM"] == 2 && errnos["ENOENT"] == 0`,
		"distinct":  `distinct_syscalls == 2 && distinct_errnos == 2`,
		"rate":      `rate == 3.0 && window_seconds == 4.0 && rate > 2`,
		"intervals": `intervals == 1`,
		"comms":     `distinct_comms == 2 && "find" in comms && distinct_pids == 3`,
		"workload":  `labels["app"] == "web" && pod_namespace == "default" && pod == "web" && container == "app" && !host && node == "node-1"`,
		"no-match":  `count > 12`,
		"no-rate":   `rate > 3`,
	}
	var b strings.Builder
	b.WriteString("rules:\n")
	for id, c := range conds {
		b.WriteString("  - id: " + id + "\n    severity: low\n    match: {syscalls: [\"@file\"]}\n    window: 4s\n    condition: '" + c + "'\n")
	}
	e := newEngine(t, b.String())
	web := src{pod("default", "web", "app", 1, map[string]string{"app": "web"}), 1}
	got := e.Process(newBatch(t, 1).
		count(web, "openat", "EACCES", 7).count(web, "openat", "EPERM", 2).count(web, "newfstatat", "EACCES", 3).
		record(web, 10, "cat", "openat", "EACCES").record(web, 11, "find", "newfstatat", "EACCES").
		record(web, 12, "cat", "openat", "EPERM").get())
	ids := ruleIDs(got)
	slices.Sort(ids)
	want := []string{"comms", "count", "distinct", "errnos", "intervals", "rate", "syscalls", "workload"}
	if !slices.Equal(ids, want) {
		t.Errorf("fired %v, want %v", ids, want)
	}
	if s := e.Stats(); s.EvalErrors != 0 {
		t.Errorf("%d evaluation errors", s.EvalErrors)
	}
}

func TestDurationCondition(t *testing.T) {
	e := newEngine(t, `
rules:
  - id: slow-read
    severity: low
    match: {syscalls: [read]}
    window: 10s
    condition: duration.p99_ns >= 1000000000 && duration.count >= 100
`)
	slow := src{pod("default", "db", "pg", 1, nil), 1}
	fast := src{pod("default", "web", "app", 2, nil), 2}
	// 1000 reads of ~1us (bucket 10) and 20 of ~1.07s (bucket 30): the
	// 99th percentile is in bucket 30. fast has 5 slow ones: p99 stays fast.
	got := e.Process(newBatch(t, 1).
		hist(slow, "read", 10, 1000).hist(slow, "read", 30, 20).
		hist(fast, "read", 10, 1000).hist(fast, "read", 30, 5).get())
	if len(got) != 1 || got[0].Pod != "db" {
		t.Fatalf("want one slow-read alert for db, got %+v", got)
	}
	if !strings.Contains(got[0].Message, "latency p99 2.1s, max 2.1s over 1020 calls") {
		t.Errorf("message %q", got[0].Message)
	}
}

func TestMessage(t *testing.T) {
	e := newEngine(t, `
rules:
  - id: probe
    severity: medium
    match: {syscalls: ["@file"], errnos: [EACCES, EPERM]}
    window: 5s
    condition: count >= 200
`)
	web := src{pod("default", "web-7d9", "app", 1, nil), 1}
	var got []alert.Alert
	for n := 1; n <= 5; n++ {
		b := newBatch(t, n).count(web, "openat", "EACCES", 30).count(web, "newfstatat", "EACCES", 6)
		if n == 5 {
			b.count(web, "unlinkat", "EPERM", 32)
		}
		got = append(got, e.Process(b.get())...)
	}
	if len(got) != 1 {
		t.Fatalf("want 1 alert, got %d", len(got))
	}
	want := "pod default/web-7d9 container app: 212 failed file syscalls (EACCES 180, EPERM 32) across 3 syscalls (openat, unlinkat, newfstatat) in 5s"
	if got[0].Message != want {
		t.Errorf("message\n got %q\nwant %q", got[0].Message, want)
	}
	wantCounts := []alert.Count{
		{Syscall: "openat", Errno: "EACCES", Count: 150},
		{Syscall: "unlinkat", Errno: "EPERM", Count: 32},
		{Syscall: "newfstatat", Errno: "EACCES", Count: 30},
	}
	if !slices.Equal(got[0].Counts, wantCounts) {
		t.Errorf("counts %v, want %v", got[0].Counts, wantCounts)
	}
}

func TestMinCount(t *testing.T) {
	for _, tc := range []struct {
		cond string
		want uint64
	}{
		{"count >= 50", 50},
		{"count > 50", 51},
		{"50 <= count", 50},
		{"rate > 5", 51},    // 10s window: count > 50
		{"rate >= 2.5", 25}, // count >= 25
		{"count >= 10 && distinct_syscalls >= 30", 30},
		{`syscalls["openat"] > 7 && count >= 3`, 8},
		{"count >= 50 || distinct_syscalls >= 2", 2}, // either side will do
		{"count >= 50 || distinct_comms >= 2", 0},    // comms bound no count
		{`syscalls["openat"] + syscalls["read"] >= 3 || count > 9`, 3},
		{`syscalls["openat"] + errnos["EPERM"] >= 3`, 0}, // may count a failure twice
		{"(count > 5 || rate > 1) && distinct_errnos >= 2", 6},
		{"!(count < 5)", 0},
		{"distinct_comms >= 5", 0},
	} {
		c, errs := compileCondition(tc.cond)
		if len(errs) > 0 {
			t.Fatalf("%s: %v", tc.cond, errs)
		}
		if got := c.minCount(10); got != tc.want {
			t.Errorf("%s: min count %d, want %d", tc.cond, got, tc.want)
		}
	}
}

func TestCountFloorSkipsEvaluation(t *testing.T) {
	e := newEngine(t, `
rules:
  - id: r
    severity: low
    condition: count >= 100
`)
	b := newBatch(t, 1)
	for i := range 50 {
		b.count(src{pod("default", fmt.Sprint("p", i), "c", uint64(i+1), nil), uint64(i + 1)}, "openat", "ENOENT", 3)
	}
	e.Process(b.get())
	if s := e.Stats(); s.Evaluations != 0 || s.Skipped != 50 || s.Keys != 50 {
		t.Errorf("stats %+v: want 50 keys skipped by the floor and no evaluation", s)
	}
}

func TestKernelInternalErrnosNeedNaming(t *testing.T) {
	e := newEngine(t, `
rules:
  - id: any
    severity: low
    condition: count >= 1
  - id: named
    severity: low
    match: {errnos: [ERESTARTSYS]}
    condition: count >= 1
`)
	web := src{pod("default", "web", "app", 1, nil), 1}
	got := ruleIDs(e.Process(newBatch(t, 1).count(web, "read", "ERESTARTSYS", 4).get()))
	if !slices.Equal(got, []string{"named"}) {
		t.Errorf("fired %v, want only the rule naming ERESTARTSYS", got)
	}
}

func TestSetRulesKeepsUnchangedRules(t *testing.T) {
	const keep = `
  - id: keep
    severity: low
    match: {syscalls: [openat]}
    window: 10s
    condition: count >= 10
`
	e := newEngine(t, "rules:"+keep)
	web := src{pod("default", "web", "app", 1, nil), 1}
	e.Process(newBatch(t, 1).count(web, "openat", "EACCES", 6).get())
	// Same rule plus a new one: keep's window survives the swap.
	e.SetRules(mustParse(t, "rules:"+keep+`
  - id: added
    severity: low
    match: {syscalls: [openat]}
    condition: count >= 4
`))
	got := ruleIDs(e.Process(newBatch(t, 2).count(web, "openat", "EACCES", 4).get()))
	slices.Sort(got)
	if !slices.Equal(got, []string{"added", "keep"}) {
		t.Errorf("after swap fired %v, want added and keep (6+4)", got)
	}
	if s := e.Stats(); s.RuleSwaps != 1 || s.Rules != 2 {
		t.Errorf("stats %+v", s)
	}
}

func TestMaxKeysPerRule(t *testing.T) {
	e := NewEngine(mustParse(t, `
rules:
  - id: r
    severity: low
    condition: count >= 1000
`), Config{MaxKeysPerRule: 10})
	b := newBatch(t, 1)
	for i := range 15 {
		b.count(src{pod("default", fmt.Sprint("p", i), "c", uint64(i+1), nil), uint64(i + 1)}, "openat", "EACCES", 1)
	}
	e.Process(b.get())
	if s := e.Stats(); s.Keys != 10 || s.KeysDropped != 5 {
		t.Errorf("keys %d dropped %d, want 10 and 5", s.Keys, s.KeysDropped)
	}
}

func TestUnresolvedPod(t *testing.T) {
	e := newEngine(t, `
rules:
  - id: r
    severity: low
    match: {syscalls: [openat]}
    scope: {target: pods}
    condition: count >= 1 && !host
`)
	// The cgroup is in a pod the API has not named yet.
	m := &enrich.Meta{Node: "node-1", PodUID: "1234-abcd", ContainerID: "c0ffee", Unresolved: true,
		CgroupPath: "/kubepods/besteffort/pod1234-abcd/c0ffee"}
	got := e.Process(newBatch(t, 1).count(src{m, 7}, "openat", "EACCES", 2).get())
	if len(got) != 1 || got[0].Host || got[0].PodUID != "1234-abcd" {
		t.Fatalf("alerts %+v", got)
	}
	want := "pod uid 1234-abcd cgroup /kubepods/besteffort/pod1234-abcd/c0ffee: 2 failed openat calls (EACCES 2) in 1s"
	if got[0].Message != want {
		t.Errorf("message %q, want %q", got[0].Message, want)
	}
}
