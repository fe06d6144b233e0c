package sensor

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/errnowatch/errnowatch/internal/testutil"
	"github.com/errnowatch/errnowatch/pkg/cgroup/cgrouptest"
	"github.com/errnowatch/errnowatch/pkg/sensor/internal/int80"
	"github.com/errnowatch/errnowatch/test/attacks"
	"go.uber.org/goleak"
	"golang.org/x/sys/unix"
)

// The kernel tests run their workloads in children: this test binary
// started again with childEnv set, inside a test cgroup, so that the counts
// of one cgroup are exactly the syscalls the child was told to make. A
// child reads commands line by line from stdin and answers "done ..." on
// stdout once the syscalls are made.
const childEnv = "ERRNOWATCH_SENSOR_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		childMain()
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}

type child struct {
	*testutil.Child
	t   testing.TB
	PID int
}

// startChild starts a workload child in cg and waits until its runtime has
// started, so that its start-up syscalls are behind us.
func startChild(t testing.TB, cg *cgrouptest.Dir) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=1")
	cmd.Stderr = os.Stderr
	c := &child{Child: testutil.StartChild(t, cg, cmd), t: t}
	c.PID = cmd.Process.Pid
	c.expect("ready")
	return c
}

// expect reads the child's next line and returns what follows prefix.
func (c *child) expect(prefix string) string {
	c.t.Helper()
	if !c.Out.Scan() {
		c.t.Fatalf("child %d exited before %q: %v", c.PID, prefix, c.Out.Err())
	}
	line := c.Out.Text()
	rest, ok := strings.CutPrefix(line, prefix)
	if !ok {
		c.t.Fatalf("child %d said %q, want %q", c.PID, line, prefix)
	}
	return strings.TrimSpace(rest)
}

// do makes the child run one command and returns what it answered.
func (c *child) do(format string, args ...any) string {
	c.t.Helper()
	c.Send(fmt.Sprintf(format, args...))
	return c.expect("done")
}

// Paths the children fail on.
const (
	missingPath = "/nonexistent/errnowatch-test"
	i386Close   = 6 // arch/x86/entry/syscalls/syscall_32.tbl
)

func childMain() {
	in := bufio.NewScanner(os.Stdin)
	// The runtime is up: from here on the only syscalls that fail are the
	// ones the test asks for (and the runtime's own futex and epoll waits,
	// which no test counts).
	fmt.Println("ready")
	for in.Scan() {
		f := strings.Fields(in.Text())
		n := 0
		if len(f) > 1 {
			n, _ = strconv.Atoi(f[1])
		}
		fmt.Println("done", childOp(f[0], n, f[1:]))
	}
}

func childOp(op string, n int, args []string) string {
	switch op {
	case "enoent": // openat ENOENT
		for i := 0; i < n; i++ {
			unix.Open(missingPath, unix.O_RDONLY, 0)
		}
	case "ebadf": // close EBADF
		for i := 0; i < n; i++ {
			unix.Close(-1)
		}
	case "dropuid": // become nobody: no capabilities from here on
		if err := syscall.Setresuid(65534, 65534, 65534); err != nil {
			return "error " + err.Error()
		}
	case "load": // try to load the sensor; answers the error
		s, err := Load(Config{})
		if err != nil {
			return err.Error()
		}
		s.Close()
		return "loaded"
	case "eacces": // openat EACCES, after dropuid
		for i := 0; i < n; i++ {
			unix.Open(args[1], unix.O_RDONLY, 0)
		}
	case "eperm": // kill EPERM, after dropuid
		for i := 0; i < n; i++ {
			unix.Kill(1, 0)
		}
	case "getpid": // successes
		for i := 0; i < n; i++ {
			unix.Getppid()
		}
	case "mixed": // the kernel cost benchmark's workload (mixedWorkload)
		mixedWorkload(n)
	case "threads": // two named threads failing on two syscalls
		return twoThreads(n)
	case "storm": // n failures spread over two threads on one key
		var wg sync.WaitGroup
		for _, share := range []int{n / 2, n - n/2} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < share; i++ {
					unix.Close(-1)
				}
			}()
		}
		wg.Wait()
	case "flat": // close EBADF on every CPU for n seconds; answers how many
		return strconv.FormatUint(flat(time.Duration(n)*time.Second), 10)
	case "bursts": // n bursts of ebadf with a pause between them
		for b := 0; b < n; b++ {
			for i := 0; i < 50; i++ {
				unix.Close(-1)
			}
			time.Sleep(60 * time.Millisecond)
		}
	case "sigtimedwait": // rt_sigtimedwait EAGAIN after n ms
		var set unix.Sigset_t
		set.Val[0] = 1 << (uint(unix.SIGUSR2) - 1)
		ts := unix.NsecToTimespec(int64(n) * int64(time.Millisecond))
		_, _, errno := unix.Syscall6(unix.SYS_RT_SIGTIMEDWAIT, uintptr(unsafe.Pointer(&set)), 0,
			uintptr(unsafe.Pointer(&ts)), 8, 0, 0)
		return errno.Error()
	case "flood": // n seconds of new keys; answers "<invalid> <getpriority>"
		return flood(time.Duration(n) * time.Second)
	case "int80": // i386 close(-1) through int $0x80: EBADF
		var ret int64
		for i := 0; i < n; i++ {
			ret = int80.Syscall(i386Close, 0xffffffff, 0, 0)
		}
		return strconv.FormatInt(ret, 10)
	default:
		if f, ok := argOps[op]; ok { // args_test.go
			return f(args)
		}
		return "unknown op " + op
	}
	return ""
}

