package rules

import (
	"net/netip"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/errnowatch/errnowatch/pkg/alert"
	"github.com/errnowatch/errnowatch/pkg/enrich"
	"github.com/errnowatch/errnowatch/pkg/sensor"
)

// recordWith adds a failure record carrying arguments, and its count.
func (bb *batchBuilder) recordWith(s src, comm, sys, errno string, fill func(*sensor.Record)) *batchBuilder {
	r := sensor.Record{Time: bb.b.Interval.End.Add(-1), PID: 42, TID: 42, UID: 1000, Comm: comm, CgroupID: s.cgroup,
		Syscall: sysNr(bb.t, sys), Ret: -int64(errNr(bb.t, errno))}
	fill(&r)
	bb.b.Records = append(bb.b.Records, enrich.Record{Record: r, Meta: s.meta})
	return bb.count(s, sys, errno, 1)
}

func TestRecordsConditions(t *testing.T) {
	web := src{pod("shop", "web-1", "app", 11, nil), 11}
	e := newEngine(t, `rules:
  - id: shadow-read
    severity: high
    match: {syscalls: [openat], errnos: [EACCES]}
    condition: records.exists(r, glob(r.path, "/etc/*shadow") && !r.path_relative)
  - id: runtime-socket
    severity: high
    match: {syscalls: [connect]}
    condition: records.exists(r, r.family == "AF_UNIX" && r.addr.endsWith("containerd.sock"))
  - id: metadata-service
    severity: medium
    match: {syscalls: [connect]}
    condition: records.exists(r, r.family == "AF_INET" && r.addr == "169.254.169.254" && r.port == 80)
  - id: ptrace-pid1
    severity: high
    match: {syscalls: [ptrace], errnos: [EPERM]}
    condition: records.exists(r, r.args["request"] == 16 && r.args["pid"] == 1)
  - id: raw-socket
    severity: high
    match: {syscalls: [socket]}
    condition: records.exists(r, r.sock_type == "SOCK_RAW" || r.family == "AF_PACKET")
  - id: unshare-user
    severity: low
    match: {syscalls: [unshare]}
    condition: records.filter(r, has_flag(r.args["flags"], 268435456) && !has_flag(r.args["flags"], 1)).size() >= 1
  - id: deep-glob
    severity: low
    match: {syscalls: [mkdirat]}
    condition: records.exists(r, glob(r.path, "/var/**/cron*"))
`)
	b := newBatch(t, 1).
		recordWith(web, "cat", "openat", "EACCES", func(r *sensor.Record) { r.Path = "/etc/gshadow" }).
		recordWith(web, "cat", "openat", "EACCES", func(r *sensor.Record) { r.Path = "etc/shadow" }).
		recordWith(web, "curl", "connect", "ENOENT", func(r *sensor.Record) {
			r.Addr = sensor.SockAddr{Family: unix.AF_UNIX, Unix: "/run/containerd/containerd.sock"}
		}).
		recordWith(web, "curl", "connect", "ECONNREFUSED", func(r *sensor.Record) {
			r.Addr = sensor.SockAddr{Family: unix.AF_INET, IP: netip.MustParseAddr("169.254.169.254"), Port: 80}
		}).
		recordWith(web, "gdb", "ptrace", "EPERM", func(r *sensor.Record) { r.Args = [6]uint64{unix.PTRACE_ATTACH, 1} }).
		recordWith(web, "tcpdump", "socket", "EPERM", func(r *sensor.Record) { r.Args = [6]uint64{unix.AF_PACKET, unix.SOCK_RAW | unix.SOCK_CLOEXEC, 0x300} }).
		recordWith(web, "unshare", "unshare", "EPERM", func(r *sensor.Record) { r.Args = [6]uint64{unix.CLONE_NEWUSER} }).
		recordWith(web, "mkdir", "mkdirat", "EACCES", func(r *sensor.Record) { r.Path = "/var/spool/cron/crontabs" }).
		get()
	got := strings.Join(ruleIDs(e.Process(b)), ",")
	want := "shadow-read,runtime-socket,metadata-service,ptrace-pid1,raw-socket,unshare-user,deep-glob"
	if got != want {
		t.Errorf("alerts %s, want %s", got, want)
	}
}

