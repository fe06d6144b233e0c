package sensor

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/errnowatch/errnowatch/pkg/cgroup"
	"github.com/errnowatch/errnowatch/pkg/cgroup/cgrouptest"
	"github.com/errnowatch/errnowatch/pkg/sensor/internal/baseline"
)

// progCost is the kernel's run-time statistics of one program.
type progCost struct {
	runs uint64
	ns   time.Duration
}

func readCost(b *testing.B, p *ebpf.Program) progCost {
	st, err := p.Stats()
	if err != nil {
		b.Fatal(err)
	}
	return progCost{runs: st.RunCount, ns: st.Runtime}
}

func (c progCost) since(prev progCost) float64 {
	if c.runs == prev.runs {
		return 0
	}
	return float64(c.ns-prev.ns) / float64(c.runs-prev.runs)
}

// mixedWorkload makes n syscalls on every CPU at once, half of them failing
// (close(-1): EBADF) and half succeeding (getppid).
func mixedWorkload(n int) {
	var wg sync.WaitGroup
	for c := 0; c < runtime.NumCPU(); c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			for i := 0; i < n/2; i++ {
				unix.Close(-1)
				unix.Getppid()
			}
		}()
	}
	wg.Wait()
}

// BenchmarkKernelCost measures the sensor's sys_exit program in ns per run
// against a counter-only program attached to the same tracepoint at the
// same time, from the kernel's own run-time statistics. On a virtual
// machine separate runs differ by more than the effect, so both programs
// see the same exits, and each of several rounds compares them; the
// reported figures are the medians.
//
// Programs on a tracepoint run in attach order, and the first one pays for
// cold caches (tens of ns here), so rounds alternate the order: the sensor
// first and the counter after it (ns/exit-over-minimal, the figure earlier
// reports gave), then the counter first (ns/exit-over-minimal-second). The
// order penalty falls on the sensor in the one and on the counter in the
// other, so their mean (ns/exit-over-minimal-mean) is the sensor's own cost
// over the counter.
//
// all-exits-pod-scope runs all exits the way the agent does: the filter
// includes a pod cgroup and the workload runs in a child process in a
// container cgroup below it, so each exit's verdict comes from its
// cgroup's parent.
func BenchmarkKernelCost(b *testing.B) {
	for _, mode := range []struct {
		name     string
		cfg      Config
		podScope bool // the workload runs in a container of a pod the filter includes
	}{
		{"failures-only", Config{}, false},
		{"all-exits", Config{Filter: Filter{AllExits: true}}, false},
		{"durations", Config{Durations: true}, false},
		{"all-exits-pod-scope", Config{Filter: Filter{AllExits: true}}, true},
	} {
		b.Run(mode.name, func(b *testing.B) {
			stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
			if err != nil {
				b.Fatalf("enable BPF run-time statistics: %v", err)
			}
			defer stats.Close()
			s, err := Load(mode.cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			workload := mixedWorkload
			if mode.podScope {
				// As the agent runs: its scope names pod cgroups, and the
				// workload runs in a container's cgroup below one, so
				// each exit's verdict comes from the cgroup's parent.
				pod := cgrouptest.New(b, cgrouptest.KubeletPath(cgroup.DriverCgroupfs, "containerd", cgroup.QoSBestEffort, cgrouptest.PodUID(), ""))
				ctr := pod.Mkdir(strings.Repeat("c", 64))
				c := startChild(b, ctr)
				f := mode.cfg.Filter
				f.IncludeCgroups = []uint64{pod.ID}
				if err := s.SetFilter(f); err != nil {
					b.Fatal(err)
				}
				workload = func(n int) { c.do("mixed %d", n) }
			}
			var base *baseline.Program
			defer func() { base.Close() }()
			// attach puts the counter after the sensor, or (counterFirst)
			// detaches the sensor's programs and attaches them again after
			// the counter.
			attach := func(counterFirst bool) {
				base.Close()
				if counterFirst {
					s.drainMu.Lock()
					defer s.drainMu.Unlock()
					for _, l := range s.links {
						l.Close()
					}
					s.links = nil
				}
				var err error
				if base, err = baseline.Attach(); err != nil {
					b.Fatal(err)
				}
				if counterFirst {
					for name, p := range s.Programs() {
						l, err := link.AttachTracing(link.TracingOptions{Program: p})
						if err != nil {
							b.Fatalf("attach %s again: %v", name, err)
						}
						s.links = append(s.links, l)
					}
				}
			}
			drainStop := make(chan struct{})
			drained := make(chan struct{})
			go func() { // the agent drains every second; so does this
				defer close(drained)
				t := time.NewTicker(time.Second)
				defer t.Stop()
				for {
					select {
					case <-drainStop:
						return
					case <-t.C:
						s.Drain()
					}
				}
			}()
			defer func() { close(drainStop); <-drained }()

			const rounds = 14 // 7 in each order
			per := max(b.N/rounds, 20000)
			var ours, mins, enter, diff [2][]float64
			b.ResetTimer()
			for r := 0; r < rounds; r++ {
				order := r % 2
				b.StopTimer()
				attach(order == 1)
				b.StartTimer()
				o0, m0 := readCost(b, s.objs.OnSysExit), readCost(b, base.Prog())
				e0 := readCost(b, s.objs.OnSysEnter)
				workload(per)
				o := readCost(b, s.objs.OnSysExit).since(o0)
				m := readCost(b, base.Prog()).since(m0)
				ours[order] = append(ours[order], o)
				mins[order] = append(mins[order], m)
				diff[order] = append(diff[order], o-m)
				enter[order] = append(enter[order], readCost(b, s.objs.OnSysEnter).since(e0))
			}
			b.StopTimer()
			b.ReportMetric(median(ours[0]), "ns/exit-sensor")
			b.ReportMetric(median(mins[0]), "ns/exit-minimal")
			b.ReportMetric(median(diff[0]), "ns/exit-over-minimal")
			b.ReportMetric(median(ours[1]), "ns/exit-sensor-second")
			b.ReportMetric(median(mins[1]), "ns/exit-minimal-first")
			b.ReportMetric(median(diff[1]), "ns/exit-over-minimal-second")
			b.ReportMetric((median(diff[0])+median(diff[1]))/2, "ns/exit-over-minimal-mean")
			if mode.cfg.Durations {
				b.ReportMetric(median(slices.Concat(enter[0], enter[1])), "ns/enter-sensor")
			}
		})
	}
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// BenchmarkExactUnderLoad runs `errnowatch top` (the real binary) on a
// cgroup whose child fails syscalls on every core as fast as it can for
// 10 s, checks that the counts it printed equal the syscalls made, and
// reports the rate and top's CPU time normalised to 500 000 failures/s.
// top runs until it has printed an interval that ended after the child
// exited, however late a loaded machine starts the child.
func BenchmarkExactUnderLoad(b *testing.B) {
	const seconds = 10
	bin := filepath.Join(b.TempDir(), "errnowatch")
	build := exec.Command("go", "build", "-o", bin, "github.com/errnowatch/errnowatch/cmd/errnowatch")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		b.Fatalf("build errnowatch: %v", err)
	}
	for i := 0; i < b.N; i++ {
		cg := cgrouptest.New(b, fmt.Sprintf("ew-load-%d", i))
		top := exec.Command(bin, "top", "-o", "json", "--interval", "1s", "--cgroup", strconv.FormatUint(cg.ID, 10),
			"--count", strconv.Itoa(seconds*10), "--log-level", "error")
		out, err := top.StdoutPipe()
		if err != nil {
			b.Fatal(err)
		}
		top.Stderr = os.Stderr
		topStart := time.Now()
		if err := top.Start(); err != nil {
			b.Fatal(err)
		}
		var counted uint64
		var lines int
		scanned := make(chan error, 1)
		ends := make(chan time.Time, seconds*10) // each interval's end, as top printed it
		go func() {
			sc := bufio.NewScanner(out)
			sc.Buffer(nil, 1<<20)
			for sc.Scan() {
				var iv struct {
					End  time.Time
					Rows []struct {
						Syscall string
						Errno   string
						Count   uint64
					}
				}
				if err := json.Unmarshal(sc.Bytes(), &iv); err != nil {
					scanned <- err
					return
				}
				lines++
				ends <- iv.End
				for _, r := range iv.Rows {
					if r.Syscall == "close" && r.Errno == "EBADF" {
						counted += r.Count
					}
				}
			}
			scanned <- sc.Err()
		}()
		time.Sleep(1500 * time.Millisecond) // top attaches
		load := exec.Command(os.Args[0], "-test.run=^$")
		load.Env = append(os.Environ(), childEnv+"=1")
		load.Stdin = strReader(fmt.Sprintf("flat %d\n", seconds))
		loadOut, err := load.StdoutPipe()
		if err != nil {
			b.Fatal(err)
		}
		if err := cg.Start(load); err != nil {
			b.Fatal(err)
		}
		sc := bufio.NewScanner(loadOut)
		var made uint64
		for sc.Scan() {
			if n, ok := cutDone(sc.Text()); ok {
				made = n
			}
		}
		load.Wait()
		exited := time.Now()
		// The first interval that ended after the child exited holds its
		// last failures; then top can stop.
		deadline := time.After(30 * time.Second)
	wait:
		for {
			select {
			case end := <-ends:
				if end.After(exited) {
					break wait
				}
			case <-deadline:
				b.Fatal("errnowatch top printed no interval in the 30 s after the child exited")
			}
		}
		top.Process.Signal(os.Interrupt)
		// Read top's output to its end before Wait, which closes the pipe
		// (reading after it fails with "file already closed").
		if err := <-scanned; err != nil {
			b.Fatalf("read top output: %v", err)
		}
		if err := top.Wait(); err != nil {
			b.Fatalf("errnowatch top: %v", err)
		}
		wall := time.Since(topStart).Seconds()
		if counted != made {
			b.Errorf("top counted %d close EBADF over %d intervals, the child made %d", counted, lines, made)
		}
		ru := top.ProcessState.SysUsage().(*syscall.Rusage)
		cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		rate := float64(made) / seconds
		b.ReportMetric(rate, "failures/s")
		b.ReportMetric(float64(counted)-float64(made), "counted-made")
		// CPU share of one core over top's whole run, scaled to 500k/s.
		b.ReportMetric(100*cpu.Seconds()/wall*(500000/rate), "%core-per-500k/s")
		b.ReportMetric(float64(ru.Maxrss)/1024, "maxrss-MiB")
	}
}
