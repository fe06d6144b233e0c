package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/errnowatch/errnowatch/pkg/alert"
	"github.com/errnowatch/errnowatch/pkg/alertfmt"
	"github.com/errnowatch/errnowatch/test/hostbaseline"
)

// hostAgent is errnowatch as `make run` runs it: standalone on this machine
// (--no-kubernetes), the repository's rules, an embedded collector. The
// whole-system test runs one beside the chart's agent from before helm
// install to after helm uninstall, so that whatever the node's own daemons
// and the test harness do is seen by an agent that outlives the release.
type hostAgent struct {
	dir    string
	health string
	cmd    *exec.Cmd
	out    lockedBuffer
	done   chan error
	// programs are the BPF programs this agent loaded: uninstall's check
	// that the chart's agent left nothing in the kernel skips them.
	programs map[ebpf.ProgramID]bool
}

// lockedBuffer keeps what a child process writes, for reading while it runs.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startHostAgent starts the standalone agent with its data in dir and
// waits until it is ready (program attached, rules loaded).
func startHostAgent(ctx context.Context, bin, rulesDir, dir string) (*hostAgent, error) {
	before := loadedPrograms()
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	h := &hostAgent{dir: dir, health: fmt.Sprintf("127.0.0.1:%d", ports[1]), done: make(chan error, 1)}
	h.cmd = exec.Command(filepath.Join(bin, "errnowatch"), "agent", "--no-kubernetes",
		"--rules", rulesDir, "--embedded-collector", dir, "--spool-dir", filepath.Join(dir, "spool"),
		"--print-alerts", "--log-format", "json",
		"--metrics-address", fmt.Sprintf("127.0.0.1:%d", ports[0]), "--health-address", h.health)
	h.cmd.Stdout, h.cmd.Stderr = &h.out, &h.out
	if err := h.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start standalone agent: %w", err)
	}
	go func() { h.done <- h.cmd.Wait() }()
	err = poll(ctx, 500*time.Millisecond, func() (bool, error) {
		select {
		case err := <-h.done:
			h.done <- err
			return false, fmt.Errorf("standalone agent exited: %v", err)
		default:
		}
		return httpOK(ctx, "http://"+h.health+"/readyz") == nil, nil
	})
	if err != nil {
		_ = h.stop()
		return nil, fmt.Errorf("standalone agent not ready: %w\n%s", err, h.out.String())
	}
	h.programs = map[ebpf.ProgramID]bool{}
	for id := range loadedPrograms() {
		if !before[id] {
			h.programs[id] = true
		}
	}
	return h, nil
}

// alerts lists every alert the standalone agent stored.
func (h *hostAgent) alerts(ctx context.Context) ([]alertfmt.Record, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(e.bin, "errnowatch"), "alerts", "list", "-o", "json",
		"--limit", "10000", "--server", "unix://"+filepath.Join(h.dir, "collector.sock"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("alerts list of the standalone agent: %w: %s", err, stderr.String())
	}
	return parseRecords(stdout.String())
}

// stop ends the agent with SIGTERM (it detaches and flushes) and waits.
func (h *hostAgent) stop() error {
	if h == nil || h.cmd.Process == nil {
		return nil
	}
	_ = h.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-h.done:
		h.done <- err
		return nil
	case <-time.After(30 * time.Second):
		_ = h.cmd.Process.Kill()
		<-h.done
		return fmt.Errorf("standalone agent did not stop on SIGTERM within 30 s")
	}
}

func httpOK(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	return nil
}

// freePorts finds n free loopback ports.
func freePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// loadedPrograms are the loaded BPF programs of errnowatch's sensor, by id.
func loadedPrograms() map[ebpf.ProgramID]bool {
	ids := map[ebpf.ProgramID]bool{}
	var id ebpf.ProgramID
	for {
		next, err := ebpf.ProgramGetNextID(id)
		if err != nil {
			return ids
		}
		id = next
		p, err := ebpf.NewProgramFromID(id)
		if err != nil {
			continue
		}
		info, err := p.Info()
		p.Close()
		if err == nil && slices.Contains(sensorProgramNames, info.Name) {
			ids[id] = true
		}
	}
}

