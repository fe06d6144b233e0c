package rules

import (
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/errnowatch/errnowatch/pkg/alert"
	"github.com/errnowatch/errnowatch/pkg/enrich"
)

func defaultEngine(t *testing.T) *Engine {
	t.Helper()
	rs, err := Load("../../rules/default.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return NewEngine(rs, Config{Interval: time.Second, Node: "node-1"})
}

func TestReplayTrace(t *testing.T) {
	f, err := os.Open("testdata/trace.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := defaultEngine(t).Replay(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Fatalf("want one network-scan alert, got %d: %+v", len(got), got)
	}
	a := got[0]
	if a.RuleID != "network-scan" || a.Total != 40 || a.Pod != "web-7d9" || a.Namespace != "default" ||
		a.Container != "app" || a.Node != "node-1" || a.Revision != 1 {
		t.Errorf("alert %+v", a)
	}
	if !slices.Equal(a.Processes, []alert.Process{{PID: 4242, Comm: "nc", UID: 1000}}) {
		t.Errorf("processes %+v", a.Processes)
	}
	want := "pod default/web-7d9 container app: 40 failed connect calls (ECONNREFUSED 40) in 2s"
	if a.Message != want {
		t.Errorf("message %q, want %q", a.Message, want)
	}
}

func TestReplayTop(t *testing.T) {
	f, err := os.Open("testdata/top.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var batches []*enrich.Batch
	if err := DecodeBatches(f, time.Second, func(b *enrich.Batch) error {
		batches = append(batches, b)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(batches) != 2 || len(batches[0].Counts) != 2 || batches[1].Counts[0].Count.Count != 800 ||
		batches[1].Counts[0].Errno != 2 || len(batches[0].Records) != 0 {
		t.Fatalf("batches %+v", batches)
	}
	if _, err := f.Seek(0, 0); err != nil {
		t.Fatal(err)
	}
	got, err := defaultEngine(t).Replay(f)
	if err != nil {
		t.Fatal(err)
	}
	if ids := ruleIDs(got); !slices.Equal(ids, []string{"kernel-module-load"}) || got[0].Pod != "evil" {
		t.Errorf("alerts %+v, want kernel-module-load for kube-system/evil", got)
	}
}

func TestReplayRecordFields(t *testing.T) {
	open := sysNr(t, "openat")
	in := strings.Join([]string{
		// syscall_nr wins over the name; errno as a number; no ret.
		`{"time":"2026-03-01T12:00:00.5Z","pid":1,"comm":"a","cgroup_id":7,"syscall":"bogus","syscall_nr":` +
			strconv.Itoa(int(open)) + `,"errno":13,"duration_ns":3000}`,
		// A success: only its duration counts.
		`{"time":"2026-03-01T12:00:00.6Z","pid":1,"comm":"a","cgroup_id":7,"syscall":"openat","ret":3,"duration_ns":1}`,
		``,
		`{"time":"2026-03-01T12:00:03.1Z","pid":1,"comm":"a","cgroup_id":7,"syscall":"openat","ret":-1}`,
	}, "\n")
	var batches []*enrich.Batch
	if err := DecodeBatches(strings.NewReader(in), time.Second, func(b *enrich.Batch) error {
		batches = append(batches, b)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(batches) != 2 {
		t.Fatalf("want 2 batches (gap skipped), got %d", len(batches))
	}
	b := batches[0]
	if !b.Interval.Start.Equal(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)) || b.Interval.End.Sub(b.Interval.Start) != time.Second {
		t.Errorf("interval %v..%v", b.Interval.Start, b.Interval.End)
	}
	if len(b.Counts) != 1 || b.Counts[0].Syscall != open || b.Counts[0].Errno != 13 || b.Counts[0].Count.Count != 1 || !b.Counts[0].Meta.Host {
		t.Errorf("counts %+v", b.Counts)
	}
	if len(b.Histograms) != 1 || b.Histograms[0].Buckets[11] != 1 || b.Histograms[0].Buckets[0] != 1 {
		t.Errorf("histograms %+v", b.Histograms)
	}
	if len(batches[1].Counts) != 1 || batches[1].Counts[0].Errno != 1 {
		t.Errorf("second batch %+v", batches[1].Counts)
	}

	for _, bad := range []string{
		`not json`,
		`{"pid":1,"syscall":"openat","errno":"EPERM"}`,
		`{"time":"2026-03-01T12:00:00Z","syscall":"opnat","errno":"EPERM"}`,
		`{"time":"2026-03-01T12:00:00Z","syscall":"openat","errno":"EPRM"}`,
	} {
		err := DecodeBatches(strings.NewReader("\n"+bad), time.Second, func(*enrich.Batch) error { return nil })
		if err == nil || !strings.HasPrefix(err.Error(), "line 2: ") {
			t.Errorf("%s: want a line 2 error, got %v", bad, err)
		}
	}
}