// twoThreads runs n failing mkdirat calls on one OS thread and n failing
// unlinkat calls on another, each thread with its own comm, and answers
// "<ew-main tid> <ew-second tid>".
func twoThreads(n int) string {
	var tids [2]int
	var wg sync.WaitGroup
	for i, th := range []struct {
		comm string
		fail func()
	}{
		{"ew-main", func() { unix.Mkdir(missingPath+"/dir", 0o755) }},
		{"ew-second", func() { unix.Unlink(missingPath + "/file") }},
	} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// The thread stays locked and dies with the goroutine, so its
			// comm never leaks to other goroutines.
			runtime.LockOSThread()
			name := append([]byte(th.comm), 0)
			unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(&name[0])), 0, 0, 0)
			tids[i] = unix.Gettid()
			for j := 0; j < n; j++ {
				th.fail()
			}
		}()
	}
	wg.Wait()
	return fmt.Sprint(tids[0], " ", tids[1])
}

// runRaw runs one child command with no protocol around it, for children
// that may crash, and returns what the child printed.
func runRaw(t *testing.T, cg *cgrouptest.Dir, line string) (string, error) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=1")
	cmd.Stdin = strings.NewReader(line + "\n")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cg.Run(cmd)
	return out.String(), err
}

// attached tells whether the program with this id is still loaded. The
// kernel frees programs after an RCU grace period, so it waits a little.
func attached(t *testing.T, id ebpf.ProgramID) bool {
	t.Helper()
	for i := 0; i < 50; i++ {
		p, err := ebpf.NewProgramFromID(id)
		if err != nil {
			return false
		}
		p.Close()
		time.Sleep(100 * time.Millisecond)
	}
	return true
}

func flat(d time.Duration) uint64 {
	var wg sync.WaitGroup
	made := make([]uint64, runtime.NumCPU())
	deadline := time.Now().Add(d)
	for c := range made {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			var n uint64
			for time.Now().Before(deadline) {
				for i := 0; i < 1000; i++ {
					unix.Close(-1)
				}
				n += 1000
			}
			made[c] = n
		}()
	}
	wg.Wait()
	var total uint64
	for _, n := range made {
		total += n
	}
	return total
}

// floodErrnos is how many errnos the flood's seccomp filter makes
// getpriority fail with: one key each.
const floodErrnos = attacks.FloodErrnos

// flood runs attacks.Flood for d in this child and answers "invalid keys",
// the calls of each kind it made.
func flood(d time.Duration) string {
	invalid, keys, err := attacks.Flood(d)
	if err != nil {
		return "error " + err.Error()
	}
	return fmt.Sprint(invalid, " ", keys)
}

func strReader(s string) io.Reader { return strings.NewReader(s) }

// cutDone parses a child's "done <number>" answer.
func cutDone(line string) (uint64, bool) {
	rest, ok := strings.CutPrefix(line, "done ")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(rest, 10, 64)
	return n, err == nil
}
