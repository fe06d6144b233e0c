package rules

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/errnowatch/errnowatch/pkg/enrich"
	"github.com/errnowatch/errnowatch/pkg/sensor"
)

// extraRules writes n rules shaped like real ones: a match on a group or a
// few syscalls and errnos, a window of 10s to 1m, a threshold, some with a
// scope, every grouping. The first broad of them watch failures every busy
// container has (ENOENT lookups, EAGAIN reads, futex timeouts), as
// reliability rules do, so they track every key; the others watch failures
// like the default pack's, which few keys have. noFloor of the broad ones
// have conditions that bound no count, so CEL runs for every key they see.
func extraRules(n, broad, noFloor int) string {
	broadMatch := []string{`{syscalls: ["@file"], errnos: [ENOENT]}`, `{syscalls: [read, write], errnos: [EAGAIN]}`,
		`{syscalls: [futex]}`, `{syscalls: [openat, newfstatat]}`, `{syscalls: ["@network"]}`}
	rareMatch := []string{`{syscalls: ["@file"], errnos: [EACCES, EPERM]}`, `{syscalls: [connect], errnos: [ECONNREFUSED, ETIMEDOUT]}`,
		`{syscalls: [execve], errnos: [ENOENT]}`, `{syscalls: ["@privilege"], errnos: [EPERM]}`,
		`{syscalls: ["@mount"], errnos: [EPERM, ENOSYS]}`, `{errnos: [EMFILE, ENFILE, ENOMEM]}`,
		`{syscalls: ["@ipc"], errnos: [EACCES, EPERM]}`, `{syscalls: ["@process"], errnos: [EPERM, EAGAIN]}`}
	groupBy := []string{"container", "pod", "process", "node", "container"}
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "  - id: extra-%d\n    severity: low\n", i)
		if i < broad {
			fmt.Fprintf(&b, "    match: %s\n", broadMatch[i%len(broadMatch)])
		} else {
			fmt.Fprintf(&b, "    match: %s\n", rareMatch[i%len(rareMatch)])
		}
		fmt.Fprintf(&b, "    window: %ds\n    group_by: %s\n", 10+(i%6)*10, groupBy[i%len(groupBy)])
		if i%7 == 3 {
			b.WriteString("    scope: {exclude_namespaces: [kube-system], pod_selector: \"tier!=batch\"}\n")
		}
		switch {
		case i < noFloor:
			fmt.Fprintf(&b, "    condition: 'errnos[\"EACCES\"] * 10 > count || distinct_syscalls > %d'\n", 20+i)
		case i%3 == 0:
			fmt.Fprintf(&b, "    condition: count >= %d && distinct_syscalls >= 2\n", 5000+i)
		case i%3 == 1:
			fmt.Fprintf(&b, "    condition: rate > %d\n", 500+i)
		default:
			fmt.Fprintf(&b, "    condition: 'syscalls[\"openat\"] > %d || count > 100000'\n", 10000+i)
		}
	}
	return b.String()
}

// benchBatch is one interval of 10 000 busy containers: each fails the
// way ordinary software does (ENOENT lookups, EAGAIN reads, futex
// timeouts, EINPROGRESS connects) and one in a hundred also fails in a way
// some rule looks for (EACCES, refused connects, execve ENOENT).
func benchBatch(b testing.TB, keys int) *enrich.Batch {
	nr := func(s string) int32 { return sysNr(b, s) }
	type fail struct {
		sys   int32
		errno uint16
		n     uint64
	}
	common := []fail{
		{nr("openat"), errNr(b, "ENOENT"), 20}, {nr("newfstatat"), errNr(b, "ENOENT"), 10},
		{nr("read"), errNr(b, "EAGAIN"), 30}, {nr("futex"), errNr(b, "ETIMEDOUT"), 5},
		{nr("connect"), errNr(b, "EINPROGRESS"), 2},
	}
	rare := []fail{
		{nr("openat"), errNr(b, "EACCES"), 3}, {nr("connect"), errNr(b, "ECONNREFUSED"), 1},
		{nr("execve"), errNr(b, "ENOENT"), 3},
	}
	batch := &enrich.Batch{}
	for k := range keys {
		cg := uint64(1000 + k)
		ns := "default"
		if k%10 == 0 {
			ns = "kube-system"
		}
		m := pod(ns, fmt.Sprintf("pod-%d", k/2), fmt.Sprintf("c%d", k%2), cg,
			map[string]string{"app": fmt.Sprintf("app-%d", k%50), "tier": "web"})
		fs := common
		if k%100 == 0 {
			fs = append(append([]fail{}, common...), rare...)
		}
		for _, f := range fs {
			batch.Counts = append(batch.Counts, enrich.Count{
				Count: sensor.Count{Key: sensor.Key{CgroupID: cg, Syscall: f.sys, Errno: f.errno}, Count: f.n}, Meta: m})
		}
		for i := range 2 {
			f := fs[i]
			batch.Records = append(batch.Records, enrich.Record{Meta: m, Record: sensor.Record{
				PID: uint32(10000 + k), TID: uint32(10000 + k), Comm: "worker", CgroupID: cg, Syscall: f.sys, Ret: -int64(f.errno)}})
		}
	}
	return batch
}

func benchEvaluate(b *testing.B, broad, noFloor int) {
	def, err := os.ReadFile("../../rules/default.yaml")
	if err != nil {
		b.Fatal(err)
	}
	rs, err := Parse("bench.yaml", []byte(string(def)+extraRules(50, broad, noFloor)))
	if err != nil {
		b.Fatal(err)
	}
	e := NewEngine(rs, Config{Interval: time.Second, Node: "node-1"})
	batch := benchBatch(b, 10_000)
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	n := 0
	step := func() {
		n++
		batch.Interval = sensor.Interval{Start: start.Add(time.Duration(n-1) * time.Second), End: start.Add(time.Duration(n) * time.Second)}
		e.Process(batch)
	}
	// Fill the longest window (60s) first: the steady state is the cost.
	for range 70 {
		step()
	}
	b.ReportAllocs()
	// CPU time next to wall time: on a shared machine the wall clock also
	// counts other processes' turns.
	cpu0 := cpuTime(b)
	b.ResetTimer()
	for range b.N {
		step()
	}
	b.StopTimer()
	b.ReportMetric(float64((cpuTime(b)-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
	s := e.Stats()
	b.ReportMetric(float64(s.Keys), "keys")
	b.ReportMetric(float64(s.Evaluations)/float64(n), "cel-evals/interval")
}

func cpuTime(b *testing.B) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkEvaluate is one interval of the default pack plus 50 rules over
// 10 000 active keys; 10 of the 50 watch failures every key has.
func BenchmarkEvaluate(b *testing.B) { benchEvaluate(b, 10, 0) }

// BenchmarkEvaluateBroad is the stress case: all 50 extra rules watch
// failures every key has, so every key is live in about ten rules.
func BenchmarkEvaluateBroad(b *testing.B) { benchEvaluate(b, 50, 0) }

// BenchmarkEvaluateNoFloor is the stress case with 10 of the broad rules
// written so that no count bound spares any key a CEL evaluation.
func BenchmarkEvaluateNoFloor(b *testing.B) { benchEvaluate(b, 50, 10) }
