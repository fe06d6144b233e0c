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
	Log     *zap.Logger
}

// RecordJSON is one line of `trace -o json`, and what `rules test` replays.
type RecordJSON struct {
	Time       time.Time `json:"time"`
	PID        uint32    `json:"pid"`
	TID        uint32    `json:"tid"`
	Comm       string    `json:"comm"`
	UID        uint32    `json:"uid"`
	CgroupID   uint64    `json:"cgroup_id"`
	CgroupPath string    `json:"cgroup_path"`
	Syscall    string    `json:"syscall"`
	SyscallNr  int32     `json:"syscall_nr"`
	Compat     bool      `json:"compat"`
	Ret        int64     `json:"ret"`
	Errno      string    `json:"errno"`
	DurationNS *uint64   `json:"duration_ns,omitempty"`
	Pod
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
		Interval: opts.Interval, Log: opts.Log})
	if err != nil {
		return err
	}
	arch := syscalls.Native()
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
		j := RecordJSON{
			Time: r.Time, PID: r.PID, TID: r.TID, Comm: r.Comm, UID: r.UID,
			CgroupID: r.CgroupID, CgroupPath: s.cgroupPath(r.CgroupID),
			Syscall: syscalls.Name(arch, int(r.Syscall), r.Compat), SyscallNr: r.Syscall, Compat: r.Compat,
			Ret: r.Ret, Errno: errnoName(r.Errno()), Pod: s.pod(r.CgroupID),
		}
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
			if j.Pod.Pod != "" {
				where = alertfmt.Sanitize(j.Namespace+"/"+j.Pod.Pod) + "\t" + alertfmt.Sanitize(j.Container)
			}
		}
		// The comm and the paths are the watched process's to choose.
		line := fmt.Sprintf("%s\t%d\t%d\t%s\t%s\t%s\t%s", j.Time.Local().Format("15:04:05.000000"), j.PID, j.TID,
			alertfmt.Sanitize(j.Comm), where, name, j.Errno)
		if opts.Durations {
			line += "\t" + time.Duration(r.DurationNS).String()
		}
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
			fmt.Fprintln(opts.Out, alertLine(&alerts[i]))
		}
		return nil
	})
}

func errnoName(e uint16) string {
	if e == 0 {
		return ""
	}
	return syscalls.ErrnoName(e)
}
