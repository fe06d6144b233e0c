package console

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"text/tabwriter"
	"time"

	"go.uber.org/zap"

	"github.com/errnowatch/errnowatch/pkg/alertfmt"
	"github.com/errnowatch/errnowatch/pkg/enrich"
	"github.com/errnowatch/errnowatch/pkg/sensor"
	"github.com/errnowatch/errnowatch/pkg/syscalls"
)

// TraceOptions configure `errnowatch trace`.
type TraceOptions struct {
	Filter FilterFlags
	// PIDs and Comms filter records in user space (the kernel counts every
	// process in the chosen cgroups).
	PIDs  []uint32
	Comms []string
	// Output is "table" or "json" (one object per line).
	Output string
	// Durations turns on duration mode: records carry duration_ns.
	Durations bool
	// RecordsPerWindow is the kernel's record rate limit per key and second.
	RecordsPerWindow int
	// Interval is how often the exact counts are drained.
	Interval time.Duration
	// Cluster names pods; Rules, when given, are evaluated every interval
	// and their alerts printed among the records.
	Cluster Cluster
	Rules   []string
	Out     io.Writer
	Logger  *zap.Logger
}

func validOutput(o string) error {
	if o != "table" && o != "json" {
		return fmt.Errorf("unknown output format %q: use -o table or -o json", o)
	}
	return nil
}

// Trace prints failure records until ctx is done.
func Trace(ctx context.Context, opts TraceOptions) error {
	if err := validOutput(opts.Output); err != nil {
		return err
	}
	if opts.Interval <= 0 {
		opts.Interval = time.Second
	}
	s, err := openSession(sessionConfig{Filter: opts.Filter, Durations: opts.Durations,
		RecordsPerWindow: opts.RecordsPerWindow, Cluster: opts.Cluster, Rules: opts.Rules,
		Interval: opts.Interval, Logger: opts.Logger})
	if err != nil {
		return err
	}
	enc := json.NewEncoder(opts.Out)
	tw := tabwriter.NewWriter(opts.Out, 0, 8, 1, ' ', 0)
	pods := opts.Cluster.enabled()
	header := "TIME\tPID\tTID\tCOMM\tCGROUP\tSYSCALL\tERRNO"
	if pods {
		header = "TIME\tPID\tTID\tCOMM\tNAMESPACE/POD\tCONTAINER\tSYSCALL\tERRNO"
	}
	if opts.Durations {
		header += "\tDURATION"
	}
	header += "\tPATH/ADDRESS"
	if opts.Output == "table" {
		fmt.Fprintln(tw, header)
		tw.Flush()
	}
	var lastStats sensor.Stats
	var pending []sensor.Record
	return s.run(ctx, opts.Interval, 0, func(r sensor.Record) error {
		if s.engine != nil {
			pending = append(pending, r)
		}
		if len(opts.PIDs) > 0 && !slices.Contains(opts.PIDs, r.PID) {
			return nil
		}
		if len(opts.Comms) > 0 && !slices.Contains(opts.Comms, r.Comm) {
			return nil
		}
		// The one line type that `rules test` replays.
		j := enrich.LineOf(&r, s.cgroupPath(r.CgroupID), s.pod(r.CgroupID))
		if opts.Durations {
			d := r.DurationNS
			j.DurationNS = &d
		}
		if opts.Output == "json" {
			return enc.Encode(j)
		}
		name := j.Syscall
		if j.Compat {
			name += " (32-bit)"
		}
		where := alertfmt.Sanitize(j.CgroupPath)
		if pods {
			where = "-\t-"
			if j.Pod != "" {
				where = alertfmt.Sanitize(j.Namespace+"/"+j.Pod) + "\t" + alertfmt.Sanitize(j.Container)
			}
		}
		// The comm and the paths are the watched process's to choose.
		line := fmt.Sprintf("%s\t%d\t%d\t%s\t%s\t%s\t%s", j.Time.Local().Format("15:04:05.000000"), j.PID, j.TID,
			alertfmt.Sanitize(j.Comm), where, name, errnoName(r.Errno()))
		if opts.Durations {
			line += "\t" + time.Duration(r.DurationNS).String()
		}
		line += "\t" + alertfmt.Sanitize(argSummary(&r))
		fmt.Fprintln(tw, line)
		return tw.Flush()
	}, func(iv sensor.Interval) error {
		// Trace shows records; losses still get a word on stderr.
		if d := iv.Stats.TotalRingDrops() - lastStats.TotalRingDrops(); d > 0 {
			s.log.Warn("ring buffer full: records lost", zap.Uint64("lost", d))
		}
		if d := iv.Stats.QueueDrops - lastStats.QueueDrops; d > 0 {
			s.log.Warn("output too slow: records dropped", zap.Uint64("dropped", d))
		}
		lastStats = iv.Stats
		alerts := s.evaluate(iv, pending)
		pending = pending[:0]
		for i := range alerts {
			if opts.Output == "json" {
				if err := enc.Encode(AlertJSON{Alert: alerts[i]}); err != nil {
					return err
				}
				continue
			}
			fmt.Fprintln(opts.Out, alertfmt.Line(&alerts[i]))
		}
		return nil
	})
}

// argSummary is what the table shows of a record's arguments: its path(s)
// or address, flagged when cut short or unreadable.
func argSummary(r *sensor.Record) string {
	path := func(p string, trunc, bad bool) string {
		switch {
		case bad:
			return "<unreadable>"
		case trunc:
			return p + "..."
		}
		return p
	}
	out := path(r.Path, r.PathTruncated, r.PathUnreadable)
	if p2 := path(r.Path2, r.Path2Truncated, r.Path2Unreadable); p2 != "" {
		out += " -> " + p2
	}
	if a := r.Addr.String(); a != "" {
		out = a
	}
	return out
}

func errnoName(e uint16) string {
	if e == 0 {
		return ""
	}
	return syscalls.ErrnoName(e)
}
