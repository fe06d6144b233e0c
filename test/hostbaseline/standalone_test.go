package hostbaseline

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/errnowatch/errnowatch/pkg/agent"
	"github.com/errnowatch/errnowatch/pkg/alert"
	"github.com/errnowatch/errnowatch/pkg/cgroup/cgrouptest"
	"github.com/errnowatch/errnowatch/test/attacks"
)

var quietFor = flag.Duration("hostbaseline.duration", 30*time.Second,
	"how long TestStandaloneQuiet watches the host (make run's 5-minute check: -hostbaseline.duration=5m)")

var rulesDir = flag.String("hostbaseline.rules", "../../rules", "the rules TestStandaloneQuiet runs (make run's: the repository's)")

func TestMain(m *testing.M) {
	Main()
	attacks.Main()
	os.Exit(m.Run())
}

// TestStandaloneQuiet runs the agent as `make run` does (standalone, no
// Kubernetes, the repository's rules) against this host's own activity,
// whatever else runs here (under go test ./..., every other package's
// tests), for -hostbaseline.duration, with the benign /proc reader running
// throughout as root and as nobody in a host cgroup of their own, which
// must raise nothing. It lists every alert, and fails on each host alert
// it cannot explain (on a machine shared with other sessions, their
// activity counts too: the host is the host). Then it checks the rules still catch the
// host: the same /proc sweep under another name, and the
// permission-probing attack run as a host process, each raise their alert.
func TestStandaloneQuiet(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("the agent needs root (BPF); run the tests as root")
	}
	dir, err := ExecDir()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })

	a := startAgent(t)
	scrapes := int(quietFor.Seconds())
	var readers []*exec.Cmd
	for _, uid := range []uint32{0, Nobody} {
		cmd, err := ProcReader(dir, ExporterComm, uid, scrapes)
		if err != nil {
			t.Fatal(err)
		}
		readers = append(readers, cmd)
	}
	// The readers get a host cgroup of their own: an alert there is theirs
	// alone, whatever else runs on this host meanwhile.
	exporter := cgrouptest.New(t, "host-exporter")
	outs := runAll(t, exporter, readers)
	for _, out := range outs {
		t.Logf("benign %s reader: %s", ExporterComm, out)
	}
	quiet := a.snapshot()

	// The rules still see the host.
	sweep, err := ProcReader(dir, SweepComm, Nobody, 2)
	if err != nil {
		t.Fatal(err)
	}
	w, _ := attacks.Lookup("permission-probing")
	attack := w.Command(attacks.Scratch(t))
	// Each in a host cgroup of its own (outside any pod, as a systemd
	// service is): in the root cgroup they would share one alert key with
	// each other and with whatever else runs there, and a second pattern
	// on an open alert only updates it, once per cooldown.
	for _, c := range []struct {
		cmd *exec.Cmd
		cg  string
	}{{sweep, "host-procsweep"}, {attack, "host-attack"}} {
		var out strings.Builder
		c.cmd.Stdout, c.cmd.Stderr = &out, &out
		if err := cgrouptest.New(t, c.cg).Run(c.cmd); err != nil {
			t.Fatalf("%s: %v: %s", c.cmd.Path, err, out.String())
		}
	}
	causes := []cause{
		{rule: "permission-probing", pid: sweep.Process.Pid,
			why: "the /proc sweep as nobody under a name the default rules do not exclude"},
		{rule: "permission-probing", pid: attack.Process.Pid,
			why: "test/attacks' permission-probing attack run as a host process"},
	}
	for _, c := range causes {
		if err := a.waitFor(c); err != nil {
			t.Errorf("%s: %v", c.why, err)
		}
	}
	a.stop(t)

	all := a.snapshot()
	t.Logf("%d alerts in %s of host activity (%d before the host attacks):", len(all), *quietFor, len(quiet))
	for _, al := range all {
		t.Logf("  %s", describe(al))
	}
	for _, al := range all {
		if al.CgroupPath == exporter.Rel {
			t.Errorf("the benign %s readers raised %s", ExporterComm, describe(al))
			continue
		}
		if !al.Host {
			// A cgroup another test made for its workload (pkg/rules'
			// pack test, pkg/sensor's tests): not the host's own activity.
			continue
		}
		if why := explain(al, causes); why != "" {
			t.Logf("expected: %s: %s", al.RuleID, why)
			continue
		}
		t.Errorf("unexplained host alert: %s", describe(al))
	}
}

// cause is a host alert the test makes on purpose (pid != 0), or host
// activity of other tests it is told to expect (comm).
type cause struct {
	rule  string // "" for any rule
	pid   int
	comms []string // shell globs
	why   string
}

// otherTests are the host processes of other packages' tests that may run
// beside this one under go test ./... and fail syscalls on purpose.
var otherTests = []cause{
	{comms: []string{"attacks.test"}, why: "test/attacks runs every attack and benign workload as a host process " +
		"to check that each makes the failures it claims"},
	// pyenv alone no longer fires binary-discovery (its shims only search
	// PATH for bash: one name, about 230 execve ENOENT per python3 call),
	// but in the host's root cgroup its searches can mix with another
	// process searching another name; named so that a concurrent python
	// call does not fail the suite.
	{rule: "binary-discovery", comms: []string{"pyenv", "pyenv-*", "python3"},
		why: "pyenv's shims searching PATH with execve (a python call on this machine)"},
}

