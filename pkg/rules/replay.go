package rules

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/bits"
	"time"

	"github.com/errnowatch/errnowatch/pkg/alert"
	"github.com/errnowatch/errnowatch/pkg/enrich"
	"github.com/errnowatch/errnowatch/pkg/sensor"
)

// replayInterval is one line of `errnowatch top -o json`.
type replayInterval struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	Rows  []struct {
		CgroupID   uint64           `json:"cgroup_id"`
		CgroupPath string           `json:"cgroup_path"`
		Syscall    string           `json:"syscall"`
		Compat     bool             `json:"compat"`
		Errno      enrich.LineErrno `json:"errno"`
		Count      uint64           `json:"count"`
		enrich.LinePod
	} `json:"rows"`
}

// DecodeBatches turns a recorded JSON-lines file into the batches the agent
// would have processed, calling fn for each in time order. Two line formats
// are accepted, and can be mixed:
//
//   - trace records ({"time", "pid", "comm", "cgroup_id", "syscall",
//     "syscall_nr", "ret", "errno", ...}): failures are grouped into batches
//     of interval, aligned to multiples of it, and each batch's counts are
//     its records counted. A trace holds only the records the kernel
//     sampled, so counts replayed from one are a lower bound of what
//     happened; successes only feed duration histograms.
//   - top intervals ({"start", "end", "rows": [...]}): one batch each, with
//     the rows' exact counts and no records.
//
// Optional "namespace", "pod", "container" and "node" fields become the
// batch's workload metadata; without "pod" a cgroup is a host process.
func DecodeBatches(r io.Reader, interval time.Duration, fn func(*enrich.Batch) error) error {
	if interval <= 0 {
		interval = time.Second
	}
	d := &replayDecoder{interval: interval, fn: fn, metas: map[metaKey]*enrich.Meta{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 64<<20)
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 || b[0] == '#' {
			continue
		}
		if err := d.line(b); err != nil {
			return fmt.Errorf("line %d: %w", line, err)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read records: %w", err)
	}
	return d.flush()
}

// Replay feeds a recorded file (see DecodeBatches) through the engine at its
// interval and returns every alert it emitted, including the final pending
// updates (Flush). This is `errnowatch rules test`.
func (e *Engine) Replay(r io.Reader) ([]alert.Alert, error) {
	var out []alert.Alert
	err := DecodeBatches(r, e.cfg.Interval, func(b *enrich.Batch) error {
		out = append(out, e.Process(b)...)
		return nil
	})
	if err != nil {
		return out, err
	}
	return append(out, e.Flush()...), nil
}

type metaKey struct {
	cgroup uint64
	path   string
	enrich.LinePod
}

type replayDecoder struct {
	interval time.Duration
	fn       func(*enrich.Batch) error
	metas    map[metaKey]*enrich.Meta

	cur     *enrich.Batch
	curSlot int64
	counts  map[sensor.Key]int // index into cur.Counts
	hists   map[sensor.HistKey]int
}

func (d *replayDecoder) meta(cgroup uint64, path string, p enrich.LinePod) *enrich.Meta {
	k := metaKey{cgroup, path, p}
	m := d.metas[k]
	if m == nil {
		m = &enrich.Meta{Node: p.Node, Namespace: p.Namespace, Pod: p.Pod, PodUID: p.PodUID, Container: p.Container,
			Host: p.Pod == "" && p.PodUID == "", CgroupPath: path}
		d.metas[k] = m
	}
	return m
}

func (d *replayDecoder) line(b []byte) error {
	var probe struct {
		Rows json.RawMessage `json:"rows"`
	}
	if err := json.Unmarshal(b, &probe); err != nil {
		return fmt.Errorf("not a JSON object: %w", err)
	}
	if probe.Rows != nil {
		return d.topInterval(b)
	}
	return d.record(b)
}

func (d *replayDecoder) topInterval(b []byte) error {
	var iv replayInterval
	if err := json.Unmarshal(b, &iv); err != nil {
		return fmt.Errorf("decode top interval: %w", err)
	}
	if err := d.flush(); err != nil {
		return err
	}
	if iv.End.IsZero() {
		return fmt.Errorf("top interval has no \"end\" time")
	}
	batch := &enrich.Batch{Interval: sensor.Interval{Start: iv.Start, End: iv.End}}
	for _, row := range iv.Rows {
		nr, compat, err := enrich.LineSyscall(row.Syscall, nil, row.Compat)
		if err != nil {
			return err
		}
		batch.Counts = append(batch.Counts, enrich.Count{
			Count: sensor.Count{Key: sensor.Key{CgroupID: row.CgroupID, Syscall: nr, Compat: compat, Errno: row.Errno.Value},
				Count: row.Count},
			Meta: d.meta(row.CgroupID, row.CgroupPath, row.LinePod),
		})
	}
	return d.fn(batch)
}

func (d *replayDecoder) record(b []byte) error {
	var rec enrich.Line
	if err := json.Unmarshal(b, &rec); err != nil {
		return fmt.Errorf("decode trace record: %w", err)
	}
	sr, err := rec.Record()
	if err != nil {
		return fmt.Errorf("trace record: %w", err)
	}
	nr, compat := sr.Syscall, sr.Compat
	slot := rec.Time.UnixNano() / int64(d.interval)
	if d.cur == nil || slot > d.curSlot {
		if err := d.flush(); err != nil {
			return err
		}
		start := time.Unix(0, slot*int64(d.interval))
		d.cur = &enrich.Batch{Interval: sensor.Interval{Start: start, End: start.Add(d.interval)}}
		d.curSlot = slot
		d.counts = map[sensor.Key]int{}
		d.hists = map[sensor.HistKey]int{}
	}
	// A record slightly out of order (CPUs interleave) joins the current
	// batch rather than reopening a past one.
	m := d.meta(rec.CgroupID, rec.CgroupPath, rec.LinePod)
	if sr.DurationNS > 0 {
		hk := sensor.HistKey{CgroupID: rec.CgroupID, Syscall: nr, Compat: compat}
		i, ok := d.hists[hk]
		if !ok {
			i = len(d.cur.Histograms)
			d.hists[hk] = i
			d.cur.Histograms = append(d.cur.Histograms, enrich.Histogram{Histogram: sensor.Histogram{HistKey: hk}, Meta: m})
		}
		d.cur.Histograms[i].Buckets[histBucket(sr.DurationNS)]++
	}
	errno := sr.Errno()
	if errno == 0 {
		return nil
	}
	d.cur.Records = append(d.cur.Records, enrich.Record{Record: sr, Meta: m})
	k := sensor.Key{CgroupID: rec.CgroupID, Syscall: nr, Compat: compat, Errno: errno}
	i, ok := d.counts[k]
	if !ok {
		i = len(d.cur.Counts)
		d.counts[k] = i
		d.cur.Counts = append(d.cur.Counts, enrich.Count{
			Count: sensor.Count{Key: sensor.Key{CgroupID: rec.CgroupID, Syscall: nr, Compat: compat, Errno: errno}},
			Meta:  m,
		})
	}
	d.cur.Counts[i].Count.Count++
	return nil
}

// histBucket is the sensor's log2 bucket for a duration: bucket i holds
// [2^i, 2^(i+1)), bucket 0 also 0 and 1.
func histBucket(ns uint64) int {
	if ns < 2 {
		return 0
	}
	return min(bits.Len64(ns)-1, sensor.HistBuckets-1)
}

func (d *replayDecoder) flush() error {
	if d.cur == nil {
		return nil
	}
	b := d.cur
	d.cur = nil
	return d.fn(b)
}