func TestRecordsSeeOnlyTheRulesMatchAndWindow(t *testing.T) {
	web := src{pod("shop", "web-1", "app", 11, nil), 11}
	e := newEngine(t, `rules:
  - id: two-shadow-reads
    severity: high
    window: 2s
    match: {syscalls: [openat], errnos: [EACCES]}
    condition: records.filter(r, r.path == "/etc/shadow").size() >= 2
`)
	shadow := func(r *sensor.Record) { r.Path = "/etc/shadow" }
	// ENOENT on the same path is outside the rule's match.
	if as := e.Process(newBatch(t, 1).recordWith(web, "cat", "openat", "EACCES", shadow).
		recordWith(web, "cat", "openat", "ENOENT", shadow).get()); len(as) != 0 {
		t.Fatalf("a record outside the match counted: %v", ruleIDs(as))
	}
	// Interval 4: the record of interval 1 left the 2 s window.
	if as := e.Process(newBatch(t, 4).recordWith(web, "cat", "openat", "EACCES", shadow).get()); len(as) != 0 {
		t.Fatalf("a record outside the window counted: %v", ruleIDs(as))
	}
	if as := e.Process(newBatch(t, 5).recordWith(web, "cat", "openat", "EACCES", shadow).get()); len(as) != 1 {
		t.Fatalf("two records in the window raised %d alerts", len(as))
	}
}

func TestRecordFieldsAreChecked(t *testing.T) {
	_, err := Parse("r.yaml", []byte("rules:\n  - id: r\n    severity: low\n    condition: records.exists(r, r.pathh == \"/x\")\n"))
	if err == nil || !strings.Contains(err.Error(), "r.yaml:4:35: rule r: condition: undefined field 'pathh'") {
		t.Errorf("unknown record field: got %v", err)
	}
	_, err = Parse("r.yaml", []byte("rules:\n  - id: r\n    severity: low\n    condition: records.exists(r, glob(r.path, \"[a-\"))\n"))
	if err == nil || !strings.Contains(err.Error(), "r.yaml:4:47: rule r: condition: bad glob pattern \"[a-\"") {
		t.Errorf("bad glob: got %v", err)
	}
}

func TestGlob(t *testing.T) {
	for _, tc := range []struct {
		s, pattern string
		want       bool
	}{
		{"/etc/shadow", "/etc/*", true},
		{"/etc/ssh/sshd_config", "/etc/*", false},
		{"/etc/ssh/sshd_config", "/etc/**", true},
		{"/home/a/.ssh/id_rsa", "/home/*/.ssh/id_*", true},
		{"/proc/1/mem", "/proc/[0-9]*/mem", true},
		{"/proc/self/mem", "/proc/[0-9]*/mem", false},
	} {
		g, err := compileGlob(tc.pattern)
		if err != nil {
			t.Fatal(err)
		}
		if got := g.Match(tc.s); got != tc.want {
			t.Errorf("glob(%q, %q) = %v, want %v", tc.s, tc.pattern, got, tc.want)
		}
	}
}

func TestHasFlag(t *testing.T) {
	rs := mustParse(t, "rules:\n  - id: r\n    severity: low\n    condition: has_flag(6, 2) && has_flag(6, 6) && !has_flag(6, 1) && !has_flag(6, 9)\n")
	e := NewEngine(rs, Config{Interval: 1e9})
	web := src{pod("shop", "web-1", "app", 11, nil), 11}
	if as := e.Process(newBatch(t, 1).count(web, "openat", "EACCES", 1).get()); len(as) != 1 {
		t.Errorf("has_flag: the condition was false")
	}
}

func TestViewOf(t *testing.T) {
	r := sensor.Record{Syscall: sysNr(t, "clone"), Ret: -1, Args: [6]uint64{unix.CLONE_NEWNS | unix.CLONE_NEWPID}}
	v := ViewOf(&r)
	if v.Syscall != "clone" || v.Errno != "EPERM" || v.Args["clone_flags"] != unix.CLONE_NEWNS|unix.CLONE_NEWPID ||
		v.Args["flags"] != unix.CLONE_NEWNS|unix.CLONE_NEWPID || v.Family != "" {
		t.Errorf("clone view %+v", v)
	}
	r = sensor.Record{Syscall: sysNr(t, "kill"), Ret: -1, Args: [6]uint64{0xffffffff, 9}}
	if v := ViewOf(&r); v.Args["pid"] != -1 || v.Args["sig"] != 9 {
		t.Errorf("kill(-1, 9) viewed as %v", v.Args)
	}
	r = sensor.Record{Syscall: sysNr(t, "connect"), Ret: -111,
		Addr: sensor.SockAddr{Family: unix.AF_INET6, IP: netip.MustParseAddr("::1"), Port: 8443}}
	if v := ViewOf(&r); v.Family != "AF_INET6" || v.Addr != "::1" || v.Port != 8443 || v.Errno != "ECONNREFUSED" {
		t.Errorf("connect view %+v", v)
	}
}

