package rules

import (
	"bytes"
	"fmt"
	"maps"
	osexec "os/exec"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/errnowatch/errnowatch/pkg/alert"
	"github.com/errnowatch/errnowatch/pkg/cgroup"
	"github.com/errnowatch/errnowatch/pkg/cgroup/cgrouptest"
	"github.com/errnowatch/errnowatch/pkg/enrich"
	"github.com/errnowatch/errnowatch/pkg/sensor"
	"github.com/errnowatch/errnowatch/pkg/syscalls"
	"github.com/errnowatch/errnowatch/test/attacks"
)

const defaultPack = "../../rules/default.yaml"

// loadPack loads the default pack.
func loadPack(t *testing.T) *RuleSet {
	t.Helper()
	rs, err := Load(defaultPack)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// TestRecordRulesOnHandWrittenRecords evaluates each default rule that
// reads records, with the package's own condition environment, on the
// records of its attacks and near misses written by hand: among them cases
// the live test cannot make on this machine (another pod's token, sysrq,
// notify_on_release). TestDefaultPackOnKernel runs the live ones.
func TestRecordRulesOnHandWrittenRecords(t *testing.T) {
	rs := loadPack(t)
	conds := map[string]*condition{}
	for _, r := range rs.Rules {
		if r.cond.usesRecords {
			conds[r.ID] = r.cond
		}
	}
	if len(conds) < 8 {
		t.Fatalf("%s has %d rules over records, want at least 8", defaultPack, len(conds))
	}
	for _, c := range recordCases {
		cond, ok := conds[c.rule]
		if !ok {
			t.Errorf("%s: no rule over records of that id in %s", c.rule, defaultPack)
			continue
		}
		count := max(c.count, len(c.recs))
		syscalls := map[string]bool{}
		var recs []*Record
		for _, r := range c.recs {
			syscalls[r["syscall"].(string)] = true
			recs = append(recs, recordOf(t, r))
		}
		out, _, err := cond.prg.Eval(map[string]any{"count": count, "distinct_syscalls": len(syscalls), "records": recs, "host": false})
		if err != nil {
			t.Errorf("%s on %s: %v", c.rule, c.name, err)
			continue
		}
		if got := out.Value().(bool); got != c.fire {
			t.Errorf("%s on %s = %v, want %v", c.rule, c.name, got, c.fire)
		}
	}
}

// TestRuntimeSocketOnTheHost: on the host only a denied connect to the
// runtime's socket counts; node daemons dial it before it exists or
// listens while the node starts (the e2e node's kubelet and ctr did).
func TestRuntimeSocketOnTheHost(t *testing.T) {
	var cond *condition
	for _, r := range loadPack(t).Rules {
		if r.ID == "runtime-socket-access" {
			cond = r.cond
		}
	}
	if cond == nil {
		t.Fatal("no runtime-socket-access rule")
	}
	for _, c := range []struct {
		errno      string
		host, fire bool
	}{
		{"ENOENT", true, false}, {"ECONNREFUSED", true, false}, {"EACCES", true, true}, {"EPERM", true, true},
		{"ENOENT", false, true}, {"ECONNREFUSED", false, true},
	} {
		r := recordOf(t, rec("connect", c.errno, "family", "AF_UNIX", "addr", "/run/containerd/containerd.sock"))
		out, _, err := cond.prg.Eval(map[string]any{"count": 1, "distinct_syscalls": 1, "records": []*Record{r}, "host": c.host})
		if err != nil {
			t.Fatal(err)
		}
		if got := out.Value().(bool); got != c.fire {
			t.Errorf("connect %s to containerd.sock, host %v: fires %v, want %v", c.errno, c.host, got, c.fire)
		}
	}
}

// recordOf turns a hand-written record into the Record a condition sees,
// setting each field by its cel tag, so that a misspelled key fails.
func recordOf(t *testing.T, m map[string]any) *Record {
	t.Helper()
	r := &Record{}
	v := reflect.ValueOf(r).Elem()
	for key, val := range m {
		set := false
		for i := range v.NumField() {
			if v.Type().Field(i).Tag.Get("cel") != key {
				continue
			}
			f := v.Field(i)
			switch x := val.(type) {
			case int:
				f.SetInt(int64(x))
			default:
				f.Set(reflect.ValueOf(val))
			}
			set = true
		}
		if !set {
			t.Fatalf("hand-written record has %q, which Record has no field for", key)
		}
	}
	return r
}

// TestDefaultPackOnKernel runs every workload of test/attacks (attacks,
// near misses and the benign corpus) in a kubelet-shaped cgroup of its own
// under the real kernel sensor, all at once, feeds each one's drained
// intervals to its own engine of the default pack as the agent would (one
// batch a second), and checks that an attack fires its rule and no other,
// and that a benign workload or near miss fires nothing. It also checks
// that every rule has an attack and a near miss. Enrichment is not part of
// this: each cgroup gets a made-up pod.
//
// The workloads of rules over records run only when conditions can read
// records; until then those subtests skip, saying so.
func TestDefaultPackOnKernel(t *testing.T) {
	rs := loadPack(t)
	log := zaptest.NewLogger(t)
	s, err := sensor.Load(sensor.Config{Logger: log})
	if err != nil {
		t.Fatalf("load sensor: %v", err)
	}
	defer s.Close()

	var runs []*packRun
	for _, w := range attacks.Extended() {
		runs = append(runs, newPackRun(t, w, rs))
	}
	runAll(t, s, runs)

	attacked, nearMissed := map[string]bool{}, map[string]bool{}
	for _, r := range runs {
		attacked[r.w.Rule], nearMissed[r.w.Near] = true, true
	}
	for _, w := range attacks.Extended() {
		t.Run(w.Name, func(t *testing.T) {
			i := slices.IndexFunc(runs, func(r *packRun) bool { return r.w.Name == w.Name })
			runs[i].check(t)
		})
	}
	for _, r := range rs.Rules {
		if !attacked[r.ID] {
			t.Errorf("default rule %s has no attack workload in test/attacks", r.ID)
		}
		if !nearMissed[r.ID] {
			t.Errorf("default rule %s has no near-miss workload in test/attacks", r.ID)
		}
	}
}

// packRun is one workload running under its own engine.
type packRun struct {
	w    attacks.Workload
	cg   *cgrouptest.Dir
	meta *enrich.Meta
	eng  *Engine
	cmd  *osexec.Cmd
	out  bytes.Buffer
	done chan error

	err      error // the workload's exit
	exitedAt int   // drain after which it was seen gone; 0 while running
	finished bool
	got      []alert.Alert
	total    uint64
	byKey    map[string]uint64 // "syscall errno": failures
}

func newPackRun(t *testing.T, w attacks.Workload, rs *RuleSet) *packRun {
	podUID, ctrID := cgrouptest.PodUID(), cgrouptest.ContainerID()
	cg := cgrouptest.New(t, cgrouptest.KubeletPath(cgroup.DriverCgroupfs, cgroup.RuntimeContainerd,
		cgroup.QoSBestEffort, podUID, ctrID))
	r := &packRun{w: w, cg: cg, done: make(chan error, 1), byKey: map[string]uint64{},
		meta: &enrich.Meta{Node: "test-node", Namespace: "attacks", Pod: w.Name + "-7d9f", PodUID: podUID,
			Container: "workload", ContainerID: ctrID, CgroupPath: cg.Rel},
		eng: NewEngine(rs, Config{Interval: time.Second, Node: "test-node", Logger: zaptest.NewLogger(t)}),
		cmd: w.Command(attacks.Scratch(t)),
	}
	r.cmd.Stdout, r.cmd.Stderr = &r.out, &r.out
	return r
}

// packTimeout bounds the whole corpus: the slowest workload (a JVM start
// or a C build on a loaded machine) takes well under a minute.
const packTimeout = 10 * time.Minute

// runAll starts every workload in its cgroup and drains the sensor once a
// second until each has exited and been evaluated: a workload seen gone
// before a drain has all its counts in that drain; its records may trail
// in the ring buffer, so it gets one more drain before its engine flushes.
func runAll(t *testing.T, s *sensor.Sensor, runs []*packRun) {
	ids := make([]uint64, len(runs))
	for i, r := range runs {
		ids[i] = r.cg.ID
	}
	if err := s.SetFilter(sensor.Filter{IncludeCgroups: ids}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Drain(); err != nil { // what came before is not the workloads'
		t.Fatal(err)
	}
	for _, r := range runs {
		if err := r.cg.Start(r.cmd); err != nil {
			t.Fatalf("start %s: %v", r.w.Name, err)
		}
		go func() { r.done <- r.cmd.Wait() }()
	}
	deadline := time.Now().Add(packTimeout)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for drain, pending := 1, len(runs); pending > 0; drain++ {
		<-tick.C
		if time.Now().After(deadline) {
			for _, r := range runs {
				if r.exitedAt == 0 {
					t.Errorf("%s still running after %s:\n%s", r.w.Name, packTimeout, r.out.String())
				}
			}
			t.FailNow()
		}
		for _, r := range runs {
			if r.exitedAt != 0 {
				continue
			}
			select {
			case r.err = <-r.done:
				r.exitedAt = drain
			default:
			}
		}
		iv, err := s.Drain()
		if err != nil {
			t.Fatalf("drain: %v", err)
		}
		var recs []sensor.Record
		for more := true; more; {
			select {
			case rec := <-s.Records():
				recs = append(recs, rec)
			default:
				more = false
			}
		}
		for _, r := range runs {
			if r.finished {
				continue
			}
			b := r.batch(iv, recs)
			r.got = append(r.got, r.eng.Process(b)...)
			if r.exitedAt != 0 && drain > r.exitedAt {
				r.got = append(r.got, r.eng.Flush()...)
				r.finished = true
				pending--
			}
		}
	}
}

// batch is the part of one drain that is r's cgroup's.
func (r *packRun) batch(iv sensor.Interval, recs []sensor.Record) *enrich.Batch {
	b := &enrich.Batch{Interval: iv}
	for _, c := range iv.Counts {
		if c.CgroupID == r.cg.ID {
			b.Counts = append(b.Counts, enrich.Count{Count: c, Meta: r.meta})
			r.total += c.Count
			r.byKey[syscalls.Name(syscalls.Native(), int(c.Syscall), c.Compat)+" "+syscalls.ErrnoName(c.Errno)] += c.Count
		}
	}
	for _, h := range iv.Histograms {
		if h.CgroupID == r.cg.ID {
			b.Histograms = append(b.Histograms, enrich.Histogram{Histogram: h, Meta: r.meta})
		}
	}
	for _, rec := range recs {
		if rec.CgroupID == r.cg.ID {
			b.Records = append(b.Records, enrich.Record{Record: rec, Meta: r.meta})
		}
	}
	return b
}

// check asserts the workload ran as meant and fired exactly its rule.
func (r *packRun) check(t *testing.T) {
	if r.err != nil {
		t.Fatalf("workload %s (%s): %v\n%s", r.w.Name, r.w.Description, r.err, r.out.String())
	}
	keys := slices.SortedFunc(maps.Keys(r.byKey), func(a, b string) int { return int(r.byKey[b]) - int(r.byKey[a]) })
	var top []string
	for _, k := range keys[:min(len(keys), 5)] {
		top = append(top, fmt.Sprintf("%s %d", k, r.byKey[k]))
	}
	t.Logf("%s: %d failures counted; most: %s", r.w.Name, r.total, strings.Join(top, ", "))
	fired := map[string]bool{}
	for _, a := range r.got {
		fired[a.RuleID] = true
		t.Logf("%s rev %d: %s", a.RuleID, a.Revision, a.Message)
		if a.Pod != r.meta.Pod || a.Total == 0 {
			t.Errorf("alert not about the workload's pod or without failures: %+v", a)
		}
	}
	var want []string
	if !r.w.Benign() {
		want = []string{r.w.Rule}
	}
	if ids := slices.Sorted(maps.Keys(fired)); !slices.Equal(ids, want) {
		t.Errorf("%s (%s): %d failures fired %v, want %v", r.w.Name, r.w.Description, r.total, ids, want)
	}
}

// rec is one record of the contract with every field set: those not
// given are zero.
func rec(syscall, errno string, kv ...any) map[string]any {
	r := map[string]any{"syscall": syscall, "errno": errno, "comm": "sh", "uid": 65534, "pid": 4242, "tid": 4242,
		"compat": false, "path": "", "path_truncated": false, "path_unreadable": false, "path_relative": false,
		"path2": "", "name": "", "family": "", "addr": "", "port": 0, "sock_type": "", "protocol": 0, "args": map[string]int64{}}
	for i := 0; i+1 < len(kv); i += 2 {
		r[kv[i].(string)] = kv[i+1]
	}
	return r
}

// execs are execve ENOENT records of a PATH search for each name, the
// first 8 as the kernel samples them.
func execs(names ...string) []map[string]any {
	var out []map[string]any
	for _, n := range names {
		for _, d := range []string{"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"} {
			out = append(out, rec("execve", "ENOENT", "path", d+"/"+n, "name", n))
		}
	}
	return out[:min(len(out), 8)]
}

// Open flags, as the contract's args["flags"] carries them.
const (
	oWronly = 0o1
	oCreat  = 0o100
	oTrunc  = 0o1000
	oAppend = 0o2000
)

var recordCases = []struct {
	rule, name string
	fire       bool
	count      int // the window's count, when more than the records
	recs       []map[string]any
}{
	{"credential-file-access", "open /etc/shadow", true, 0,
		[]map[string]any{rec("openat", "EACCES", "path", "/etc/shadow")}},
	{"credential-file-access", "another pod's token", true, 0, []map[string]any{rec("openat", "EACCES",
		"path", "/var/lib/kubelet/pods/0b1c/volumes/kubernetes.io~projected/kube-api-access-x/token")}},
	{"credential-file-access", "root's SSH key", true, 0, []map[string]any{rec("newfstatat", "EACCES", "path", "/root/.ssh/id_rsa")}},
	{"credential-file-access", "an app's config", false, 3, []map[string]any{rec("openat", "EACCES", "path", "/srv/conf/db-0.conf")}},
	{"credential-file-access", "/etc/shadowsocks.json", false, 0,
		[]map[string]any{rec("openat", "EACCES", "path", "/etc/shadowsocks.json")}},

	{"process-memory-access", "PID 1's mem", true, 0, []map[string]any{rec("openat", "EACCES", "path", "/proc/1/mem")}},
	{"process-memory-access", "a thread's environ", true, 0,
		[]map[string]any{rec("openat", "EACCES", "path", "/proc/77/task/78/environ")}},
	{"process-memory-access", "ps reading environ", false, 156,
		[]map[string]any{rec("openat", "EACCES", "comm", "ps", "path", "/proc/1/environ")}},
	{"process-memory-access", "readlink exe", false, 0, []map[string]any{rec("readlink", "EACCES", "path", "/proc/1/exe")}},

	{"persistence-file-write", "append to ld.so.preload", true, 0, []map[string]any{rec("openat", "EACCES",
		"path", "/etc/ld.so.preload", "args", map[string]int64{"flags": oWronly | oCreat | oAppend})}},
	{"persistence-file-write", "create a cron file", true, 0, []map[string]any{rec("openat", "EACCES",
		"path", "/etc/cron.d/evil", "args", map[string]int64{"flags": oWronly | oCreat | oTrunc})}},
	{"persistence-file-write", "rename a unit into place", true, 0, []map[string]any{rec("renameat2", "EACCES",
		"path", "/tmp/x.service", "path2", "/etc/systemd/system/x.service")}},
	{"persistence-file-write", "the loader reading ld.so.preload", false, 0, []map[string]any{
		rec("access", "EACCES", "path", "/etc/ld.so.preload", "args", map[string]int64{"mode": 4}),
		rec("openat", "EACCES", "path", "/etc/ld.so.preload", "args", map[string]int64{"flags": 0})}},
	{"persistence-file-write", "write /etc/hostname", false, 0, []map[string]any{rec("openat", "EACCES",
		"path", "/etc/hostname", "args", map[string]int64{"flags": oWronly})}},

	{"kernel-tunable-write", "core_pattern", true, 0, []map[string]any{rec("openat", "EACCES",
		"path", "/proc/sys/kernel/core_pattern", "args", map[string]int64{"flags": oWronly | oTrunc})}},
	{"kernel-tunable-write", "release_agent", true, 0, []map[string]any{rec("openat", "EACCES",
		"path", "/sys/fs/cgroup/memory/release_agent", "args", map[string]int64{"flags": oWronly})}},
	{"kernel-tunable-write", "read compact_memory", false, 0, []map[string]any{rec("openat", "EACCES",
		"path", "/proc/sys/vm/compact_memory", "args", map[string]int64{"flags": 0})}},

	{"runtime-socket-access", "containerd", true, 0, []map[string]any{rec("connect", "ENOENT",
		"family", "AF_UNIX", "addr", "/run/containerd/containerd.sock")}},
	{"runtime-socket-access", "an app socket", false, 3, []map[string]any{rec("connect", "ENOENT",
		"family", "AF_UNIX", "addr", "/tmp/app.sock")}},
	{"runtime-socket-access", "a TCP service", false, 0, []map[string]any{rec("connect", "ECONNREFUSED",
		"family", "AF_INET", "addr", "127.0.0.1", "port", 2375)}},

	{"packet-socket-attempt", "AF_PACKET", true, 0, []map[string]any{rec("socket", "EPERM",
		"family", "AF_PACKET", "sock_type", "SOCK_RAW", "protocol", 768)}},
	{"packet-socket-attempt", "ping", false, 0, []map[string]any{
		rec("socket", "EPERM", "family", "AF_INET", "sock_type", "SOCK_RAW", "protocol", 1),
		rec("socket", "EACCES", "family", "AF_INET", "sock_type", "SOCK_DGRAM", "protocol", 1)}},
	{"packet-socket-attempt", "a burst (raw-socket-attempt's)", false, 5, []map[string]any{rec("socket", "EPERM",
		"family", "AF_PACKET", "sock_type", "SOCK_RAW", "protocol", 768)}},

	{"setuid-root-attempt", "setuid(0)", true, 0, []map[string]any{rec("setuid", "EPERM",
		"args", map[string]int64{"uid": 0})}},
	{"setuid-root-attempt", "setresgid(0, 0, 0)", true, 0, []map[string]any{rec("setresgid", "EPERM",
		"args", map[string]int64{"rgid": 0, "egid": 0, "sgid": 0})}},
	{"setuid-root-attempt", "setuid(1000)", false, 0, []map[string]any{rec("setuid", "EPERM",
		"args", map[string]int64{"uid": 1000})}},

	{"binary-discovery", "hunting interpreters", true, 954, execs("python2.0", "python2.1")},
	{"binary-discovery", "pyenv's shims searching PATH for bash", false, 690, execs("bash")},
	{"binary-discovery", "xargs -n1 true over 700 lines", false, 2100, execs("true")},
	{"binary-discovery", "records turned off: the count alone", true, 700, nil},
	{"tool-discovery", "nmap and ncat", true, 240, execs("nmap", "ncat", "socat")},
	{"tool-discovery", "an entrypoint's helpers and nc", false, 0, execs("nc", "tini")},
	{"tool-discovery", "curl or wget", false, 0, execs("curl", "wget")},
	{"tool-discovery", "hunting interpreters (binary-discovery's)", false, 954, execs("python2.0", "python2.1")},
}
