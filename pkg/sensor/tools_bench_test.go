package sensor

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/errnowatch/errnowatch/pkg/sensor/internal/baseline"
)

// tool is another program that counts failing syscalls in the kernel, run
// as its users run it, in one of the modes of BenchmarkKernelCost.
type tool struct {
	name string
	// path and pkg: where Debian installs it, and the package to install.
	path, pkg string
	args      []string
}

// comparedTools are the usual ways to count failing syscalls per syscall
// and errno, per mode: bpftrace's one-liner and libbpf-tools' syscount.
func comparedTools(mode string) []tool {
	bt := func(script string) tool {
		return tool{name: "bpftrace", path: "/usr/bin/bpftrace", pkg: "bpftrace", args: []string{"-e", script}}
	}
	sc := func(args ...string) tool {
		return tool{name: "syscount", path: "/usr/sbin/syscount", pkg: "libbpf-tools", args: args}
	}
	switch mode {
	case "failures-only":
		return []tool{
			bt(`tracepoint:raw_syscalls:sys_exit /args->ret < 0/ { @[args->id, args->ret] = count(); }`),
			sc("-x"),
		}
	case "all-exits":
		return []tool{
			bt(`tracepoint:raw_syscalls:sys_exit { @[args->id, args->ret < 0 ? args->ret : 0] = count(); }`),
			sc(),
		}
	default: // durations
		return []tool{
			bt(`tracepoint:raw_syscalls:sys_enter { @s[tid] = nsecs; } ` +
				`tracepoint:raw_syscalls:sys_exit /@s[tid]/ { @[args->id] = hist(nsecs - @s[tid]); delete(@s[tid]); }`),
			sc("-L"),
		}
	}
}

// sensorConfig is the sensor's configuration in each mode of
// BenchmarkKernelCost.
func sensorConfig(mode string) Config {
	switch mode {
	case "all-exits":
		return Config{Filter: Filter{AllExits: true}}
	case "durations":
		return Config{Durations: true}
	}
	return Config{}
}

// BenchmarkKernelCostTools measures, as BenchmarkKernelCost does for the
// sensor, the kernel time bpftrace's and syscount's own programs spend per
// sys_exit, against the counter-only program attached in the same window.
// The sensor is attached in the same mode in the same window too, so that
// the tool and the sensor are compared on the same exits: on a busy
// virtual machine, windows a minute apart differ by more than the
// programs do. A program's cost is the run time of all its programs
// (sys_enter too, in the durations mode) divided by the exits the counter
// saw, so it is the cost each syscall pays for it.
func BenchmarkKernelCostTools(b *testing.B) {
	for _, mode := range []string{"failures-only", "all-exits", "durations"} {
		for _, tl := range comparedTools(mode) {
			b.Run(mode+"/"+tl.name, func(b *testing.B) { benchTool(b, mode, tl) })
		}
	}
}

func benchTool(b *testing.B, mode string, tl tool) {
	if _, err := os.Stat(tl.path); err != nil {
		b.Skipf("%s is not installed (apt-get install %s): %v", tl.path, tl.pkg, err)
	}
	stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		b.Fatalf("enable BPF run-time statistics: %v", err)
	}
	defer stats.Close()
	base, err := baseline.Attach()
	if err != nil {
		b.Fatal(err)
	}
	defer base.Close()

	ensureTracefs(b)
	cmd := exec.Command(tl.path, tl.args...)
	out := filepath.Join(b.TempDir(), tl.name+".log")
	log, err := os.Create(out)
	if err != nil {
		b.Fatal(err)
	}
	defer log.Close()
	cmd.Stdout, cmd.Stderr = log, log
	// Its own process group, so that an interrupt reaches only the tool.
	cmd.SysProcAttr = &unix.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		b.Fatalf("start %s: %v", tl.name, err)
	}
	exited := make(chan struct{}) // closed once cmd.Wait returned
	go func() { cmd.Wait(); close(exited) }()
	defer func() {
		// SIGINT is how its users stop it: both print their maps and exit.
		cmd.Process.Signal(unix.SIGINT)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	}()
	progs := toolPrograms(b, tl, cmd.Process.Pid, exited, out)
	defer func() {
		for _, p := range progs {
			p.Close()
		}
	}()

	s, err := Load(sensorConfig(mode))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	defer drainEverySecond(s)()
	ours := []*ebpf.Program{s.objs.OnSysExit}
	if s.objs.OnSysEnter != nil && sensorConfig(mode).Durations {
		ours = append(ours, s.objs.OnSysEnter)
	}

	cost := func(ps []*ebpf.Program) progCost {
		var c progCost
		for _, p := range ps {
			pc := readCost(b, p)
			c.runs += pc.runs
			c.ns += pc.ns
		}
		return c
	}
	// More rounds than BenchmarkKernelCost: three programs share each
	// round, and the median needs more of them on a busy machine.
	const rounds = 15
	per := max(b.N/rounds, 20000)
	var theirs, sensor, mins, diff, sensorDiff []float64
	b.ResetTimer()
	for r := 0; r < rounds; r++ {
		t0, s0, m0 := cost(progs), cost(ours), readCost(b, base.Prog())
		mixedWorkload(per)
		t1, s1, m1 := cost(progs), cost(ours), readCost(b, base.Prog())
		if m1.runs == m0.runs {
			b.Fatal("the counter-only program saw no exits")
		}
		exits := float64(m1.runs - m0.runs)
		theirs = append(theirs, float64(t1.ns-t0.ns)/exits)
		sensor = append(sensor, float64(s1.ns-s0.ns)/exits)
		mins = append(mins, m1.since(m0))
		diff = append(diff, theirs[r]-mins[r])
		sensorDiff = append(sensorDiff, sensor[r]-mins[r])
	}
	b.StopTimer()
	b.ReportMetric(median(theirs), "ns/exit-"+tl.name)
	b.ReportMetric(median(mins), "ns/exit-minimal")
	b.ReportMetric(median(diff), "ns/exit-over-minimal")
	b.ReportMetric(median(sensor), "ns/exit-sensor")
	b.ReportMetric(median(sensorDiff), "ns/exit-sensor-over-minimal")
	ran := 0
	for _, p := range progs {
		if readCost(b, p).runs > 0 {
			ran++
		}
	}
	b.ReportMetric(float64(ran), "programs")
}

