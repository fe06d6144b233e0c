// Command benchreport runs errnowatch's benchmarks and writes the committed
// benchmark report: `make bench` runs
//
//	go run ./hack/benchreport -out docs/bench
//
// which runs each figure's `go test -bench` command (each benchmark measures
// its own baseline in the same run), keeps the results in benchfmt form
// (docs/bench/results.txt, which benchstat reads) and renders report.md and
// its PNG charts from them. -from renders an existing results file again
// without running anything; -only runs some figures.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"go.uber.org/zap"
)

const resultsFile = "results.txt"

func main() {
	out := flag.String("out", "docs/bench", "directory for report.md, the charts and "+resultsFile)
	from := flag.String("from", "", "render this results file instead of running the benchmarks")
	only := flag.String("only", "", "comma-separated figures to run (default all): "+figureIDs())
	flag.Parse()
	log, err := zap.NewDevelopment()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, log, *out, *from, *only); err != nil {
		log.Error("benchreport failed", zap.Error(err))
		os.Exit(1)
	}
}

func run(ctx context.Context, log *zap.Logger, out, from, only string) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return fmt.Errorf("make %s: %w", out, err)
	}
	var data []byte
	if from != "" {
		var err error
		if data, err = os.ReadFile(from); err != nil {
			return fmt.Errorf("read results: %w", err)
		}
	} else {
		selected, err := selectFigures(only)
		if err != nil {
			return err
		}
		if data, err = runAll(ctx, log, selected); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(out, resultsFile), data, 0o644); err != nil {
			return fmt.Errorf("write results: %w", err)
		}
	}
	res, err := parseResults(string(data))
	if err != nil {
		return err
	}
	if _, err := writeReport(res, out, resultsFile); err != nil {
		return err
	}
	log.Info("report written", zap.String("report", filepath.Join(out, "report.md")))
	return nil
}

// runAll runs the figures one after another (they would disturb each
// other's timings if run together) and returns the results file.
func runAll(ctx context.Context, log *zap.Logger, selected []figure) ([]byte, error) {
	dir, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	for _, line := range machine(ctx, dir) {
		buf.WriteString(line + "\n")
	}
	for _, f := range selected {
		if err := runFigure(ctx, log, dir, f, &buf); err != nil {
			return nil, err
		}
	}
	buf.WriteString("loadavg-end: " + loadavg() + "\n")
	return buf.Bytes(), nil
}

func selectFigures(only string) ([]figure, error) {
	if only == "" {
		return figures, nil
	}
	var sel []figure
	for _, id := range strings.Split(only, ",") {
		f, ok := figureByID(strings.TrimSpace(id))
		if !ok {
			return nil, fmt.Errorf("unknown figure %q: choose from %s", id, figureIDs())
		}
		sel = append(sel, f)
	}
	return sel, nil
}

func figureIDs() string {
	var ids []string
	for _, f := range figures {
		ids = append(ids, f.ID)
	}
	return strings.Join(ids, ", ")
}
