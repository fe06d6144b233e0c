package main

import (
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The samples are real benchmark output recorded on the project's VM:
// testdata/kernel.json is `go test -json -run '^$' -bench
// 'KernelCost.*/failures-only' -benchtime 20000x ./pkg/sensor`, and
// testdata/latency.txt is the plain -v output of BenchmarkAlertLatency.
func sampleResults(t *testing.T) string {
	t.Helper()
	f, err := os.Open("testdata/kernel.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	kernelText, err := decodeEvents(f)
	if err != nil {
		t.Fatal(err)
	}
	latencyText, err := os.ReadFile("testdata/latency.txt")
	if err != nil {
		t.Fatal(err)
	}
	kernel, _ := figureByID("kernel")
	latency, _ := figureByID("latency")
	return "date: 2026-01-02 03:04 UTC\nnproc: 2\nkernel: 6.18.0\ncpu-model: Test CPU\nloadavg-start: 1.00 2.00 3.00\n" +
		"figure: kernel\ncommand: " + kernel.Command() + "\nelapsed: 45s\nstatus: ok\n" + benchLines(kernelText) +
		"figure: latency\ncommand: " + latency.Command() + "\nelapsed: 89s\nstatus: ok\n" + benchLines(string(latencyText)) +
		"loadavg-end: 1.50 2.50 3.50\n"
}

func TestBenchLinesKeepsResultsAndConfig(t *testing.T) {
	text := benchLines(sampleResults(t))
	for _, want := range []string{
		"pkg: github.com/errnowatch/errnowatch/pkg/sensor\n",
		// go test -json splits this result after the name; decodeEvents joins it.
		"BenchmarkKernelCost/failures-only-2         \t   20000\t     65235 ns/op\t       120.1 ns/exit-minimal",
		"BenchmarkAlertLatency/interval=250ms-2      \t       1\t        60.00 bursts",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("benchLines lost %q:\n%s", want, text)
		}
	}
	for _, junk := range []string{"=== RUN", "PASS", "ok  \t"} {
		if strings.Contains(text, junk) {
			t.Errorf("benchLines kept %q", junk)
		}
	}
}

func TestParseResults(t *testing.T) {
	res, err := parseResults(sampleResults(t))
	if err != nil {
		t.Fatal(err)
	}
	if res.Header("kernel") != "6.18.0" || res.Header("loadavg-end") != "1.50 2.50 3.50" || res.Header("absent") != "?" {
		t.Errorf("header: %+v", res.Machine)
	}
	k := res.Get("kernel")
	if k == nil || k.Status != "ok" || k.Elapsed != "45s" || !strings.HasPrefix(k.runCommand(), "go test -run '^$' -bench '^BenchmarkKernelCost'") {
		t.Fatalf("kernel figure: %+v", k)
	}
	for _, c := range []struct {
		bench, unit string
		want        float64
	}{
		{"KernelCost/failures-only", "ns/exit-sensor", 120.1},
		{"KernelCost/failures-only", "ns/exit-over-minimal", -7.121},
		{"KernelCost/failures-only", "ns/op", 65235},
		{"KernelCostTools/failures-only/bpftrace", "ns/exit-bpftrace", 177.7},
		{"KernelCostTools/failures-only/bpftrace", "ns/exit-sensor-over-minimal", 35.98},
		{"KernelCostTools/failures-only/syscount", "ns/exit-minimal", 97.34},
		{"KernelCostTools/failures-only/syscount", "programs", 1},
	} {
		if got, ok := k.Value(c.bench, c.unit); !ok || got != c.want {
			t.Errorf("%s %s = %v (measured %v), want %v", c.bench, c.unit, got, ok, c.want)
		}
	}
	l := res.Get("latency")
	if got, _ := l.Value("AlertLatency/interval=1s", "stream-p99-ms"); got != 1032 {
		t.Errorf("latency 1s stream p99 = %v, want 1032", got)
	}
	if len(l.Metrics) != 2 {
		t.Errorf("latency has %d benchmarks, want 2: %v", len(l.Metrics), l.Metrics)
	}
}

func TestParseSkipsAndFailures(t *testing.T) {
	res, err := parseResults("figure: kernel\nstatus: ok\n" +
		"--- SKIP: BenchmarkKernelCostTools/durations/bpftrace\n" +
		"    tools_bench_test.go:80: /usr/bin/bpftrace is not installed (apt-get install bpftrace)\n" +
		"--- FAIL: BenchmarkExactUnderLoad-2\n" +
		"    bench_test.go:232: top counted 1 close EBADF\n" +
		"    over 13 intervals\n" +
		"BenchmarkKernelCost/durations-2   1   5 ns/op   7 ns/exit-sensor\n")
	if err != nil {
		t.Fatal(err)
	}
	k := res.Get("kernel")
	if got := k.Skipped["KernelCostTools/durations/bpftrace"]; got != "/usr/bin/bpftrace is not installed (apt-get install bpftrace)" {
		t.Errorf("skip reason %q", got)
	}
	if got := k.Failed["ExactUnderLoad"]; got != "top counted 1 close EBADF over 13 intervals" {
		t.Errorf("failure reason %q", got)
	}
	if v, _ := k.Value("KernelCost/durations", "ns/exit-sensor"); v != 7 {
		t.Errorf("result after the reasons: %v", k.Metrics)
	}
}

// testdata/exact-fail.json is a real failure of BenchmarkExactUnderLoad
// (before top waited for the child on a loaded machine): in -json output the
// reason comes before the "--- FAIL" line.
func TestParseFailureReasonBeforeFailLine(t *testing.T) {
	f, err := os.Open("testdata/exact-fail.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	text, err := decodeEvents(f)
	if err != nil {
		t.Fatal(err)
	}
	res, err := parseResults("figure: exact\nstatus: failed: exit status 1\n" + benchLines(text))
	if err != nil {
		t.Fatal(err)
	}
	want := "top counted 2990443 close EBADF over 13 intervals, the child made 3029000"
	if got := res.Get("exact").Failed["ExactUnderLoad"]; got != want {
		t.Errorf("failure reason %q, want %q", got, want)
	}
	report, err := writeReport(res, t.TempDir(), "results.txt")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(report, "- ExactUnderLoad: failed: "+want) {
		t.Errorf("report does not name the failure:\n%s", report)
	}
}

func TestWriteReportRendersChartsThatDecode(t *testing.T) {
	res, err := parseResults(sampleResults(t))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	text, err := writeReport(res, dir, "results.txt")
	if err != nil {
		t.Fatal(err)
	}
	onDisk, err := os.ReadFile(filepath.Join(dir, "report.md"))
	if err != nil || string(onDisk) != text {
		t.Fatalf("report.md on disk differs from the returned text: %v", err)
	}
	for _, want := range []string{
		"| CPU | Test CPU; Go reads it as Oxide Virtual Turin-like Processor (nproc 2) |",
		"| failures-only | bpftrace | 102.5 | 138.3 | 177.7 | +39.4 | 1.3x |",
		"| all-exits | bpftrace | not measured | | | | |",
		"| failures-only | 120.1 | 120.1 | -7.1 | – |",
		"| durations | not measured | | | |",
		"| 1s | 60 | 464 ms | 1027 ms | 1027 ms | 470 ms | 1032 ms | 1032 ms |",
		"alert latency with interval 1s: stream p99 1032 ms misses the 1 s target",
		"go test -run '^$' -bench '^BenchmarkAlertLatency$' -benchtime 1x -count 1 -timeout 10m ./cmd/errnowatch",
		"## Agent memory with pods\n\nNot measured",
		"![kernel cost per exit](kernel.png)",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("report lacks %q:\n%s", want, text)
		}
	}
	for _, name := range []string{"kernel.png", "latency.png"} {
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if b := img.Bounds(); b.Dx() != 7*144 || b.Dy() != 4*144 {
			t.Errorf("%s is %v, want 1008x576 (7x4 in at 144 dpi)", name, b)
		}
	}
}

func TestCommandQuotesForTheShell(t *testing.T) {
	f, _ := figureByID("collector")
	want := "go test -run '^$' -bench '^Benchmark(Ingest|ListPerPod|ListNamespace|SummarizeNamespace|StreamFanOut)$' -benchtime 3s -count 1 -timeout 15m ./pkg/collector"
	if got := f.Command(); got != want {
		t.Errorf("command:\n%s\nwant\n%s", got, want)
	}
}
