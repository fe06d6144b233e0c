package hostbaseline

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"github.com/errnowatch/errnowatch/pkg/alert"
	"github.com/errnowatch/errnowatch/pkg/cgroup/cgrouptest"
	"github.com/errnowatch/errnowatch/test/attacks"
)

// RunHostAttacks runs the host attacks the rules must still catch, each to
// its end: the /proc sweep as nobody under a name no rule excludes
// (SweepComm), and test/attacks' permission-probing attack as a host
// process. dir is ExecDir's. It returns the finished commands, whose pids
// the alerts name. Each runs in a host cgroup of its own (outside any pod,
// as a systemd service is): in the root cgroup they would share one alert
// key with each other and with whatever else runs there, and a second
// pattern on an open alert only updates it, once per cooldown.
func RunHostAttacks(tb testing.TB, dir string) (sweep, attack *exec.Cmd) {
	tb.Helper()
	sweep, err := ProcReader(dir, SweepComm, Nobody, 2)
	if err != nil {
		tb.Fatal(err)
	}
	w, _ := attacks.Lookup("permission-probing")
	attack = w.Command(attacks.Scratch(tb))
	for _, c := range []struct {
		cmd *exec.Cmd
		cg  string
	}{{sweep, "host-procsweep"}, {attack, "host-attack"}} {
		var out strings.Builder
		c.cmd.Stdout, c.cmd.Stderr = &out, &out
		if err := cgrouptest.New(tb, c.cg).Run(c.cmd); err != nil {
			tb.Fatalf("%s: %v: %s", c.cmd.Path, err, out.String())
		}
	}
	return sweep, attack
}

// Describe is a host alert on one line with what says who made it: its
// rule and revision, cgroup and node, message, processes and counts.
func Describe(a *alert.Alert) string {
	var procs []string
	for _, p := range a.Processes {
		procs = append(procs, fmt.Sprintf("%s[%d] uid %d", p.Comm, p.PID, p.UID))
	}
	var counts []string
	for _, c := range a.Counts {
		counts = append(counts, fmt.Sprintf("%s %s %d", c.Syscall, c.Errno, c.Count))
	}
	where := a.CgroupPath
	if a.Host {
		where = "host " + where
	}
	return fmt.Sprintf("%s (rev %d) on %s (%s): %s; processes: %s; counts: %s", a.RuleID, a.Revision, where, a.Node,
		a.Message, strings.Join(procs, ", "), strings.Join(counts, ", "))
}
