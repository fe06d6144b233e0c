package main

import (
	"strings"
)

// A figure is one `go test -bench` run whose results make one section of the
// report. Every figure's benchmarks measure their baseline in the same run.
type figure struct {
	ID    string
	Title string
	// Pkg, Bench, Benchtime and Timeout make the go test command.
	Pkg, Bench, Benchtime, Timeout string
}

// figures are the report's runs, in the report's order. The benchtimes keep
// `make bench` near 15 minutes on two cores.
var figures = []figure{
	{ID: "kernel", Title: "Kernel cost per sys_exit", Pkg: "./pkg/sensor",
		// 200 000 syscall pairs per CPU and round for the sensor; the tools'
		// rounds have the same floor.
		Bench: "^BenchmarkKernelCost", Benchtime: "1400000x", Timeout: "15m"},
	{ID: "exact", Title: "Exact counts under load", Pkg: "./pkg/sensor",
		Bench: "^BenchmarkExactUnderLoad$", Benchtime: "1x", Timeout: "5m"},
	{ID: "latency", Title: "Alert latency", Pkg: "./cmd/errnowatch",
		Bench: "^BenchmarkAlertLatency$", Benchtime: "1x", Timeout: "10m"},
	{ID: "store", Title: "Store insert (baseline of the collector)", Pkg: "./pkg/store/sqlite",
		Bench: "^BenchmarkInsert$", Benchtime: "3s", Timeout: "5m"},
	{ID: "collector", Title: "Collector ingest and queries", Pkg: "./pkg/collector",
		Bench: "^Benchmark(Ingest|ListPerPod|ListNamespace|SummarizeNamespace|StreamFanOut)$", Benchtime: "3s", Timeout: "15m"},
	{ID: "records", Title: "Records with arguments: kernel cost and decoding", Pkg: "./pkg/sensor",
		Bench: "^Benchmark(RecordCost|DecodeRecord)$", Benchtime: "200000x", Timeout: "5m"},
	{ID: "recrules", Title: "Argument-aware rules: records evaluated", Pkg: "./pkg/rules",
		Bench: "^BenchmarkRecordsRules$", Benchtime: "3s", Timeout: "5m"},
	{ID: "rss", Title: "Agent memory with pods", Pkg: "./cmd/errnowatch",
		Bench: "^BenchmarkAgentRSS$", Benchtime: "1x", Timeout: "10m"},
}

// args are go test's arguments for f, with -json when the generator runs it.
func (f figure) args(json bool) []string {
	a := []string{"test", "-run", "^$", "-bench", f.Bench, "-benchtime", f.Benchtime, "-count", "1", "-timeout", f.Timeout}
	if json {
		a = append(a, "-json")
	}
	return append(a, f.Pkg)
}

// Command is the shell command that reproduces f by hand.
func (f figure) Command() string {
	parts := []string{"go"}
	for _, a := range f.args(false) {
		if strings.ContainsAny(a, "^$|()*? ") {
			a = "'" + a + "'"
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}

func figureByID(id string) (figure, bool) {
	for _, f := range figures {
		if f.ID == id {
			return f, true
		}
	}
	return figure{}, false
}
