// Command workload is what the e2e tests' pods run, from the workload image
// (test/e2e/images). Each mode makes failing syscalls the tests then look
// for in the agent's counts and alerts, and reports on stdout, one JSON
// line, what it did, so a test can read it from the container's log:
//
//	workload attack <name>    an attack of test/attacks
//	workload benign <name>    a benign workload of test/attacks
//	workload run <name>       either
//	workload list             the workloads' names, kinds and rules
//	workload fail-load        N threads failing one syscall flat out, counted exactly
//	workload burst            exactly --count failing calls
//	workload flood            for --duration, a new failure key each call (the sensor-evasion attempt)
//	workload sleep            nothing, until SIGTERM (churn pods)
//
// With --then-sleep a mode that succeeded sleeps until SIGTERM instead of
// exiting, so its pod stays Running. Exit status: 0 done, 1 the workload
// failed, 2 bad usage.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"time"

	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"

	"github.com/errnowatch/errnowatch/test/attacks"
)

func main() { os.Exit(runUntilSignal(os.Args[1:])) }

// runUntilSignal runs args until done or until the container is stopped:
// SIGTERM from the runtime, or SIGINT.
func runUntilSignal(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), unix.SIGTERM, unix.SIGINT)
	defer stop()
	return run(ctx, args, os.Stdout, os.Stderr)
}

// errUsage marks a command line that could not be understood.
var errUsage = errors.New("usage")

const usage = `usage: workload attack|benign|run <name> [--scratch DIR] [--then-sleep]
       workload list
       workload fail-load [--threads N] [--duration D] [--syscall S] [--report PATH] [--then-sleep]
       workload burst --count N [--syscall S] [--report PATH] [--then-sleep]
       workload flood [--duration D] [--then-sleep]
       workload sleep
syscalls: faccessat (ENOENT, the default), openat (ENOENT), close (EBADF)`

// run carries out one command line and returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	err := dispatch(ctx, args, stdout)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "workload: %v\n%s\n", err, usage)
		return 2
	default:
		fmt.Fprintf(stderr, "workload: %v\n", err)
		return 1
	}
}

func dispatch(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: no mode given", errUsage)
	}
	mode, args := args[0], args[1:]
	fs := pflag.NewFlagSet(mode, pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	thenSleep := fs.Bool("then-sleep", false, "sleep until SIGTERM after succeeding")
	scratch := fs.String("scratch", "", "directory the workload may write to (default: a new one under $TMPDIR)")
	threads := fs.Int("threads", runtime.NumCPU(), "fail-load: threads calling the syscall")
	duration := fs.Duration("duration", 10*time.Second, "fail-load: how long (0: until SIGTERM)")
	count := fs.Uint64("count", 0, "burst: number of failing calls")
	sys := fs.String("syscall", "faccessat", "fail-load, burst: the failing syscall")
	report := fs.String("report", "", "fail-load, burst: also write the JSON line to this file")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	pos := fs.Args()

	var err error
	switch mode {
	case "attack", "benign", "run":
		if len(pos) != 1 {
			return fmt.Errorf("%w: %s takes one workload name", errUsage, mode)
		}
		err = runWorkload(mode, pos[0], *scratch, stdout)
	case "list":
		err = list(stdout)
	case "fail-load", "burst":
		call, ok := failCalls[*sys]
		if !ok {
			return fmt.Errorf("%w: unknown --syscall %q", errUsage, *sys)
		}
		var res Result
		if mode == "burst" {
			if *count == 0 {
				return fmt.Errorf("%w: burst needs --count", errUsage)
			}
			res, err = Burst(call, *count)
		} else {
			if *threads < 1 {
				return fmt.Errorf("%w: --threads must be at least 1", errUsage)
			}
			lctx, cancel := ctx, context.CancelFunc(func() {})
			if *duration > 0 {
				lctx, cancel = context.WithTimeout(ctx, *duration)
			}
			res, err = FailLoad(lctx, call, *threads)
			cancel()
		}
		if err == nil {
			res.Workload, res.OK = mode, true
			err = writeResult(res, stdout, *report)
		}
	case "flood":
		if *duration <= 0 {
			return fmt.Errorf("%w: flood needs a --duration above 0", errUsage)
		}
		err = floodFor(*duration, stdout)
	case "sleep":
		if len(pos) != 0 {
			return fmt.Errorf("%w: sleep takes no arguments", errUsage)
		}
		<-ctx.Done()
		return nil
	default:
		return fmt.Errorf("%w: unknown mode %q", errUsage, mode)
	}
	if err == nil && *thenSleep {
		<-ctx.Done()
	}
	return err
}

