package main

import (
	"bufio"
	"fmt"
	"io"
	"regexp"
	"strings"

	"golang.org/x/perf/benchfmt"
)

// results is what one results file holds: where it was measured and each
// figure's benchmarks.
type results struct {
	// Machine is the file's header lines (date, nproc, kernel, ...), in order.
	Machine []keyValue
	Figures []*figureResults
}

type keyValue struct{ Key, Value string }

type figureResults struct {
	figure
	Status, Elapsed string
	// Metrics maps a benchmark's name (without "Benchmark" and the
	// GOMAXPROCS suffix) to its values by unit, as the benchmark reported
	// them.
	Metrics map[string]map[string]float64
	// Skipped and Failed map a benchmark's name to the reason it gave.
	Skipped, Failed map[string]string

	// cmd is the command as the results file recorded it.
	cmd string
	// baseline is another figure's results this one is compared against
	// (the store's for the collector's).
	baseline *figureResults
}

// runCommand is the command that made these results.
func (f *figureResults) runCommand() string {
	if f.cmd != "" {
		return f.cmd
	}
	return f.Command()
}

// Value returns a benchmark's value in unit and whether it was measured.
func (f *figureResults) Value(bench, unit string) (float64, bool) {
	v, ok := f.Metrics[bench][unit]
	return v, ok
}

// Get returns the results of figure id, or nil.
func (r *results) Get(id string) *figureResults {
	for _, f := range r.Figures {
		if f.ID == id {
			return f
		}
	}
	return nil
}

// Header returns the machine line key, or "?".
func (r *results) Header(key string) string {
	for _, kv := range r.Machine {
		if kv.Key == key {
			return kv.Value
		}
	}
	return "?"
}

var headerKeys = map[string]bool{"date": true, "nproc": true, "kernel": true, "cpu-model": true, "go-version": true,
	"commit": true, "cpu": true, "bpftrace-version": true, "syscount-version": true, "loadavg-start": true, "loadavg-end": true}

var gomaxprocs = regexp.MustCompile(`-\d+$`)

// parseResults reads a results file: the header and figure lines with a
// plain scanner, and the benchmark results with benchfmt, which also
// reads it for benchstat.
func parseResults(data string) (*results, error) {
	res := &results{}
	var cur *figureResults
	sc := bufio.NewScanner(strings.NewReader(data))
	sc.Buffer(nil, 1<<20)
	var reasonOf map[string]string
	reasonName := ""
	// Log lines since the last benchmark line: in -v output they come
	// before the "--- FAIL" or "--- SKIP" line they explain.
	var pending []string
	for sc.Scan() {
		line := sc.Text()
		if k, v, ok := strings.Cut(line, ": "); ok && !strings.HasPrefix(line, " ") && !strings.HasPrefix(line, "-") {
			v = strings.TrimSpace(v)
			switch {
			case k == "figure":
				f, known := figureByID(v)
				if !known {
					f = figure{ID: v, Title: v}
				}
				cur = &figureResults{figure: f, Metrics: map[string]map[string]float64{},
					Skipped: map[string]string{}, Failed: map[string]string{}}
				res.Figures = append(res.Figures, cur)
			case cur != nil && k == "command":
				cur.cmd = v
			case cur != nil && k == "status":
				cur.Status = v
			case cur != nil && k == "elapsed":
				cur.Elapsed = v
			case headerKeys[k]:
				res.Machine = append(res.Machine, keyValue{k, v})
			}
			reasonOf = nil
			continue
		}
		skip, isSkip := strings.CutPrefix(line, "--- SKIP: ")
		fail, isFail := strings.CutPrefix(line, "--- FAIL: ")
		if (isSkip || isFail) && cur != nil {
			reasonOf, reasonName = cur.Failed, benchName(strings.Fields(fail)[0])
			if isSkip {
				reasonOf, reasonName = cur.Skipped, benchName(strings.Fields(skip)[0])
			}
			reasonOf[reasonName] = strings.Join(pending, " ")
			pending = nil
			continue
		}
		if strings.HasPrefix(line, "    ") {
			text := stripPos(strings.TrimSpace(line))
			if reasonOf != nil {
				reasonOf[reasonName] = strings.TrimSpace(reasonOf[reasonName] + " " + text)
			} else {
				pending = append(pending, text)
			}
			continue
		}
		reasonOf, pending = nil, nil
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read results: %w", err)
	}

	rd := benchfmt.NewReader(strings.NewReader(data), "results")
	for rd.Scan() {
		switch rec := rd.Result().(type) {
		case *benchfmt.SyntaxError:
			return nil, fmt.Errorf("results: %w", rec)
		case *benchfmt.Result:
			f := res.Get(rec.GetConfig("figure"))
			if f == nil {
				continue
			}
			name := gomaxprocs.ReplaceAllString(rec.Name.String(), "")
			m := f.Metrics[name]
			if m == nil {
				m = map[string]float64{}
				f.Metrics[name] = m
			}
			for _, v := range rec.Values {
				// The units as reported: benchfmt scales ns to s and
				// keeps the original only of what it scaled.
				if v.OrigUnit != "" {
					m[v.OrigUnit] = v.OrigValue
				} else {
					m[v.Unit] = v.Value
				}
			}
		}
	}
	if err := rd.Err(); err != nil {
		return nil, fmt.Errorf("read results: %w", err)
	}
	return res, nil
}

func benchName(s string) string {
	return gomaxprocs.ReplaceAllString(strings.TrimPrefix(s, "Benchmark"), "")
}

var testPos = regexp.MustCompile(`^\S+_test\.go:\d+: `)

// stripPos drops the "file_test.go:12: " of a benchmark's log line.
func stripPos(s string) string { return testPos.ReplaceAllString(s, "") }

func readResults(r io.Reader) (*results, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read results: %w", err)
	}
	return parseResults(string(b))
}