// toolPrograms waits until the tool holds its BPF programs and they run,
// and opens them by id. Only the tool's own file descriptors count, so
// other programs on the machine (other tests' sensors) are left out.
func toolPrograms(b *testing.B, tl tool, pid int, exited <-chan struct{}, out string) []*ebpf.Program {
	b.Helper()
	deadline := time.Now().Add(60 * time.Second) // bpftrace compiles its script with LLVM first
	for {
		select {
		case <-exited:
			b.Fatalf("%s exited before attaching: %s", tl.name, readLog(out))
		default:
		}
		// A tool may load programs it leaves unattached (syscount's
		// sys_enter without -L); they never run and cost nothing.
		var progs []*ebpf.Program
		running := false
		for _, id := range programIDsOf(pid) {
			p, err := ebpf.NewProgramFromID(id)
			if err != nil {
				continue
			}
			progs = append(progs, p)
			if st, err := p.Stats(); err == nil && st.RunCount > 0 {
				running = true
			}
		}
		if running {
			// bpftrace attaches its probes one after another.
			time.Sleep(500 * time.Millisecond)
			return progs
		}
		for _, p := range progs {
			p.Close()
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s attached no running BPF program in 60 s: %s", tl.name, readLog(out))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// programIDsOf lists the BPF programs a process holds, from its fdinfo.
func programIDsOf(pid int) []ebpf.ProgramID {
	dir := fmt.Sprintf("/proc/%d/fdinfo", pid)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var ids []ebpf.ProgramID
	seen := map[ebpf.ProgramID]bool{} // a link's fd names its program too
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "prog_id:"); ok {
				if n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32); err == nil && !seen[ebpf.ProgramID(n)] {
					seen[ebpf.ProgramID(n)] = true
					ids = append(ids, ebpf.ProgramID(n))
				}
			}
		}
	}
	return ids
}

func readLog(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

// ensureTracefs mounts tracefs where the tools look for tracepoints when
// the machine has not, and unmounts it again afterwards: bpftrace and
// syscount attach through perf events, which name a tracepoint by its id
// from tracefs (the sensor attaches raw tracepoints by name and needs none).
func ensureTracefs(b *testing.B) {
	const dir = "/sys/kernel/tracing"
	if _, err := os.Stat(filepath.Join(dir, "events")); err == nil {
		return
	} else if !errors.Is(err, os.ErrNotExist) {
		b.Fatal(err)
	}
	if err := unix.Mount("tracefs", dir, "tracefs", 0, ""); err != nil {
		b.Skipf("no tracefs at %s, which bpftrace and syscount need, and mounting it failed: %v", dir, err)
	}
	b.Cleanup(func() { unix.Unmount(dir, 0) })
}

// drainEverySecond drains the sensor every second, as the agent does,
// until the returned stop is called.
func drainEverySecond(s *Sensor) (stop func()) {
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				s.Drain()
			}
		}
	}()
	return func() { close(done); <-stopped }
}
