package rules

import (
	"fmt"
	"testing"
	"time"

	"github.com/errnowatch/errnowatch/pkg/alert"
	"github.com/errnowatch/errnowatch/pkg/enrich"
	"github.com/errnowatch/errnowatch/pkg/sensor"
	"github.com/errnowatch/errnowatch/pkg/syscalls"
)

// t0 is an interval boundary, so batch n covers [t0+(n-1)s, t0+n s).
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func at(n int) time.Time { return t0.Add(time.Duration(n) * time.Second) }

func sysNr(t testing.TB, name string) int32 {
	t.Helper()
	nr, err := syscalls.ParseSyscall(syscalls.Native(), name, false)
	if err != nil {
		t.Fatal(err)
	}
	return int32(nr)
}

func errNr(t testing.TB, name string) uint16 {
	t.Helper()
	e, err := syscalls.ParseErrno(name)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// pod returns the Meta of a container in a pod, with a distinct cgroup id.
func pod(ns, name, ctr string, cgroup uint64, labels map[string]string) *enrich.Meta {
	return &enrich.Meta{Node: "node-1", Namespace: ns, Pod: name, PodUID: "uid-" + name,
		Container: ctr, ContainerID: fmt.Sprintf("cid-%d", cgroup), Labels: labels,
		CgroupPath: fmt.Sprintf("/kubepods/pod-%s/%d", name, cgroup)}
}

func hostMeta(path string) *enrich.Meta {
	return &enrich.Meta{Node: "node-1", Host: true, CgroupPath: path}
}

// src is a workload that fails: its meta and cgroup id.
type src struct {
	meta   *enrich.Meta
	cgroup uint64
}

type batchBuilder struct {
	t testing.TB
	b enrich.Batch
}

func newBatch(t testing.TB, n int) *batchBuilder {
	return &batchBuilder{t: t, b: enrich.Batch{Interval: sensor.Interval{Start: at(n - 1), End: at(n)}}}
}

func (bb *batchBuilder) count(s src, sys, errno string, n uint64) *batchBuilder {
	bb.b.Counts = append(bb.b.Counts, enrich.Count{
		Count: sensor.Count{Key: sensor.Key{CgroupID: s.cgroup, Syscall: sysNr(bb.t, sys), Errno: errNr(bb.t, errno)}, Count: n},
		Meta:  s.meta,
	})
	return bb
}

func (bb *batchBuilder) record(s src, pid uint32, comm, sys, errno string) *batchBuilder {
	bb.b.Records = append(bb.b.Records, enrich.Record{
		Record: sensor.Record{Time: bb.b.Interval.End.Add(-time.Millisecond), PID: pid, TID: pid, UID: 1000,
			Comm: comm, CgroupID: s.cgroup, Syscall: sysNr(bb.t, sys), Ret: -int64(errNr(bb.t, errno))},
		Meta: s.meta,
	})
	return bb
}

// hist adds n exits of sys with a duration in log2 bucket i.
func (bb *batchBuilder) hist(s src, sys string, bucket int, n uint64) *batchBuilder {
	h := enrich.Histogram{Histogram: sensor.Histogram{HistKey: sensor.HistKey{CgroupID: s.cgroup, Syscall: sysNr(bb.t, sys)}}, Meta: s.meta}
	h.Buckets[bucket] = n
	bb.b.Histograms = append(bb.b.Histograms, h)
	return bb
}

func (bb *batchBuilder) get() *enrich.Batch { return &bb.b }

func mustParse(t testing.TB, yaml string) *RuleSet {
	t.Helper()
	rs, err := Parse("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatalf("parse rules: %v", err)
	}
	return rs
}

func ruleIDs(as []alert.Alert) []string {
	var ids []string
	for _, a := range as {
		ids = append(ids, a.RuleID)
	}
	return ids
}