// hostCause is a host alert the run may make, and why: of rule (any rule
// when empty), made by the processes pids or named comms.
type hostCause struct {
	rule   string
	pids   []int
	comms  []string
	reason string
}

// hostCauses are the host alerts this run makes on purpose (the
// host-attack step adds its processes) or knows to expect.
var hostCauses = []hostCause{
	{comms: []string{"attacks.test", "hostbaseline.te", hostbaseline.SweepComm},
		reason: "another package's tests on this machine (make test runs test/attacks and test/hostbaseline " +
			"as host processes, and other checkouts share the machine): they make every attack on purpose"},
	// pyenv alone no longer fires binary-discovery (its shims only search
	// PATH for bash: one name), but in the host's root cgroup its ~230
	// execve ENOENT per python3 call can mix with another process searching
	// another name; named so that a concurrent python call does not fail
	// the run.
	{rule: "binary-discovery", comms: []string{"pyenv", "pyenv-*", "python3"},
		reason: "pyenv's shims searching PATH with execve (a python call on this machine)"},
}

// explain returns why a host alert is expected, or "" when the run cannot
// explain it. It is of a cause's rule and sampled one of the processes
// the run started on purpose (each in a cgroup of its own); or it is in a
// cgroup a test made; or every process it sampled matches a cause's names.
func explain(a alertfmt.Record, causes []hostCause) string {
	for _, c := range causes {
		if c.rule == a.RuleID && len(c.pids) > 0 && slices.ContainsFunc(a.Processes, func(p alert.Process) bool { return slices.Contains(c.pids, int(p.PID)) }) {
			return c.reason
		}
	}
	// cgrouptest names the cgroups it makes for tests' workloads
	// "/errnowatch-test-<random>/...": no daemon of the node lives there.
	if strings.HasPrefix(a.CgroupPath, "/errnowatch-test-") {
		return "a cgroup a test made for its workload (pkg/cgroup/cgrouptest): tests on this machine fail syscalls on purpose in host-shaped ones"
	}
	for _, c := range causes {
		if (c.rule != "" && a.RuleID != c.rule) || len(a.Processes) == 0 {
			continue
		}
		all := true
		for _, p := range a.Processes {
			all = all && (slices.Contains(c.pids, int(p.PID)) || slices.ContainsFunc(c.comms, func(g string) bool {
				m, _ := path.Match(g, p.Comm)
				return m
			}))
		}
		if all {
			return c.reason
		}
	}
	return ""
}

// describeHost prints a host alert with what says who made it.
func describeHost(a alertfmt.Record) string {
	var procs []string
	for _, p := range a.Processes {
		procs = append(procs, fmt.Sprintf("%s[%d] uid %d", p.Comm, p.PID, p.UID))
	}
	var counts []string
	for _, c := range a.Counts {
		counts = append(counts, fmt.Sprintf("%s %s %d", c.Syscall, c.Errno, c.Count))
	}
	return fmt.Sprintf("%s on %s (%s): %s; processes %s; counts %s", a.RuleID, a.CgroupPath, a.Node, a.Message,
		strings.Join(procs, ", "), strings.Join(counts, ", "))
}

// checkHostAlerts fails the test for every host alert no cause explains,
// and logs the explained ones with their reason.
func checkHostAlerts(t *testing.T, who string, as []alertfmt.Record, causes []hostCause) {
	t.Helper()
	for _, a := range latest(as) {
		if !a.Host {
			continue
		}
		if why := explain(a, causes); why != "" {
			t.Logf("%s: expected host alert %s: %s", who, describeHost(a), why)
			continue
		}
		t.Errorf("%s: unexplained host alert %s", who, describeHost(a))
	}
}

// repoRules is the repository's rules directory, as make run passes it.
func repoRules() string { p, _ := filepath.Abs("../../rules"); return p }
