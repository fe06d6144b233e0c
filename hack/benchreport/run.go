package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"time"

	"go.uber.org/zap"
)

// event is one line of `go test -json` (cmd/test2json's TestEvent).
type event struct {
	Action string
	Output string
}

// runFigure runs f's go test command in dir and writes its block of the
// results file to w: the figure's own lines, then go test's benchmark
// output. A failing command is recorded in the block, not returned: the
// report says which figure failed and why, and the other figures still run.
func runFigure(ctx context.Context, log *zap.Logger, dir string, f figure, w io.Writer) error {
	log.Info("running", zap.String("figure", f.ID), zap.String("command", f.Command()))
	start := time.Now()
	cmd := exec.CommandContext(ctx, "go", f.args(true)...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("run %s: %w", f.ID, err)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("run %s: %w", f.ID, err)
	}
	text, decodeErr := decodeEvents(out)
	waitErr := cmd.Wait()
	status := "ok"
	if err := errors.Join(waitErr, decodeErr); err != nil {
		status = "failed: " + oneLine(err.Error()+" "+lastLines(stderr.String()+text, 3))
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	log.Info("ran", zap.String("figure", f.ID), zap.String("status", status), zap.Duration("elapsed", time.Since(start).Round(time.Second)))
	fmt.Fprintf(w, "figure: %s\ncommand: %s\nelapsed: %s\nstatus: %s\n", f.ID, f.Command(), time.Since(start).Round(time.Second), status)
	_, err = io.WriteString(w, benchLines(text))
	return err
}

// decodeEvents joins the output of go test's JSON events into the text go
// test would have printed. The JSON form keeps the test binary's output
// apart from the go command's own messages on stderr.
func decodeEvents(r io.Reader) (string, error) {
	var text strings.Builder
	dec := json.NewDecoder(r)
	for {
		var ev event
		if err := dec.Decode(&ev); err == io.EOF {
			return text.String(), nil
		} else if err != nil {
			return text.String(), fmt.Errorf("decode go test -json output: %w", err)
		}
		if ev.Action == "output" || ev.Action == "build-output" {
			text.WriteString(ev.Output)
		}
	}
}

// benchLines keeps, of go test's output, what the results file needs: the
// configuration lines (goos, pkg, cpu), the benchmark names and results,
// the benchmarks' own log lines (a failure's or skip's reason comes before
// its "--- FAIL" line in -v output, after it otherwise), and the SKIP and
// FAIL lines. What the processes a benchmark runs print is left out.
func benchLines(text string) string {
	var b strings.Builder
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(nil, 1<<20)
	inLog := false
	for sc.Scan() {
		line := sc.Text()
		f := strings.Fields(line)
		switch {
		case strings.HasPrefix(line, "--- SKIP: Benchmark"), strings.HasPrefix(line, "--- FAIL: Benchmark"):
			inLog = false
		case logLine.MatchString(line):
			inLog = true
		case inLog && strings.HasPrefix(line, "        "): // a log message's further lines
		case len(f) > 0 && strings.HasPrefix(f[0], "Benchmark") && (len(f) == 1 || isResultLine(f)):
			inLog = false
		case len(f) >= 2 && (f[0] == "goos:" || f[0] == "goarch:" || f[0] == "pkg:" || f[0] == "cpu:"):
			inLog = false
		default:
			inLog = false
			continue
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	return b.String()
}

// logLine is the first line of a t.Log message: "    file_test.go:12: ...".
var logLine = regexp.MustCompile(`^    \S+\.go:\d+: `)

// isResultLine tells a benchmark result (name, iterations, values) from the
// bare name that -v output prints when a benchmark starts.
func isResultLine(f []string) bool {
	if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
		return false
	}
	for _, c := range f[1] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], " | ")
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// machine returns the file-level lines that say where and when the results
// were measured.
func machine(ctx context.Context, dir string) []string {
	kernel := "?"
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = strings.TrimSpace(string(b))
	}
	model := "?"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	run := func(name string, args ...string) string {
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			return "not available (" + oneLine(err.Error()) + ")"
		}
		return oneLine(lastLines(string(out), 1))
	}
	return []string{
		"date: " + time.Now().UTC().Format("2006-01-02 15:04 UTC"),
		"nproc: " + run("nproc"),
		"kernel: " + kernel,
		"cpu-model: " + model,
		"go-version: " + run("go", "env", "GOVERSION"),
		"commit: " + run("git", "rev-parse", "--short", "HEAD"),
		"bpftrace-version: " + run("bpftrace", "--version"),
		"syscount-version: " + run("dpkg-query", "-W", "-f", "libbpf-tools ${Version}", "libbpf-tools"),
		"loadavg-start: " + loadavg(),
	}
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
