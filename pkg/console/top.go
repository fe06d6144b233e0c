package console

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"text/tabwriter"
	"time"

	"go.uber.org/zap"

	"github.com/errnowatch/errnowatch/pkg/alert"
	"github.com/errnowatch/errnowatch/pkg/alertfmt"
	"github.com/errnowatch/errnowatch/pkg/sensor"
	"github.com/errnowatch/errnowatch/pkg/syscalls"
)

// TopOptions configure `errnowatch top`.
type TopOptions struct {
	Filter   FilterFlags
	Interval time.Duration
	// Count stops after this many intervals (0: until interrupted).
	Count int
	// Limit is how many rows the table shows (JSON has every row).
	Limit int
	// Output is "table" or "json" (one object per interval).
	Output string
	// Clear redraws the table in place (for a terminal).
	Clear bool
	// Cluster names pods; Rules, when given, are evaluated every interval.
	Cluster Cluster
	Rules   []string
	Out     io.Writer
	Logger  *zap.Logger
}

// IntervalJSON is one line of `top -o json`.
type IntervalJSON struct {
	Start   time.Time         `json:"start"`
	End     time.Time         `json:"end"`
	Rows    []RowJSON         `json:"rows"`
	Dropped map[string]uint64 `json:"dropped"`
	// Alerts raised or updated in the interval (with --rules).
	Alerts []alert.Alert `json:"alerts,omitempty"`
}

// RowJSON is the exact count of one (cgroup, syscall, errno) in an interval.
type RowJSON struct {
	CgroupID   uint64 `json:"cgroup_id"`
	CgroupPath string `json:"cgroup_path"`
	Syscall    string `json:"syscall"`
	Compat     bool   `json:"compat,omitempty"`
	Errno      string `json:"errno"`
	Count      uint64 `json:"count"`
	Pod
}

// Top prints the exact failure counts of every interval.
func Top(ctx context.Context, opts TopOptions) error {
	if err := validOutput(opts.Output); err != nil {
		return err
	}
	if opts.Interval <= 0 {
		opts.Interval = time.Second
	}
	if opts.Limit <= 0 {
		opts.Limit = 20
	}
	s, err := openSession(sessionConfig{Filter: opts.Filter, Cluster: opts.Cluster, Rules: opts.Rules,
		Interval: opts.Interval, Logger: opts.Logger})
	if err != nil {
		return err
	}
	arch := syscalls.Native()
	enc := json.NewEncoder(opts.Out)
	var last sensor.Stats
	var pending []sensor.Record
	var onRecord func(sensor.Record) error
	if s.engine != nil {
		onRecord = func(r sensor.Record) error {
			pending = append(pending, r)
			return nil
		}
	}
	return s.run(ctx, opts.Interval, opts.Count, onRecord, func(iv sensor.Interval) error {
		out := IntervalJSON{Start: iv.Start, End: iv.End, Rows: []RowJSON{}, Dropped: dropped(last, iv.Stats)}
		last = iv.Stats
		counts := slices.Clone(iv.Counts)
		slices.SortFunc(counts, func(a, b sensor.Count) int {
			return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.CgroupID, b.CgroupID),
				cmp.Compare(a.Syscall, b.Syscall), cmp.Compare(a.Errno, b.Errno))
		})
		for _, c := range counts {
			out.Rows = append(out.Rows, RowJSON{
				CgroupID: c.CgroupID, CgroupPath: s.cgroupPath(c.CgroupID),
				Syscall: syscalls.Name(arch, int(c.Syscall), c.Compat), Compat: c.Compat,
				Errno: errnoOrOK(c.Errno), Count: c.Count, Pod: s.pod(c.CgroupID),
			})
		}
		out.Alerts = s.evaluate(iv, pending)
		pending = pending[:0]
		if opts.Output == "json" {
			return enc.Encode(out)
		}
		return printTop(opts, out)
	})
}

func errnoOrOK(e uint16) string {
	if e == 0 {
		return "OK"
	}
	return syscalls.ErrnoName(e)
}

// dropped is what the sensor lost in the interval, by cause.
func dropped(prev, cur sensor.Stats) map[string]uint64 {
	return map[string]uint64{
		"ring":     cur.TotalRingDrops() - prev.TotalRingDrops(),
		"queue":    cur.QueueDrops - prev.QueueDrops,
		"map_full": cur.MapFull - prev.MapFull,
	}
}

func printTop(opts TopOptions, iv IntervalJSON) error {
	if opts.Clear {
		fmt.Fprint(opts.Out, "\033[H\033[2J")
	}
	var total uint64
	for _, r := range iv.Rows {
		total += r.Count
	}
	fmt.Fprintf(opts.Out, "errnowatch top — %s, %d failed syscalls in %s (exact)\n",
		iv.End.Local().Format("15:04:05"), total, iv.End.Sub(iv.Start).Round(time.Millisecond))
	if d := iv.Dropped; d["map_full"]+d["ring"]+d["queue"] > 0 {
		fmt.Fprintf(opts.Out, "lost: %d not counted (map full), %d records (ring), %d records (queue)\n",
			d["map_full"], d["ring"], d["queue"])
	}
	tw := tabwriter.NewWriter(opts.Out, 0, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "COUNT\tERRNO\tSYSCALL\t CGROUP\t")
	for i, r := range iv.Rows {
		if i == opts.Limit {
			break
		}
		name := r.Syscall
		if r.Compat {
			name += "/32"
		}
		where := r.CgroupPath
		if r.Pod.Pod != "" {
			where = r.Namespace + "/" + r.Pod.Pod + " " + r.Container
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t %s\t\n", r.Count, r.Errno, name, alertfmt.Sanitize(where))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for i := range iv.Alerts {
		fmt.Fprintln(opts.Out, alertfmt.Line(&iv.Alerts[i]))
	}
	_, err := fmt.Fprintln(opts.Out)
	return err
}