// rules test replays trace -o json lines with their arguments.
func TestReplayCarriesArguments(t *testing.T) {
	e := newEngine(t, `rules:
  - id: shadow-read
    severity: high
    match: {syscalls: [openat], errnos: [EACCES]}
    condition: records.exists(r, r.path == "/etc/shadow" && r.args["dfd"] == -100)
  - id: etcd-connect
    severity: high
    match: {syscalls: [connect]}
    condition: records.exists(r, r.addr == "10.0.0.5" && r.port == 2379)
`)
	trace := `{"time":"2026-03-01T12:00:00.5Z","pid":5,"tid":5,"comm":"cat","uid":1000,"cgroup_id":3,"syscall":"openat","ret":-13,"errno":"EACCES","args":[4294967196,1,0,0,0,0],"path":"/etc/shadow","namespace":"shop","pod":"web-1"}
{"time":"2026-03-01T12:00:00.6Z","pid":5,"tid":5,"comm":"nc","uid":1000,"cgroup_id":3,"syscall":"connect","errno":"ECONNREFUSED","family":"AF_INET","addr":"10.0.0.5","port":2379,"namespace":"shop","pod":"web-1"}
`
	as, err := e.Replay(strings.NewReader(trace))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(ruleIDs(as), ","); got != "shadow-read,etcd-connect" {
		t.Errorf("replay raised %q, want shadow-read,etcd-connect", got)
	}
}

// An alert names what was denied, busiest group and target first, and keeps
// tallying while it stays open.
func TestAlertTargets(t *testing.T) {
	web := src{pod("shop", "web-1", "app", 11, nil), 11}
	e := newEngine(t, `rules:
  - id: probe
    severity: high
    window: 10s
    cooldown: 0s
    match: {syscalls: [openat, connect]}
    condition: count >= 1
`)
	open := func(p string) func(*sensor.Record) { return func(r *sensor.Record) { r.Path = p } }
	bb := newBatch(t, 1)
	for i := 0; i < 5; i++ {
		bb.recordWith(web, "cat", "openat", "EACCES", open("/etc/shadow"))
	}
	bb.recordWith(web, "cat", "openat", "EACCES", open("/etc/gshadow")).
		recordWith(web, "nc", "connect", "ECONNREFUSED", func(r *sensor.Record) {
			r.Addr = sensor.SockAddr{Family: unix.AF_INET, IP: netip.MustParseAddr("10.0.0.5"), Port: 2379}
		}).
		recordWith(web, "cat", "openat", "EACCES", open("/"+strings.Repeat("x", 300)))
	as := e.Process(bb.get())
	if len(as) != 1 {
		t.Fatalf("%d alerts", len(as))
	}
	long := "/" + strings.Repeat("x", 255) + "..."
	want := "openat EACCES /etc/shadow ×5, /etc/gshadow ×1, " + long + " ×1; connect ECONNREFUSED 10.0.0.5:2379 ×1"
	if got := alert.TargetSummary(as[0].Targets); got != want {
		t.Errorf("targets %q\nwant    %q", got, want)
	}
	if !strings.HasSuffix(as[0].Message, "; denied: openat EACCES /etc/shadow ×5, /etc/gshadow ×1, "+long+" ×1 (+1 more)") {
		t.Errorf("message %q does not end with the top three denied targets", as[0].Message)
	}
	if as[0].Targets[3].Kind != alert.TargetNetwork || as[0].Targets[0].Kind != alert.TargetFile {
		t.Errorf("kinds %+v", as[0].Targets)
	}
	// The next interval's records add to the open alert's tally.
	as = e.Process(newBatch(t, 2).recordWith(web, "cat", "openat", "EACCES", open("/etc/gshadow")).get())
	if len(as) != 1 || alert.TargetSummary(as[0].Targets) != "openat EACCES /etc/shadow ×5, /etc/gshadow ×2, "+long+" ×1; connect ECONNREFUSED 10.0.0.5:2379 ×1" {
		t.Errorf("update: %v", as)
	}
	if err := as[0].Validate(); err != nil {
		t.Error(err)
	}
}
