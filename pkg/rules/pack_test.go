package rules

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"os"
	osexec "os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/cel-go/cel"
	"go.uber.org/zap/zaptest"
	"go.yaml.in/yaml/v3"

	"github.com/errnowatch/errnowatch/pkg/alert"
	"github.com/errnowatch/errnowatch/pkg/cgroup"
	"github.com/errnowatch/errnowatch/pkg/cgroup/cgrouptest"
	"github.com/errnowatch/errnowatch/pkg/enrich"
	"github.com/errnowatch/errnowatch/pkg/sensor"
	"github.com/errnowatch/errnowatch/pkg/syscalls"
	"github.com/errnowatch/errnowatch/test/attacks"
)

const (
	defaultPack = "../../rules/default.yaml"
	// recordsPack holds the default rules that read records; it joins
	// defaultPack once conditions can read records.
	recordsPack = "../../rules/records/default.yaml"
)

// recordsInConditions reports whether conditions can read the window's
// records, by compiling one that does with the package's own loader. It
// fails the test on any other error.
func recordsInConditions(t *testing.T) bool {
	t.Helper()
	_, err := Parse("records-probe.yaml", []byte(`rules:
  - id: records-probe
    description: does the condition environment have records?
    severity: info
    condition: size(records) >= 0
`))
	var errs Errors
	switch {
	case err == nil:
		return true
	case errors.As(err, &errs) && len(errs) == 1 && strings.Contains(errs[0].Msg, "undeclared reference to 'records'"):
		return false
	}
	t.Fatalf("probe for records in conditions: %v", err)
	return false
}

// loadPack loads the default pack, with its rules over records when
// conditions can read records. A records pack already merged into
// default.yaml (or removed) is fine.
func loadPack(t *testing.T, withRecords bool) *RuleSet {
	t.Helper()
	paths := []string{defaultPack}
	if _, err := os.Stat(recordsPack); withRecords && err == nil {
		paths = append(paths, recordsPack)
	}
	rs, err := Load(paths...)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// TestRecordsPackContract compiles each condition of the rules over
// records against the contract they are written to (records as a list of
// objects with syscall, errno, comm, path, family, addr, sock_type,
// protocol, args..., and glob(string, string)), so that the file is
// type-checked before the rules package has records. Once it has them,
// TestDefaultPackOnKernel loads the file with the real environment.
func TestRecordsPackContract(t *testing.T) {
	data, err := os.ReadFile(recordsPack)
	if errors.Is(err, os.ErrNotExist) {
		t.Skip(recordsPack + " is merged into rules/default.yaml")
	}
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Rules []struct{ ID, Condition string }
	}
	if err := yaml.Unmarshal(data, &file); err != nil {
		t.Fatal(err)
	}
	base, err := celEnv()
	if err != nil {
		t.Fatal(err)
	}
	env, err := base.Extend(
		cel.Variable("records", cel.ListType(cel.MapType(cel.StringType, cel.DynType))),
		cel.Function("glob", cel.Overload("glob_string_string", []*cel.Type{cel.StringType, cel.StringType}, cel.BoolType)),
	)
	if err != nil {
		t.Fatal(err)
	}
	if len(file.Rules) < 8 {
		t.Fatalf("%s has %d rules, want 8", recordsPack, len(file.Rules))
	}
	for _, r := range file.Rules {
		ast, iss := env.Compile(r.Condition)
		if iss.Err() != nil {
			t.Errorf("%s: %v", r.ID, iss.Err())
			continue
		}
		if !ast.OutputType().IsExactType(cel.BoolType) {
			t.Errorf("%s: condition is %s, want bool", r.ID, ast.OutputType())
		}
	}
	if recordsInConditions(t) {
		t.Logf("conditions can read records: append %s to %s and delete it", recordsPack, defaultPack)
	}
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
	withRecords := recordsInConditions(t)
	rs := loadPack(t, withRecords)
	log := zaptest.NewLogger(t)
	s, err := sensor.Load(sensor.Config{}, log)
	if err != nil {
		t.Fatalf("load sensor: %v", err)
	}
	defer s.Close()

	var runs []*packRun
	for _, w := range attacks.Extended() {
		if w.Set == attacks.Records && !withRecords {
			continue
		}
		runs = append(runs, newPackRun(t, w, rs))
	}
	runAll(t, s, runs)

	attacked, nearMissed := map[string]bool{}, map[string]bool{}
	for _, r := range runs {
		attacked[r.w.Rule], nearMissed[r.w.Near] = true, true
	}
	for _, w := range attacks.Extended() {
		t.Run(w.Name, func(t *testing.T) {
			if w.Set == attacks.Records && !withRecords {
				t.Skipf("rule %s reads records, which conditions cannot yet: runs once they can", w.Rule+w.Near)
			}
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
		eng: NewEngine(rs, Config{Interval: time.Second, Node: "test-node"}, zaptest.NewLogger(t)),
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