// outcome is the line printed after a workload of test/attacks.
type outcome struct {
	Workload string `json:"workload"`
	OK       bool   `json:"ok"`
	Rule     string `json:"rule,omitempty"`
	Error    string `json:"error,omitempty"`
}

// runWorkload runs one workload of test/attacks in this process: the
// container is its child. It may leave the process as nobody, under a
// seccomp filter or with lowered limits, which sleeping afterwards does
// not mind.
func runWorkload(mode, name, scratch string, stdout io.Writer) error {
	w, ok := attacks.Lookup(name)
	switch {
	case !ok:
		return fmt.Errorf("%w: unknown workload %q (see workload list)", errUsage, name)
	case mode == "attack" && w.Benign():
		return fmt.Errorf("%w: %s is a benign workload", errUsage, name)
	case mode == "benign" && !w.Benign():
		return fmt.Errorf("%w: %s is an attack", errUsage, name)
	}
	if scratch == "" {
		dir, err := newScratch()
		if err != nil {
			return err
		}
		scratch = dir
	}
	err := w.Run(scratch)
	out := outcome{Workload: name, OK: err == nil, Rule: w.Rule}
	if err != nil {
		out.Error = err.Error()
	}
	if jerr := json.NewEncoder(stdout).Encode(out); jerr != nil && err == nil {
		err = fmt.Errorf("write result: %w", jerr)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// newScratch makes a directory the workloads that drop to nobody can still
// reach: MkdirTemp's is private to root.
func newScratch() (string, error) {
	dir, err := os.MkdirTemp("", "workload-")
	if err != nil {
		return "", fmt.Errorf("make scratch directory (is $TMPDIR or /tmp writable?): %w", err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return "", fmt.Errorf("open scratch directory to nobody: %w", err)
	}
	return dir, nil
}

func list(stdout io.Writer) error {
	for _, w := range attacks.All() {
		kind, rule := "attack", w.Rule
		if w.Benign() {
			kind, rule = "benign", "-"
		}
		if _, err := fmt.Fprintf(stdout, "%s\t%s\t%s\t%s\n", w.Name, kind, rule, w.Description); err != nil {
			return err
		}
	}
	return nil
}

func writeResult(res Result, stdout io.Writer, report string) error {
	line, err := json.Marshal(res)
	if err != nil {
		return fmt.Errorf("encode result: %w", err)
	}
	line = append(line, '\n')
	if _, err := stdout.Write(line); err != nil {
		return fmt.Errorf("write result: %w", err)
	}
	if report != "" {
		if err := os.WriteFile(report, line, 0o644); err != nil {
			return fmt.Errorf("write report: %w", err)
		}
	}
	return nil
}

// floodFor runs attacks.Flood for d and reports, as one JSON line, how
// many calls of each kind it made.
func floodFor(d time.Duration, stdout io.Writer) error {
	invalid, keys, err := attacks.Flood(d)
	out := struct {
		Workload string `json:"workload"`
		OK       bool   `json:"ok"`
		Invalid  uint64 `json:"invalid_syscalls"`
		Keys     uint64 `json:"new_keys"`
		Error    string `json:"error,omitempty"`
	}{Workload: "flood", OK: err == nil, Invalid: invalid, Keys: keys}
	if err != nil {
		out.Error = err.Error()
	}
	if jerr := json.NewEncoder(stdout).Encode(out); jerr != nil && err == nil {
		err = fmt.Errorf("write result: %w", jerr)
	}
	return err
}