// explain returns why a host alert is expected, or "": every process it
// sampled must be one of a cause's.
func explain(a alert.Alert, causes []cause) string {
	// cgrouptest names the cgroups it makes for tests' workloads
	// "/errnowatch-test-<random>/...": no host daemon lives there.
	if strings.HasPrefix(a.CgroupPath, testCgroupPrefix) {
		for _, c := range causes {
			if c.pid != 0 && a.RuleID == c.rule && slices.ContainsFunc(a.Processes, func(p alert.Process) bool { return int(p.PID) == c.pid }) {
				return c.why
			}
		}
		return "a cgroup another test made for its workload (pkg/cgroup/cgrouptest): pkg/sensor's, cmd/errnowatch's " +
			"and test/e2e/images' tests fail syscalls on purpose in host-shaped ones"
	}
	for _, c := range append(slices.Clone(causes), otherTests...) {
		if (c.rule != "" && a.RuleID != c.rule) || len(a.Processes) == 0 {
			continue
		}
		ok := true
		for _, p := range a.Processes {
			ok = ok && ((c.pid != 0 && int(p.PID) == c.pid) || slices.ContainsFunc(c.comms, func(g string) bool {
				m, _ := path.Match(g, p.Comm)
				return m
			}))
		}
		if ok {
			return c.why
		}
	}
	return ""
}

// testCgroupPrefix starts the path of every cgroup cgrouptest makes.
const testCgroupPrefix = "/errnowatch-test-"

func describe(a alert.Alert) string {
	var procs []string
	for _, p := range a.Processes {
		procs = append(procs, fmt.Sprintf("%s[%d] uid %d", p.Comm, p.PID, p.UID))
	}
	where := a.CgroupPath
	if a.Host {
		where = "host " + where
	}
	return fmt.Sprintf("%s (rev %d) on %s: %s; processes: %s", a.RuleID, a.Revision, where, a.Message, strings.Join(procs, ", "))
}

// runAll starts the commands together in cg and waits for all; each must
// exit 0. It returns their standard output.
func runAll(t *testing.T, cg *cgrouptest.Dir, cmds []*exec.Cmd) []string {
	t.Helper()
	outs := make([]strings.Builder, len(cmds))
	errs := make([]strings.Builder, len(cmds))
	for i, c := range cmds {
		c.Stdout, c.Stderr = &outs[i], &errs[i]
		if err := cg.Start(c); err != nil {
			t.Fatalf("start %s: %v", c.Path, err)
		}
	}
	res := make([]string, len(cmds))
	for i, c := range cmds {
		if err := c.Wait(); err != nil {
			t.Fatalf("%s: %v: %s", c.Path, err, errs[i].String())
		}
		res[i] = strings.TrimSpace(outs[i].String())
	}
	return res
}

// runningAgent is the standalone agent, in this process.
type runningAgent struct {
	cancel context.CancelFunc
	done   chan error
	mu     sync.Mutex
	alerts map[string]alert.Alert // latest revision by id
}

func startAgent(t *testing.T) *runningAgent {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	health := l.Addr().String()
	l.Close()
	ctx, cancel := context.WithCancel(context.Background())
	a := &runningAgent{cancel: cancel, done: make(chan error, 1), alerts: map[string]alert.Alert{}}
	cfg := agent.Config{
		NoKubernetes:  true,
		Rules:         []string{*rulesDir},
		SpoolDir:      t.TempDir(),
		Interval:      time.Second,
		HealthAddress: health,
		Log:           zap.NewNop(),
		OnAlert: func(al alert.Alert) {
			a.mu.Lock()
			defer a.mu.Unlock()
			if old, ok := a.alerts[al.ID]; !ok || al.Revision >= old.Revision {
				a.alerts[al.ID] = al
			}
		},
	}
	go func() { a.done <- agent.Run(ctx, cfg) }()
	t.Cleanup(func() { a.stop(t) })
	deadline := time.Now().Add(time.Minute)
	for {
		select {
		case err := <-a.done:
			a.done <- err
			t.Fatalf("agent exited: %v", err)
		default:
		}
		if resp, err := http.Get("http://" + health + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return a
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("agent not ready after a minute")
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (a *runningAgent) snapshot() []alert.Alert {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]alert.Alert, 0, len(a.alerts))
	for _, al := range a.alerts {
		out = append(out, al)
	}
	slices.SortFunc(out, func(x, y alert.Alert) int { return strings.Compare(x.ID, y.ID) })
	return out
}

// waitFor waits up to 30 s (rules evaluate every interval; the alert comes
// within a few) for an alert of the cause's rule sampling its pid.
func (a *runningAgent) waitFor(c cause) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for _, al := range a.snapshot() {
			if al.RuleID == c.rule && slices.ContainsFunc(al.Processes, func(p alert.Process) bool { return int(p.PID) == c.pid }) {
				return nil
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	return fmt.Errorf("no %s alert with pid %d in 30 s", c.rule, c.pid)
}

func (a *runningAgent) stop(t *testing.T) {
	a.cancel()
	err := <-a.done
	a.done <- err
	if err != nil && !errors.Is(err, context.Canceled) {
		t.Errorf("agent: %v", err)
	}
}
